//! The gateway's own HTTP/1.1 reader and writer for downstream connections.
//!
//! Most API traffic is requests without a body or with a small one. For those, one loop per
//! connection reads the head with one httparse pass (no second pass by the smuggling guard),
//! takes a small `Content-Length` body that came with it, calls the request path, and writes the response
//! from its header map: no hyper dispatcher, no channel, no per-request read-buffer
//! reallocation. The first request it does not take (a larger, partial or chunked body, an upgrade,
//! HTTP/1.0, a malformed head: see [`request`]) hands the connection, with the bytes already
//! read, to hyper behind the smuggling guard for the rest of its life, so every such shape is
//! answered exactly as before.
//!
//! As hyper does, it watches the socket while a request is in progress: a client that goes
//! away ends the request (its limit-conn place is given back), and pipelined requests wait
//! in the buffer. On both paths a write to the client may not stay blocked for more than
//! [`SEND_TIMEOUT`] (see `timed_io`).

mod request;
mod response;

use crate::conn_watch::End;
use crate::head_guard::{self, MAX_HEAD, StatusLine};
use crate::service::{self, Peer};
use crate::timed_io::TimedIo;
use crate::worker::{self, Worker};
use bytes::BytesMut;
use http::Method;
use request::Parsed;
use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a write to the client may stay blocked (nginx's default `send_timeout`).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Read buffer per connection; heads up to [`MAX_HEAD`] grow it.
const INITIAL: usize = 8 * 1024;

/// Serves one HTTP/1.1 connection until the client or the worker ends it.
pub async fn serve<I>(io: I, worker: Rc<Worker>, peer: Rc<Peer>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TimedIo::send_only(io, SEND_TIMEOUT);
    let closing = Cell::new(false);
    let handed = {
        let mut conn = pin!(run(io, &worker, &peer, &closing));
        tokio::select! {
            biased;
            handed = conn.as_mut() => handed,
            end = worker.watch.wait(peer.activity.clone()) => {
                if end == End::Idle || !peer.activity.busy() {
                    tracing::debug!(target: "portico::worker", ?end, "connection closed");
                    return;
                }
                // Shutdown: finish the request in progress, then close.
                closing.set(true);
                conn.await
            }
        }
    };
    if let Some((io, read)) = handed {
        worker::serve_http1(io, &read, worker, peer).await;
    }
}

/// The request loop. Returns the connection and what was read of it when hyper is to take over.
async fn run<I>(mut io: I, worker: &Worker, peer: &Peer, closing: &Cell<bool>) -> Option<(I, BytesMut)>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(INITIAL);
    let mut out = Vec::with_capacity(1024);
    loop {
        let (req, keep_alive) = loop {
            if !buf.is_empty() {
                match request::parse(&mut buf) {
                    Parsed::Request { req, keep_alive } => break (req, keep_alive),
                    Parsed::Handover => return (!closing.get()).then_some((io, buf)),
                    Parsed::Invalid(why) => {
                        let reply = head_guard::error_response(StatusLine::BadRequest, why);
                        let _ = io.write_all(&reply).await;
                        let _ = io.shutdown().await;
                        return None;
                    }
                    Parsed::Partial => {}
                }
            }
            if closing.get() && buf.is_empty() {
                let _ = io.shutdown().await;
                return None;
            }
            // Once the last request's head is dropped this reuses the same allocation.
            buf.reserve(INITIAL);
            match io.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        };
        let head_only = req.method() == Method::HEAD;
        // Built in place and polled where it stands: the request's future is large, and
        // every move of it would be a copy.
        let handled = pin!(service::handle(worker, req, peer));
        let Some(resp) = while_connected(&mut io, &mut buf, handled).await else {
            tracing::debug!(target: "portico::worker", "client went away during its request");
            return None;
        };
        let keep = keep_alive && !closing.get();
        match response::write(&mut io, &mut out, resp, head_only, keep).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = io.shutdown().await;
                return None;
            }
            Err(e) => {
                tracing::debug!(target: "portico::worker", error = %e, "response not completed");
                return None;
            }
        }
        if out.capacity() > 64 * 1024 {
            out = Vec::with_capacity(1024);
        }
    }
}

/// Runs `handled` while reading ahead into the spare room of `buf`: `None` if the client
/// closed its connection (or it failed) first. Only the room already there is read into,
/// so the head still held by the request never makes the buffer reallocate.
async fn while_connected<I, F>(io: &mut I, buf: &mut BytesMut, mut handled: Pin<&mut F>) -> Option<F::Output>
where
    I: AsyncRead + Unpin,
    F: Future,
{
    poll_fn(|cx| {
        if let Poll::Ready(r) = handled.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        // Up to MAX_HEAD read ahead; the rest waits in the socket.
        while buf.len() < MAX_HEAD && buf.capacity() > buf.len() {
            match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => break,
            }
        }
        Poll::Pending
    })
    .await
}
