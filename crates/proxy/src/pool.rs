//! Keep-alive connections to upstream nodes, one pool per worker thread (no lock, no sharing).
//!
//! A connection goes back to the pool as soon as its response head arrives; hyper reports it
//! ready again (`is_ready`) only once that response's body has been read to the end, and
//! closed (`is_closed`) if the body was abandoned or the upstream hung up. Checkout takes the
//! most recently used ready connection, which keeps the hot set small and warm.
//!
//! gRPC upstreams (`scheme: grpc | grpcs`) get one HTTP/2 connection per node and worker,
//! shared by every request of that worker: streams are multiplexed on it, so it is never
//! checked out, only cloned.

use crate::timed_io::TimedIo;
use crate::{grpc, upstream_tls};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_util::rt::TokioIo;
use portico_plugins::Body;
use portico_upstream::Node;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

/// A connection to send one request on.
pub enum Sender {
    /// Exclusively this request's until its response body is read.
    H1(http1::SendRequest<Body>),
    /// A handle on the node's shared HTTP/2 connection.
    H2(http2::SendRequest<Body>),
}

impl Sender {
    /// Sends `req`; a request that never left comes back in the error.
    pub async fn send(&mut self, req: Request<Body>) -> Result<Response<Incoming>, TrySendError<Request<Body>>> {
        match self {
            Sender::H1(s) => s.try_send_request(req).await,
            Sender::H2(s) => s.try_send_request(req).await,
        }
    }
}

/// Idle connections kept per node; past this a returned connection is simply closed.
const MAX_IDLE_PER_NODE: usize = 512;

/// Connections are shared only between requests that agree on the node, its timeouts and
/// its TLS settings (plain and TLS connections never mix, nor do two TLS configurations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub addr: SocketAddr,
    pub read: Duration,
    pub send: Duration,
    /// The node's TLS fingerprint ([`portico_upstream::tls::NodeTls::fingerprint`]); 0 for plain TCP.
    pub tls: u64,
    /// HTTP/2 (gRPC upstreams) rather than HTTP/1.1.
    pub h2: bool,
}

impl Key {
    pub fn new(node: &Node, read: Duration, send: Duration, h2: bool) -> Self {
        Key {
            addr: node.addr,
            read,
            send,
            tls: node.tls.as_ref().map_or(0, |t| t.fingerprint),
            h2,
        }
    }
}

/// An HTTP/2 connection being opened, and then its outcome.
type Opening = OnceCell<Result<http2::SendRequest<Body>, ConnectError>>;

#[derive(Default)]
pub struct Pool {
    idle: RefCell<FxHashMap<Key, Vec<http1::SendRequest<Body>>>>,
    shared: RefCell<FxHashMap<Key, http2::SendRequest<Body>>>,
    /// HTTP/2 connections being opened: every request that wants one awaits the same.
    connecting: RefCell<FxHashMap<Key, Rc<Opening>>>,
}

/// Why a new connection could not be made.
#[derive(Debug, Clone, Copy)]
pub enum ConnectError {
    Refused,
    Timeout,
    /// The TLS handshake failed (an untrusted certificate, say); already logged.
    Tls,
}

impl Pool {
    /// A ready pooled connection to `addr` (for HTTP/2, the shared one), if there is one.
    pub fn checkout(&self, key: Key) -> Option<Sender> {
        if key.h2 {
            let mut shared = self.shared.borrow_mut();
            let s = shared.get(&key)?;
            if s.is_closed() {
                shared.remove(&key);
                return None;
            }
            return Some(Sender::H2(s.clone()));
        }
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&key)?;
        while let Some(i) = list.iter().rposition(|s| s.is_ready() || s.is_closed()) {
            let s = list.swap_remove(i);
            if s.is_ready() {
                return Some(Sender::H1(s));
            }
        }
        None
    }

    /// Returns a connection whose response head has arrived; hyper keeps it busy until the
    /// body is read. (An HTTP/2 handle is simply dropped: its connection stays shared.)
    pub fn put(&self, key: Key, sender: Sender) {
        let Sender::H1(sender) = sender else { return };
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() >= MAX_IDLE_PER_NODE {
            list.retain(|s| !s.is_closed());
        }
        if list.len() < MAX_IDLE_PER_NODE {
            list.push(sender);
        }
    }

    /// Opens a new connection to `node` within `timeout` (TCP connect and, for a TLS node,
    /// the handshake); its driver runs as a task on this worker. Requests that want an
    /// HTTP/2 connection while one is being opened wait for that one rather than open more.
    pub async fn connect(&self, key: Key, node: &Node, timeout: Duration) -> Result<Sender, ConnectError> {
        if !key.h2 {
            let io = bounded(timeout, open(key, node)).await?;
            let sender = match &node.tls {
                None => handshake(io, key.addr).await?,
                Some(tls) => handshake(upstream_tls::connect(io, tls, &node.address).await?, key.addr).await?,
            };
            return Ok(Sender::H1(sender));
        }
        let cell = self.connecting.borrow_mut().entry(key).or_default().clone();
        let result = cell
            .get_or_init(|| bounded(timeout, connect_h2(key, node)))
            .await
            .clone();
        // The first request back files the connection as the node's shared one.
        let mut connecting = self.connecting.borrow_mut();
        if connecting.get(&key).is_some_and(|c| Rc::ptr_eq(c, &cell)) {
            connecting.remove(&key);
            if let Ok(s) = &result {
                self.shared.borrow_mut().insert(key, s.clone());
            }
        }
        result.map(Sender::H2)
    }
}

/// `fut` within `timeout`.
async fn bounded<T>(timeout: Duration, fut: impl Future<Output = Result<T, ConnectError>>) -> Result<T, ConnectError> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(ConnectError::Timeout))
}

/// A TCP connection to the node, with the upstream's I/O timeouts.
async fn open(key: Key, node: &Node) -> Result<TimedIo<TcpStream>, ConnectError> {
    let addr = key.addr;
    let stream = TcpStream::connect(addr).await.map_err(|e| {
        tracing::debug!(target: "portico::pool", node = %node.address, error = %e, "connect failed");
        ConnectError::Refused
    })?;
    // Small request/response writes must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    Ok(TimedIo::new(stream, key.read, key.send))
}

/// An HTTP/2 connection to a gRPC node: h2c, or TLS that chose (or ignored) ALPN `h2`.
async fn connect_h2(key: Key, node: &Node) -> Result<http2::SendRequest<Body>, ConnectError> {
    let io = open(key, node).await?;
    match &node.tls {
        None => grpc::handshake(io, key.addr).await,
        Some(tls) => {
            let io = upstream_tls::connect(io, tls, &node.address).await?;
            upstream_tls::require_h2(&io, &node.address)?;
            grpc::handshake(io, key.addr).await
        }
    }
}

/// HTTP/1.1 over `io`, the connection driven by a task on this worker.
async fn handshake<T>(io: T, addr: SocketAddr) -> Result<http1::SendRequest<Body>, ConnectError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Requests to upstreams are mostly small: one flattened write beats a vectored one,
    // and a fixed read buffer skips hyper's adaptive sizing on every response.
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        .read_buf_exact_size(Some(16 * 1024))
        .handshake(TokioIo::new(io))
        .await
        .map_err(|_| ConnectError::Refused)?;
    tokio::task::spawn_local(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(target: "portico::pool", %addr, error = %e, "upstream connection ended");
        }
    });
    Ok(sender)
}
