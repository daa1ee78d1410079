//! Keep-alive connections to upstream nodes, one pool per worker thread (no lock, no sharing).
//!
//! A connection goes back to the pool as soon as its response head arrives; hyper reports it
//! ready again (`is_ready`) only once that response's body has been read to the end, and
//! closed (`is_closed`) if the body was abandoned or the upstream hung up. Checkout takes the
//! most recently used ready connection, which keeps the hot set small and warm.

use crate::timed_io::TimedIo;
use crate::upstream_tls;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use portico_plugins::Body;
use portico_upstream::Node;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub type Sender = http1::SendRequest<Body>;

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
}

impl Key {
    pub fn new(node: &Node, read: Duration, send: Duration) -> Self {
        Key {
            addr: node.addr,
            read,
            send,
            tls: node.tls.as_ref().map_or(0, |t| t.fingerprint),
        }
    }
}

#[derive(Default)]
pub struct Pool {
    idle: RefCell<FxHashMap<Key, Vec<Sender>>>,
}

/// Why a new connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    Refused,
    Timeout,
    /// The TLS handshake failed (an untrusted certificate, say); already logged.
    Tls,
}

impl Pool {
    /// A ready pooled connection to `addr`, if there is one.
    pub fn checkout(&self, key: Key) -> Option<Sender> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&key)?;
        while let Some(i) = list.iter().rposition(|s| s.is_ready() || s.is_closed()) {
            let s = list.swap_remove(i);
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    /// Returns a connection whose response head has arrived; hyper keeps it busy until the body is read.
    pub fn put(&self, key: Key, sender: Sender) {
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
    /// the handshake); its driver runs as a task on this worker.
    pub async fn connect(&self, key: Key, node: &Node, timeout: Duration) -> Result<Sender, ConnectError> {
        let addr = key.addr;
        let connect = async {
            let stream = TcpStream::connect(addr).await.map_err(|e| {
                tracing::debug!(target: "portico::pool", %addr, error = %e, "connect failed");
                ConnectError::Refused
            })?;
            // Small request/response writes must not wait for Nagle.
            let _ = stream.set_nodelay(true);
            let io = TimedIo::new(stream, key.read, key.send);
            match &node.tls {
                None => handshake(io, addr).await,
                Some(tls) => handshake(upstream_tls::connect(io, tls, &node.address).await?, addr).await,
            }
        };
        tokio::time::timeout(timeout, connect)
            .await
            .unwrap_or(Err(ConnectError::Timeout))
    }
}

/// HTTP/1.1 over `io`, the connection driven by a task on this worker.
async fn handshake<T>(io: T, addr: SocketAddr) -> Result<Sender, ConnectError>
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
