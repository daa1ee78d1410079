//! A lean HTTP/1.1 client for plain upstream connections, run inside the request's own task.
//!
//! hyper's client puts every connection in a task of its own and hands each request to it
//! through a channel: two tasks and their wake-ups per request, the largest cost left on
//! Portico's hot path. Here the request task writes the head (and body) itself, parses the
//! response head with httparse (as hyper does) and reads the body as the client takes it; the
//! connection returns to this worker's idle list when the body ends. Framing follows RFC 9112:
//! Content-Length or chunked requests, and responses framed by length, chunks or close.
//!
//! Not done here, by design: pipelining, and reading an early response while a request body
//! is still being sent (the body is sent first, as nginx does with a buffered body).

mod body;
pub(crate) mod encode;
mod head;
mod idle;

pub use idle::checkout;

use crate::forward::Outgoing;
use crate::pool::{self, ConnectError, Key, Stream};
use bytes::BytesMut;
use head::BodyFraming;
use http::{HeaderMap, Method, Response, Uri, response};
use http_body::Body as _;
use http_body_util::BodyExt;
use portico_plugins::{Body, BoxError};
use portico_upstream::Node;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A response head larger than this is an upstream error.
const MAX_HEAD: usize = 64 * 1024;
/// Reads ask for at least this much room.
const READ_SIZE: usize = 16 * 1024;
/// Body bytes gathered before a write; a larger piece is written on its own.
const WRITE_GATHER: usize = 16 * 1024;

/// One keep-alive connection to one upstream node.
pub struct Conn {
    io: Stream,
    /// Bytes read and not yet consumed (the rest of a response, normally nothing).
    buf: BytesMut,
    /// The write buffer, kept between requests.
    out: Vec<u8>,
    key: Key,
    /// When it went back to the idle list ([`crate::conn_watch::seconds`]).
    idle_since: u32,
}

/// What the upstream answered.
pub enum Answer {
    Response(Response<Body>),
    /// 101: the connection now belongs to the tunnel.
    Upgrade(response::Parts, Box<Conn>),
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// The connection ended before any byte of a response arrived: on a pooled connection,
    /// the upstream had closed it while idle.
    Closed,
    Io(io::Error),
    /// The upstream answered with something that is not an HTTP/1.1 response.
    Invalid(&'static str),
    /// The client's request body failed (it went away, broke framing, or went over a limit).
    Body(BoxError),
    /// The request never left (a shared HTTP/2 connection closed first); here is its body.
    Unsent(Body),
}

impl SendError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendError::Io(e) if e.kind() == io::ErrorKind::TimedOut)
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Closed => f.write_str("connection closed before a response"),
            SendError::Io(e) => write!(f, "{e}"),
            SendError::Invalid(why) => f.write_str(why),
            SendError::Body(e) => write!(f, "request body: {e}"),
            SendError::Unsent(_) => f.write_str("connection closed before the request left"),
        }
    }
}

impl Conn {
    /// Opens a connection to `node` within `timeout` (TCP, and TLS for an `https` node).
    pub async fn connect(key: Key, node: &Node, timeout: Duration) -> Result<Box<Conn>, ConnectError> {
        let io = pool::connect(key, node.tls.as_ref(), &node.address, timeout).await?;
        Ok(Self::over(io, key))
    }

    fn over(io: Stream, key: Key) -> Box<Conn> {
        Box::new(Conn {
            io,
            buf: BytesMut::with_capacity(READ_SIZE),
            out: Vec::with_capacity(1024),
            key,
            idle_since: 0,
        })
    }

    /// Sends one request and reads the response head. The connection travels on with the
    /// response: back to the idle list at once when there is no body left to read, inside
    /// the body otherwise, or to the tunnel on a 101.
    pub async fn send(
        mut self: Box<Self>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        outgoing: Option<&Outgoing<'_>>,
        body: Body,
    ) -> Result<Answer, SendError> {
        self.write_request(method, uri, headers, outgoing, body).await?;
        let head_request = *method == Method::HEAD;
        let head = loop {
            match head::parse(&mut self.buf, head_request) {
                Ok(Some(h)) if h.parts.status.is_informational() && h.parts.status != 101 => continue,
                Ok(Some(h)) => break h,
                Ok(None) if self.buf.len() > MAX_HEAD => return Err(SendError::Invalid("response head too large")),
                Ok(None) => {}
                Err(why) => return Err(SendError::Invalid(why)),
            }
            let nothing_yet = self.buf.is_empty();
            match std::future::poll_fn(|cx| self.poll_fill(cx)).await {
                Ok(0) if nothing_yet => return Err(SendError::Closed),
                Ok(0) => return Err(SendError::Invalid("upstream closed mid-head")),
                Ok(_) => {}
                Err(e) if nothing_yet && is_reset(&e) => return Err(SendError::Closed),
                Err(e) => return Err(SendError::Io(e)),
            }
        };
        if head.parts.status == 101 {
            return Ok(Answer::Upgrade(head.parts, self));
        }
        let body = match head.framing {
            BodyFraming::Empty => {
                self.release(head.keep_alive);
                Body::Empty
            }
            // The whole body came with the head (the usual small response): hand the
            // connection back now, no streaming body needed.
            BodyFraming::Length(n) if self.buf.len() as u64 >= n => {
                let data = self.buf.split_to(n as usize).freeze();
                self.release(head.keep_alive);
                Body::full(data)
            }
            framing => Body::Boxed(Box::pin(body::UpstreamBody::new(self, framing, head.keep_alive))),
        };
        Ok(Answer::Response(Response::from_parts(head.parts, body)))
    }

    /// Into the idle list if the response is over and nothing unexpected followed it.
    fn release(self: Box<Self>, keep_alive: bool) {
        if keep_alive && self.buf.is_empty() {
            idle::put(self);
        }
    }

    async fn write_request(
        &mut self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        outgoing: Option<&Outgoing<'_>>,
        mut body: Body,
    ) -> Result<(), SendError> {
        let framing = encode::framing(method, headers, body.size_hint().exact());
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        encode::head(&mut out, method, uri, headers, outgoing, framing);
        let mut sent = 0u64;
        // The head waits for the first piece of body, so both usually leave in one write.
        while !body.is_end_stream() {
            let frame = match body.frame().await {
                None => break,
                Some(Err(e)) => return Err(SendError::Body(e)),
                Some(Ok(f)) => f,
            };
            let Ok(data) = frame.into_data() else { continue };
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            if let encode::Framing::Length(n) = framing
                && sent > n
            {
                return Err(SendError::Body("request body longer than its Content-Length".into()));
            }
            if framing == encode::Framing::Chunked {
                encode::chunk_start(&mut out, data.len());
            }
            if out.len() + data.len() <= WRITE_GATHER {
                out.extend_from_slice(&data);
            } else {
                self.write(&out).await?;
                out.clear();
                self.write(&data).await?;
            }
            if framing == encode::Framing::Chunked {
                out.extend_from_slice(b"\r\n");
            }
            self.write(&out).await?;
            out.clear();
        }
        match framing {
            encode::Framing::Chunked => out.extend_from_slice(encode::LAST_CHUNK),
            encode::Framing::Length(n) if sent != n => {
                return Err(SendError::Body("request body shorter than its Content-Length".into()));
            }
            _ => {}
        }
        if !out.is_empty() {
            self.write(&out).await?;
        }
        // TLS may hold the last record back until flushed (a no-op on plain TCP).
        self.io.flush().await.map_err(SendError::Io)?;
        self.out = out;
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.io.write_all(bytes).await.map_err(|e| {
            if is_reset(&e) {
                SendError::Closed
            } else {
                SendError::Io(e)
            }
        })
    }

    /// Reads what the socket has into `buf`; `Ok(0)` is end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// The connection and whatever the upstream sent right after its 101 head.
    pub fn into_upgraded(self: Box<Self>) -> (Stream, BytesMut) {
        let this = *self;
        (this.io, this.buf)
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
    )
}

#[cfg(test)]
mod tests;
