//! HTTP/2 downstream: on TLS when ALPN chose `h2`, and on plain listeners when the client
//! starts with the HTTP/2 preface (h2c with prior knowledge).
//!
//! Streams run as tasks on the worker's own thread (a `LocalSet` executor), like HTTP/1
//! connections, and go through the same [`crate::service::handle`].

use crate::conn_watch::End;
use crate::service::{self, Peer};
use crate::worker::Worker;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The client connection preface (RFC 9113 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// `PRI` is registered as a method only so that no HTTP/1 request starts like the preface:
/// three bytes decide.
const DECIDING: usize = 3;

/// Streams one client may have open at once (nginx: 128; hyper's default: 200).
const MAX_STREAMS: u32 = 256;
/// The largest request head accepted, as on HTTP/1 (the head guard's limit).
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Whether a plain connection starts with the HTTP/2 preface. Peeks (reads nothing away),
/// once per connection; `Ok(false)` also at end of stream, which HTTP/1 then handles.
pub async fn starts_with_preface(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; DECIDING];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 || buf[..n] != PREFACE[..n] {
            return Ok(false);
        }
        if n == DECIDING {
            return Ok(true);
        }
        // "P" or "PR" so far: peeking again at once would only see the same bytes.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[derive(Clone, Copy)]
pub(crate) struct LocalExec;

impl<F: Future + 'static> hyper::rt::Executor<F> for LocalExec {
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// How long an idle connection's GOAWAY may take to finish before the connection is dropped.
const IDLE_GOAWAY_WAIT: Duration = Duration::from_secs(5);

/// Serves one HTTP/2 connection until the client closes it, it has had no stream for 30 s
/// (see `conn_watch`), or shutdown; the last two send GOAWAY and let the streams in flight
/// finish.
pub async fn serve<I>(io: I, worker: Rc<Worker>, peer: Rc<Peer>)
where
    I: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let w = worker.clone();
    let activity = peer.activity.clone();
    let svc = service_fn(move |req| {
        let (worker, peer) = (worker.clone(), peer.clone());
        async move { Ok::<_, Infallible>(service::handle(&worker, req.map(service::Inbound::Hyper), &peer).await) }
    });
    let conn = http2::Builder::new(LocalExec)
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let res = tokio::select! {
        res = conn.as_mut() => res,
        end = w.watch.wait(activity) => {
            conn.as_mut().graceful_shutdown();
            if end == End::Shutdown {
                conn.await
            } else {
                // An idle client that does not answer the GOAWAY's ping is not waited for.
                match tokio::time::timeout(IDLE_GOAWAY_WAIT, conn).await {
                    Ok(res) => res,
                    Err(_) => Ok(()),
                }
            }
        }
    };
    if let Err(e) = res {
        tracing::debug!(target: "portico::worker", error = %e, "HTTP/2 connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn detect(first: &[u8]) -> bool {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut c = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        c.write_all(first).await.expect("write");
        let (s, _) = l.accept().await.expect("accept");
        starts_with_preface(&s).await.expect("peek")
    }

    #[tokio::test]
    async fn the_preface_is_told_from_http1() {
        assert!(detect(PREFACE).await);
        assert!(!detect(b"POST / HTTP/1.1\r\n").await);
        assert!(!detect(b"GET / HTTP/1.1\r\n").await);
        assert!(!detect(b"PUT / HTTP/1.1\r\n").await);
    }
}
