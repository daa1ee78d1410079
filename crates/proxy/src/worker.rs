//! One request-serving thread: a current-thread runtime with its own listeners, its own
//! upstream connection pool, and a cached handle on the current snapshot.
//!
//! Nothing here is shared with other workers on the request path but the snapshot itself,
//! which is only read; checking for a new one is one atomic load.

use crate::head_guard::HeadGuard;
use crate::pool::Pool;
use crate::server::Shared;
use crate::service;
use crate::snapshot::Snapshot;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// A worker-local handle on a shared snapshot: cloning it per request is a plain increment,
/// where cloning the `Arc` would bounce its counter's cache line between worker cores.
#[allow(clippy::redundant_allocation)]
pub type LocalSnapshot = Rc<Arc<Snapshot>>;

pub struct Worker {
    pub shared: Arc<Shared>,
    pub pool: Pool,
    pub scheme: &'static str,
    cached: RefCell<(u64, LocalSnapshot)>,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Self {
        let generation = shared.generation.load(Ordering::Acquire);
        let snap = Rc::new(shared.snapshot.load_full());
        Self {
            shared,
            pool: Pool::default(),
            scheme: "http",
            cached: RefCell::new((generation, snap)),
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
pub fn run(
    shared: Arc<Shared>,
    listeners: Vec<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
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
        for l in listeners {
            match TcpListener::from_std(l) {
                Ok(l) => {
                    tokio::task::spawn_local(accept_loop(l, worker.clone(), conns.clone(), shutdown.clone()));
                }
                Err(e) => tracing::error!(target: "portico::worker", error = %e, "cannot use listener"),
            }
        }
        let mut stop = shutdown.clone();
        let _ = stop.wait_for(|s| *s).await;
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
                        serve(stream, peer.ip().to_canonical(), worker, shutdown).await;
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

async fn serve(
    stream: TcpStream,
    client_ip: std::net::IpAddr,
    worker: Rc<Worker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let peer = Rc::new(service::Peer::new(client_ip));
    let svc = service_fn(move |req| {
        let (worker, peer) = (worker.clone(), peer.clone());
        async move { Ok::<_, Infallible>(service::handle(&worker, req, &peer).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true)
        .serve_connection(TokioIo::new(HeadGuard::new(stream)), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => log_conn_end(res),
        _ = shutdown.wait_for(|s| *s) => {
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
