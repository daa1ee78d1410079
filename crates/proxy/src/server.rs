//! Starting and stopping the data plane: listeners bound once, one worker thread per
//! `gateway.workers`, each with its own `SO_REUSEPORT` socket per listener (as nginx does).

use crate::access_log::AccessLog;
use crate::otel::Tracer;
use crate::snapshot::Snapshot;
use crate::worker::{self, Bound};
use arc_swap::ArcSwap;
use portico_config::Gateway;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// What every worker reads: the snapshot (swapped on reload) and the access log.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    /// Bumped after each swap; workers compare it to their cached copy.
    pub generation: AtomicU64,
    pub log: Option<Arc<AccessLog>>,
    /// Starts request spans when `gateway.tracing` is set.
    pub tracer: Option<Arc<Tracer>>,
}

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    Bind { address: SocketAddr, error: std::io::Error },
    AccessLog { path: String, error: std::io::Error },
    Thread(std::io::Error),
    Tracing(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind { address, error } => write!(f, "cannot listen on {address}: {error}"),
            StartError::AccessLog { path, error } => write!(f, "cannot open access log {path}: {error}"),
            StartError::Thread(e) => write!(f, "cannot start worker thread: {e}"),
            StartError::Tracing(e) => write!(f, "cannot start the span exporter: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A started gateway.
pub struct Running {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    workers: std::sync::Mutex<Vec<JoinHandle<()>>>,
    drain: Duration,
}

/// Binds every listener and starts the workers serving `snapshot`.
pub fn start(gateway: &Gateway, snapshot: Snapshot) -> Result<Running, StartError> {
    let workers = gateway
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let addresses: Vec<SocketAddr> = gateway
        .listeners
        .iter()
        .filter_map(|l| l.address.parse().ok())
        .collect();
    let tls: Vec<bool> = gateway
        .listeners
        .iter()
        .filter(|l| l.address.parse::<SocketAddr>().is_ok())
        .map(|l| l.tls.is_some())
        .collect();

    // Probe each address without SO_REUSEPORT first: a port another process holds (even one
    // that itself uses SO_REUSEPORT) must be an error, not a silent share.
    for &address in &addresses {
        drop(socket(address, false).map_err(|error| StartError::Bind { address, error })?);
    }
    let mut per_worker: Vec<Vec<Bound>> = (0..workers).map(|_| Vec::new()).collect();
    for (&address, &is_tls) in addresses.iter().zip(&tls) {
        for listeners in per_worker.iter_mut() {
            listeners.push(Bound {
                listener: socket(address, true).map_err(|error| StartError::Bind { address, error })?,
                tls: is_tls.then_some(address),
            });
        }
    }

    let path = &gateway.access_log.path;
    let log = AccessLog::start(path).map_err(|error| StartError::AccessLog {
        path: path.clone(),
        error,
    })?;
    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from_pointee(snapshot),
        generation: AtomicU64::new(0),
        log,
        tracer: match &gateway.tracing {
            Some(t) => Some(Tracer::start(t).map_err(StartError::Tracing)?),
            None => None,
        },
    });
    let (shutdown, rx) = watch::channel(false);
    let drain = gateway.shutdown_timeout.get();
    let mut handles = Vec::with_capacity(workers);
    for (i, listeners) in per_worker.into_iter().enumerate() {
        let (shared, rx) = (shared.clone(), rx.clone());
        let handle = std::thread::Builder::new()
            .name(format!("portico-worker-{i}"))
            .spawn(move || worker::run(shared, listeners, rx, drain))
            .map_err(StartError::Thread)?;
        handles.push(handle);
    }
    tracing::info!(target: "portico::server", workers, listeners = ?addresses, "serving");
    Ok(Running {
        shared,
        shutdown,
        workers: std::sync::Mutex::new(handles),
        drain,
    })
}

fn socket(address: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&address.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

impl Running {
    /// Makes `snapshot` the one new requests use; requests in flight finish on the old one.
    pub fn swap(&self, snapshot: Snapshot) {
        self.shared.snapshot.store(Arc::new(snapshot));
        self.shared.generation.fetch_add(1, Ordering::Release);
    }

    /// The snapshot being served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// The hash of the config being served.
    pub fn hash(&self) -> String {
        self.shared.snapshot.load().hash.clone()
    }

    /// Files besides the config whose change is a config change (TLS certificates and keys).
    pub fn watched_files(&self) -> Vec<std::path::PathBuf> {
        self.shared.snapshot.load().tls.files.clone()
    }

    /// Stops accepting, lets in-flight requests finish (at most the shutdown timeout), and returns.
    /// Blocks until every worker has stopped.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        tracing::info!(target: "portico::server", timeout = ?self.drain, "draining");
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in workers {
            let _ = w.join();
        }
        // Every response is done: the spans still queued go out now, not with the process.
        if let Some(t) = &self.shared.tracer {
            t.flush(self.drain.clamp(Duration::from_secs(1), Duration::from_secs(5)));
        }
        if let Some(log) = &self.shared.log {
            log.flush(Duration::from_secs(5));
        }
    }
}
