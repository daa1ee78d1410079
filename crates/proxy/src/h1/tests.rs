//! The client against a scripted upstream on a real loopback socket.

use super::*;
use http::HeaderValue;
use std::net::SocketAddr;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// An upstream that answers each request it reads with the next canned response and reports
/// every request it read (raw). `Reply` keeps the connection, `Last` closes it after
/// writing, `Hangup` closes it without a word.
#[derive(Clone, Copy)]
enum Step {
    Reply(&'static str),
    Last(&'static str),
    Hangup,
}

async fn upstream(steps: Vec<Step>) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut steps = steps.into_iter();
        'conns: loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                // One request per read is enough for these small requests.
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    continue 'conns;
                }
                buf.extend_from_slice(&chunk[..n]);
                let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
                buf.clear();
                match steps.next() {
                    Some(Step::Reply(r)) => s.write_all(r.as_bytes()).await.expect("write"),
                    Some(Step::Last(r)) => {
                        s.write_all(r.as_bytes()).await.expect("write");
                        continue 'conns;
                    }
                    Some(Step::Hangup) | None => continue 'conns,
                }
            }
        }
    });
    (addr, rx)
}

fn key(addr: SocketAddr) -> Key {
    Key {
        addr,
        read: Duration::from_secs(5),
        send: Duration::from_secs(5),
        tls: 0,
        h2: false,
    }
}

/// A plain connection to `addr`.
async fn connect(addr: SocketAddr) -> Box<Conn> {
    let io = pool::connect(key(addr), None, "test", Duration::from_secs(1))
        .await
        .expect("connect");
    Conn::over(io, key(addr))
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::HOST, HeaderValue::from_static("up.test"));
    h
}

async fn get(conn: Box<Conn>) -> Result<Answer, SendError> {
    conn.send(&Method::GET, &Uri::from_static("/x"), &headers(), None, Body::Empty)
        .await
}

async fn text(answer: Answer) -> (u16, String) {
    let Answer::Response(r) = answer else {
        panic!("not a response")
    };
    let status = r.status().as_u16();
    let bytes = r.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn local() -> tokio::task::LocalSet {
    tokio::task::LocalSet::new()
}

#[tokio::test]
async fn a_small_response_comes_whole_and_the_connection_is_reused() {
    local()
        .run_until(async {
            let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            let (addr, mut seen) = upstream(vec![Step::Reply(ok), Step::Reply(ok)]).await;
            let conn = connect(addr).await;
            assert_eq!(text(get(conn).await.expect("sent")).await, (200, "ok".into()));
            assert!(
                seen.recv()
                    .await
                    .expect("request")
                    .starts_with("GET /x HTTP/1.1\r\nhost: up.test\r\n")
            );
            let again = checkout(key(addr)).expect("pooled");
            assert_eq!(text(get(again).await.expect("sent")).await, (200, "ok".into()));
        })
        .await;
}

#[tokio::test]
async fn chunked_responses_are_decoded_and_then_pooled() {
    local()
        .run_until(async {
            let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n";
            let (addr, _seen) = upstream(vec![Step::Reply(chunked)]).await;
            let conn = connect(addr).await;
            assert_eq!(text(get(conn).await.expect("sent")).await, (200, "hello world".into()));
            assert!(checkout(key(addr)).is_some(), "back in the pool after the last chunk");
        })
        .await;
}

#[tokio::test]
async fn a_close_delimited_body_reads_to_the_end_and_is_not_pooled() {
    local()
        .run_until(async {
            let (addr, _seen) = upstream(vec![Step::Last("HTTP/1.1 200 OK\r\n\r\nuntil close")]).await;
            let conn = connect(addr).await;
            assert_eq!(text(get(conn).await.expect("sent")).await, (200, "until close".into()));
            assert!(checkout(key(addr)).is_none());
        })
        .await;
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_not_handed_out() {
    local()
        .run_until(async {
            let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            let (addr, _seen) = upstream(vec![Step::Last(ok)]).await;
            let conn = connect(addr).await;
            assert_eq!(text(get(conn).await.expect("sent")).await, (200, "ok".into()));
            // The upstream's FIN reaches the reactor at some point; until then the connection
            // may still look open, after that checkout must skip it.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                match checkout(key(addr)) {
                    None => break,
                    Some(c) => idle::put(c),
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "a closed connection stayed pooled"
                );
                tokio::task::yield_now().await;
            }
        })
        .await;
}

#[tokio::test]
async fn a_connection_closed_before_the_response_is_reported_as_closed() {
    local()
        .run_until(async {
            let (addr, _seen) = upstream(vec![Step::Hangup]).await;
            let conn = connect(addr).await;
            assert!(matches!(get(conn).await, Err(SendError::Closed)));
        })
        .await;
}

#[tokio::test]
async fn garbage_is_invalid() {
    local()
        .run_until(async {
            let (addr, _seen) = upstream(vec![Step::Reply("SSH-2.0-OpenSSH\r\n\r\n")]).await;
            let conn = connect(addr).await;
            assert!(matches!(get(conn).await, Err(SendError::Invalid(_))));
        })
        .await;
}

#[tokio::test]
async fn bodies_of_unknown_length_go_chunked() {
    local()
        .run_until(async {
            let (addr, mut seen) = upstream(vec![Step::Reply("HTTP/1.1 204 No Content\r\n\r\n")]).await;
            let conn = connect(addr).await;
            let (tx, body) = body_channel();
            tx.send(bytes::Bytes::from_static(b"abc")).expect("send");
            drop(tx);
            let answer = conn
                .send(&Method::POST, &Uri::from_static("/up"), &headers(), None, body)
                .await;
            assert_eq!(text(answer.expect("sent")).await.0, 204);
            let mut got = String::new();
            while !got.ends_with("0\r\n\r\n") {
                got.push_str(&seen.recv().await.expect("request"));
            }
            assert!(
                got.contains("transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
                "{got:?}"
            );
        })
        .await;
}

/// A request body of unknown length fed from a channel.
fn body_channel() -> (mpsc::UnboundedSender<bytes::Bytes>, Body) {
    let (tx, rx) = mpsc::unbounded_channel::<bytes::Bytes>();
    (tx, Body::Boxed(Box::pin(ChannelBody(rx))))
}

struct ChannelBody(mpsc::UnboundedReceiver<bytes::Bytes>);

impl http_body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = BoxError;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}
