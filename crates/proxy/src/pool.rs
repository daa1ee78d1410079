//! Connections to upstream nodes: what makes two of them interchangeable ([`Key`]), opening
//! one (TCP, then TLS for `https`/`grpcs` nodes) within the connect timeout, and the HTTP/2
//! connections of gRPC upstreams.
//!
//! HTTP/1.1 connections are exclusive to one request at a time; their idle list lives in
//! [`crate::h1`]. gRPC upstreams (`scheme: grpc | grpcs`) get one HTTP/2 connection per node
//! and worker, shared by every request of that worker: streams are multiplexed on it, so it
//! is never checked out, only cloned.

use crate::timed_io::TimedIo;
use crate::{grpc, upstream_tls};
use hyper::client::conn::http2;
use portico_plugins::Body;
use portico_upstream::Node;
use portico_upstream::tls::NodeTls;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_rustls::client::TlsStream;

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

/// The HTTP/2 connections of one worker.
#[derive(Default)]
pub struct Pool {
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
    /// The node's shared HTTP/2 connection, if it has one that is still open.
    pub fn checkout_h2(&self, key: Key) -> Option<http2::SendRequest<Body>> {
        let mut shared = self.shared.borrow_mut();
        let s = shared.get(&key)?;
        if s.is_closed() {
            shared.remove(&key);
            return None;
        }
        Some(s.clone())
    }

    /// Opens the node's HTTP/2 connection within `timeout` (TCP connect and, for a TLS node,
    /// the handshake); its driver runs as a task on this worker. Requests that want it while
    /// it is being opened wait for that one rather than open more.
    pub async fn connect_h2(
        &self,
        key: Key,
        node: &Node,
        timeout: Duration,
    ) -> Result<http2::SendRequest<Body>, ConnectError> {
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
        result
    }
}

/// An HTTP/1.1 upstream connection, plain or TLS, with nginx-style socket timeouts underneath.
pub enum Stream {
    Plain(TimedIo<TcpStream>),
    Tls(Box<TlsStream<TimedIo<TcpStream>>>),
}

/// Opens a new HTTP/1.1 connection within `timeout`: TCP to `key.addr`, then the TLS
/// handshake when the node has `tls` (`name` is the node as configured, for logs).
pub async fn connect(key: Key, tls: Option<&NodeTls>, name: &str, timeout: Duration) -> Result<Stream, ConnectError> {
    bounded(timeout, async {
        let io = open(key, name).await?;
        Ok(match tls {
            None => Stream::Plain(io),
            Some(tls) => Stream::Tls(Box::new(upstream_tls::connect(io, tls, name).await?)),
        })
    })
    .await
}

impl Stream {
    fn timed(&self) -> &TimedIo<TcpStream> {
        match self {
            Stream::Plain(io) => io,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Whether the upstream has neither closed the connection nor (on plain HTTP) sent
    /// anything while it sat idle. Costs a syscall only when the reactor saw the socket
    /// become readable; it peeks, so bytes under TLS (a session ticket) stay for TLS to read.
    pub fn still_open(&self) -> bool {
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        match self.timed().get_ref().poll_peek(&mut cx, &mut buf) {
            Poll::Pending => true,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => false,
            // Unasked-for bytes on plain HTTP can only be garbage or an early close notice.
            Poll::Ready(Ok(_)) => matches!(self, Stream::Tls(_)),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Stream::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Stream::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(io) => Pin::new(io).poll_flush(cx),
            Stream::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Stream::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

/// `fut` within `timeout`.
async fn bounded<T>(timeout: Duration, fut: impl Future<Output = Result<T, ConnectError>>) -> Result<T, ConnectError> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(ConnectError::Timeout))
}

/// A TCP connection to the node, with the upstream's I/O timeouts.
async fn open(key: Key, name: &str) -> Result<TimedIo<TcpStream>, ConnectError> {
    let stream = TcpStream::connect(key.addr).await.map_err(|e| {
        tracing::debug!(target: "portico::pool", node = name, error = %e, "connect failed");
        ConnectError::Refused
    })?;
    // Small request/response writes must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    Ok(TimedIo::new(stream, key.read, key.send))
}

/// An HTTP/2 connection to a gRPC node: h2c, or TLS that chose (or ignored) ALPN `h2`.
async fn connect_h2(key: Key, node: &Node) -> Result<http2::SendRequest<Body>, ConnectError> {
    let io = open(key, &node.address).await?;
    match &node.tls {
        None => grpc::handshake(io, key.addr).await,
        Some(tls) => {
            let io = upstream_tls::connect(io, tls, &node.address).await?;
            upstream_tls::require_h2(&io, &node.address)?;
            grpc::handshake(io, key.addr).await
        }
    }
}
