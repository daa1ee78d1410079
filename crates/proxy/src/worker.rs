//! One request-serving thread: a current-thread runtime with its own listeners, its own
//! upstream connection pool, and a cached handle on the current snapshot.
//!
//! Nothing here is shared with other workers on the request path but the snapshot itself,
//! which is only read; checking for a new one is one atomic load.

use crate::conn_watch::{End, Watch};
use crate::head_guard::HeadGuard;
use crate::pool::Pool;
use crate::server::Shared;
use crate::snapshot::Snapshot;
use crate::{downstream, h2, service, tls};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// How long a client may take to send a request head (and, on a plain listener, its first bytes).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One bound listener of a worker; `tls` is its configured address when it serves TLS (the
/// key of its certificates in the snapshot).
pub struct Bound {
    pub listener: std::net::TcpListener,
    pub tls: Option<SocketAddr>,
}

/// A worker-local handle on a shared snapshot: cloning it per request is a plain increment,
/// where cloning the `Arc` would bounce its counter's cache line between worker cores.
#[allow(clippy::redundant_allocation)]
pub type LocalSnapshot = Rc<Arc<Snapshot>>;

pub struct Worker {
    pub shared: Arc<Shared>,
    pub pool: Pool,
    /// Shutdown and idle timeouts, for this worker's HTTP/1 connections.
    pub(crate) watch: Watch,
    cached: RefCell<(u64, LocalSnapshot)>,
    /// The last TLS config seen per TLS listener: kept if a reload drops a listener's `tls`
    /// (changing listeners takes a restart).
    tls: RefCell<HashMap<SocketAddr, Arc<ServerConfig>>>,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Self {
        let generation = shared.generation.load(Ordering::Acquire);
        let snap = Rc::new(shared.snapshot.load_full());
        Self {
            shared,
            pool: Pool::default(),
            watch: Watch::default(),
            cached: RefCell::new((generation, snap)),
            tls: RefCell::default(),
        }
    }

    /// The TLS config the current snapshot has for the listener at `address`.
    fn tls_config(&self, address: SocketAddr) -> Option<Arc<ServerConfig>> {
        let snapshot = self.snapshot();
        let mut last = self.tls.borrow_mut();
        match snapshot.tls.get(&address) {
            Some(c) => {
                if last.get(&address).is_none_or(|l| !Arc::ptr_eq(l, c)) {
                    last.insert(address, c.clone());
                }
                Some(c.clone())
            }
            None => last.get(&address).cloned(),
        }
    }

    /// The current snapshot; re-read from the shared swap only when a reload bumped the generation.
    pub fn snapshot(&self) -> LocalSnapshot {
        let generation = self.shared.generation.load(Ordering::Acquire);
        let mut cached = self.cached.borrow_mut();
        if cached.0 != generation {
            *cached = (generation, Rc::new(self.shared.snapshot.load_full()));
        }
        cached.1.clone()
    }
}

/// Open downstream connections of one worker, so shutdown can wait for them to finish.
#[derive(Default)]
struct Connections {
    open: Cell<usize>,
    idle: Notify,
}

/// Runs one worker until shutdown, then drains its connections for at most `drain`.
pub fn run(shared: Arc<Shared>, listeners: Vec<Bound>, shutdown: watch::Receiver<bool>, drain: Duration) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(target: "portico::worker", error = %e, "cannot start a worker runtime");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let worker = Rc::new(Worker::new(shared));
        let conns = Rc::new(Connections::default());
        for b in listeners {
            match TcpListener::from_std(b.listener) {
                Ok(l) => {
                    let (worker, conns, shutdown) = (worker.clone(), conns.clone(), shutdown.clone());
                    tokio::task::spawn_local(accept_loop(l, b.tls, worker, conns, shutdown));
                }
                Err(e) => tracing::error!(target: "portico::worker", error = %e, "cannot use listener"),
            }
        }
        let ticker = worker.clone();
        tokio::task::spawn_local(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                ticker.watch.tick();
            }
        });
        let mut stop = shutdown.clone();
        let _ = stop.wait_for(|s| *s).await;
        worker.watch.trigger();
        let drained = async {
            while conns.open.get() > 0 {
                conns.idle.notified().await;
            }
        };
        if tokio::time::timeout(drain, drained).await.is_err() {
            tracing::warn!(target: "portico::worker", open = conns.open.get(), "shutdown timeout: closing connections");
        }
    });
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<SocketAddr>,
    worker: Rc<Worker>,
    conns: Rc<Connections>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.open.set(conns.open.get() + 1);
                    let (worker, conns, shutdown) = (worker.clone(), conns.clone(), shutdown.clone());
                    tokio::task::spawn_local(async move {
                        let ip = peer.ip().to_canonical();
                        match tls {
                            None => serve_plain(stream, ip, worker, shutdown).await,
                            Some(address) => serve_tls(stream, address, ip, worker, shutdown).await,
                        }
                        conns.open.set(conns.open.get() - 1);
                        if conns.open.get() == 0 {
                            conns.idle.notify_waiters();
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(target: "portico::worker", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    // The listener drops here: new connections go to no one on this worker.
}

/// Runs `step` unless shutdown comes first or it takes longer than `limit`.
async fn before_shutdown<T>(
    shutdown: &mut watch::Receiver<bool>,
    limit: Duration,
    step: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        r = tokio::time::timeout(limit, step) => r.ok(),
        _ = shutdown.wait_for(|s| *s) => None,
    }
}

/// A plain connection: HTTP/2 when it opens with the preface (h2c), else HTTP/1.1.
async fn serve_plain(
    stream: TcpStream,
    client_ip: std::net::IpAddr,
    worker: Rc<Worker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let peer = Rc::new(service::Peer::new(client_ip, "http"));
    match before_shutdown(&mut shutdown, HEAD_TIMEOUT, h2::starts_with_preface(&stream)).await {
        Some(Ok(true)) => h2::serve(stream, worker, peer).await,
        Some(Ok(false)) => downstream::serve(stream, worker, peer).await,
        Some(Err(_)) | None => {}
    }
}

/// A TLS connection: the handshake (bounded), then HTTP/2 or HTTP/1.1 as ALPN chose.
async fn serve_tls(
    stream: TcpStream,
    address: SocketAddr,
    client_ip: std::net::IpAddr,
    worker: Rc<Worker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Some(config) = worker.tls_config(address) else {
        return;
    };
    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
    let stream = match before_shutdown(&mut shutdown, HANDSHAKE_TIMEOUT, accept).await {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            tracing::debug!(target: "portico::worker", error = %e, "TLS handshake failed");
            return;
        }
        None => return,
    };
    let peer = Rc::new(service::Peer::new(client_ip, "https"));
    if stream.get_ref().1.alpn_protocol() == Some(tls::ALPN_H2) {
        h2::serve(stream, worker, peer).await;
    } else {
        downstream::serve(stream, worker, peer).await;
    }
}

/// HTTP/1.1 by hyper, behind the smuggling guard, from the head at the start of `read` on
/// (what the gateway's own reader handed over, see `downstream`).
pub(crate) async fn serve_http1<I>(io: I, read: &[u8], worker: Rc<Worker>, peer: Rc<service::Peer>)
where
    // Send: hyper hands an upgraded (WebSocket) connection over as a `Send` object.
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let w = worker.clone();
    // No hyper header timer: the worker's watch ends idle connections (see conn_watch).
    let activity = peer.activity.clone();
    let svc = service_fn(move |req| {
        let (worker, peer) = (worker.clone(), peer.clone());
        async move { Ok::<_, Infallible>(service::handle(&worker, req.map(service::Inbound::Hyper), &peer).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .writev(false)
        .serve_connection(TokioIo::new(HeadGuard::new(io, read)), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => log_conn_end(res),
        end = w.watch.wait(activity) => {
            if end == End::Idle {
                tracing::debug!(target: "portico::worker", "idle connection closed");
                return;
            }
            // Finish the request in flight, then close; an idle connection closes now.
            conn.as_mut().graceful_shutdown();
            log_conn_end(conn.await);
        }
    }
}

fn log_conn_end(res: Result<(), hyper::Error>) {
    if let Err(e) = res {
        tracing::debug!(target: "portico::worker", error = %e, "connection ended with an error");
    }
}
