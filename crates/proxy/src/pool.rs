//! Keep-alive connections to upstream nodes, one pool per worker thread (no lock, no sharing).
//!
//! A connection goes back to the pool as soon as its response head arrives; hyper reports it
//! ready again (`is_ready`) only once that response's body has been read to the end, and
//! closed (`is_closed`) if the body was abandoned or the upstream hung up. Checkout takes the
//! most recently used ready connection, which keeps the hot set small and warm.

use crate::timed_io::TimedIo;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use portico_plugins::Body;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

pub type Sender = http1::SendRequest<Body>;

/// Idle connections kept per node; past this a returned connection is simply closed.
const MAX_IDLE_PER_NODE: usize = 512;

/// Connections are shared only between requests that agree on the node and on its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub addr: SocketAddr,
    pub read: Duration,
    pub send: Duration,
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

    /// Opens a new connection within `timeout`; its driver runs as a task on this worker.
    pub async fn connect(&self, key: Key, timeout: Duration) -> Result<Sender, ConnectError> {
        let addr = key.addr;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(ConnectError::Timeout),
            Ok(Err(e)) => {
                tracing::debug!(target: "portico::pool", %addr, error = %e, "connect failed");
                return Err(ConnectError::Refused);
            }
            Ok(Ok(s)) => s,
        };
        // Small request/response writes must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        // Requests to upstreams are mostly small: one flattened write beats a vectored one,
        // and a fixed read buffer skips hyper's adaptive sizing on every response.
        let (sender, conn) = http1::Builder::new()
            .writev(false)
            .read_buf_exact_size(Some(16 * 1024))
            .handshake(TokioIo::new(TimedIo::new(stream, key.read, key.send)))
            .await
            .map_err(|_| ConnectError::Refused)?;
        tokio::task::spawn_local(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(target: "portico::pool", %addr, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}
