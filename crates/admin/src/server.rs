//! The admin listener: its own thread with its own current-thread runtime and a small hyper
//! HTTP/1.1 server, so admin traffic never runs on (or waits for) a request worker.

use crate::api::{self, Admin};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// Connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 64;

/// Why the admin API could not start.
#[derive(Debug)]
pub enum StartError {
    Address(String),
    Bind { address: SocketAddr, error: std::io::Error },
    Thread(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Address(a) => write!(f, "invalid admin address {a:?}"),
            StartError::Bind { address, error } => write!(f, "cannot listen on {address} (gateway.admin): {error}"),
            StartError::Thread(e) => write!(f, "cannot start the admin thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The admin listener, bound (so a taken port fails `portico run` before it serves) but not
/// serving yet.
pub struct Bound {
    listener: std::net::TcpListener,
    address: SocketAddr,
}

/// Binds `address`.
pub fn bind(address: &str) -> Result<Bound, StartError> {
    let addr: SocketAddr = address.parse().map_err(|_| StartError::Address(address.to_owned()))?;
    let listener = std::net::TcpListener::bind(addr).map_err(|error| StartError::Bind { address: addr, error })?;
    listener
        .set_nonblocking(true)
        .map_err(|error| StartError::Bind { address: addr, error })?;
    Ok(Bound {
        listener,
        address: addr,
    })
}

impl Bound {
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Starts serving `admin` on its own thread.
    pub fn serve(self, admin: Admin) -> Result<Running, StartError> {
        let (stop, stopped) = watch::channel(false);
        let admin = Arc::new(admin);
        let address = self.address;
        let thread = std::thread::Builder::new()
            .name("portico-admin".into())
            .spawn(move || run(self.listener, admin, stopped))
            .map_err(StartError::Thread)?;
        tracing::info!(target: "portico::admin", %address, "admin API listening");
        Ok(Running {
            stop,
            thread: Some(thread),
        })
    }
}

/// A serving admin API; stops on [`Running::shutdown`] or drop.
pub struct Running {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, drops open admin connections, and waits for the thread to end.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn run(listener: std::net::TcpListener, admin: Arc<Admin>, mut stopped: watch::Receiver<bool>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(target: "portico::admin", error = %e, "cannot start the admin runtime");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(target: "portico::admin", error = %e, "cannot use the admin listener");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let acquired = tokio::select! {
                p = slots.clone().acquire_owned() => p,
                _ = stopped.wait_for(|s| *s) => break,
            };
            let Ok(permit) = acquired else { break };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.wait_for(|s| *s) => break,
            };
            match accepted {
                Ok((stream, _)) => {
                    let admin = admin.clone();
                    tokio::spawn(async move {
                        serve(stream, admin).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(target: "portico::admin", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    // Dropping the runtime here ends every open admin connection.
}

async fn serve(stream: tokio::net::TcpStream, admin: Arc<Admin>) {
    let svc = service_fn(move |req| {
        let admin = admin.clone();
        async move { Ok::<_, Infallible>(api::handle(&admin, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), svc);
    if let Err(e) = conn.await {
        tracing::debug!(target: "portico::admin", error = %e, "admin connection ended with an error");
    }
}
