//! WebSocket upgrades pass through a route: the 101 comes back and bytes flow both ways; the
//! handshake goes through the route's auth and rate limits; a close on one side closes the other;
//! a tunnel silent for the upstream's read timeout is closed, a talking one lives on.

#![allow(clippy::unwrap_used)]

mod support;

use support::{Gateway, RawConn, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_passes_through() {
    let up = Upstream::start("ws").await;
    let gw = Gateway::with(
        r#"
routes: [{ id: ws, paths: ["/ws/*"], upstream: { nodes: [{ address: "{{ws}}" }] } }]
"#,
    )
    .var("ws", &up.address())
    .start()
    .await;

    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(
        b"GET /ws/chat HTTP/1.1\r\nHost: h.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    let resp = conn.read_response().await.expect("an answer to the upgrade");
    assert_eq!(resp.status, 101, "{:?} {}", resp.headers, resp.text());
    assert!(
        resp.header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    );
    assert_eq!(resp.header("x-upstream"), Some("ws"));

    // The upstream echoes raw bytes; several round trips, both directions.
    for msg in [&b"\x81\x05hello"[..], b"second frame", &[0u8, 1, 2, 255, 254]] {
        conn.send(msg).await;
        assert_eq!(conn.read_exact(msg.len()).await, msg);
    }

    let seen = up.received();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path(), "/ws/chat");
    assert_eq!(seen[0].header("upgrade").as_deref(), Some("websocket"));
    assert!(seen[0].header("sec-websocket-key").is_some());
}

const HANDSHAKE: &str = "GET /ws/chat HTTP/1.1\r\nHost: h.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// The upgrade request, with `extra` header lines (each ending in CRLF).
fn handshake(extra: &str) -> Vec<u8> {
    format!("{HANDSHAKE}{extra}\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_goes_through_auth_and_rate_limits() {
    let up = Upstream::start("ws").await;
    let gw = Gateway::with(
        r#"
consumers:
  - { username: alice, credentials: { key-auth: { key: alice-key } } }
routes:
  - id: ws
    paths: ["/ws/*"]
    upstream: { nodes: [{ address: "{{ws}}" }] }
    plugins:
      key-auth: {}
      rate-limit: { requests: 1, window: 1m, key: consumer }
"#,
    )
    .var("ws", &up.address())
    .start()
    .await;

    // No key, a wrong key: refused at the handshake, the upstream sees nothing.
    for extra in ["", "apikey: nope\r\n"] {
        let mut conn = RawConn::connect(gw.addr()).await;
        conn.send(&handshake(extra)).await;
        let resp = conn.read_response().await.expect("an answer");
        resp.assert_error(401);
    }
    assert_eq!(up.requests(), 0);

    // With the key: switched, echoing both ways, the key not passed on.
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(&handshake("apikey: alice-key\r\n")).await;
    let resp = conn.read_response().await.expect("an answer");
    assert_eq!(resp.status, 101, "{:?} {}", resp.headers, resp.text());
    for msg in [&b"\x81\x05hello"[..], b"and again"] {
        conn.send(msg).await;
        assert_eq!(conn.read_exact(msg.len()).await, msg);
    }
    let seen = up.received();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-consumer-username").as_deref(), Some("alice"));
    assert_eq!(seen[0].header("apikey"), None);

    // The second handshake of the minute is over alice's limit; the open tunnel is not affected.
    let mut second = RawConn::connect(gw.addr()).await;
    second.send(&handshake("apikey: alice-key\r\n")).await;
    let resp = second.read_response().await.expect("an answer");
    resp.assert_error(429);
    conn.send(b"still open").await;
    assert_eq!(conn.read_exact(10).await, b"still open");
}

/// A WebSocket upstream of its own: answers one upgrade per connection with 101, echoes, and
/// reports when the gateway closes its side; closes its own side on `close`.
struct WsServer {
    addr: std::net::SocketAddr,
    peer_closed: tokio::sync::mpsc::UnboundedReceiver<()>,
    close: std::sync::Arc<tokio::sync::Notify>,
}

async fn ws_server() -> WsServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", support::free_port()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, peer_closed) = tokio::sync::mpsc::unbounded_channel();
    let close = std::sync::Arc::new(tokio::sync::Notify::new());
    let closer = close.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (tx, closer) = (tx.clone(), closer.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await
                    .unwrap();
                loop {
                    tokio::select! {
                        r = s.read(&mut buf) => match r {
                            Ok(0) | Err(_) => {
                                let _ = tx.send(());
                                return;
                            }
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        },
                        // Dropping the socket closes the upstream's side.
                        _ = closer.notified() => return,
                    }
                }
            });
        }
    });
    WsServer {
        addr,
        peer_closed,
        close,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_either_side_closes_the_other() {
    let mut ws = ws_server().await;
    let gw = Gateway::with(
        r#"
routes: [{ id: ws, paths: ["/ws/*"], upstream: { nodes: [{ address: "{{ws}}" }] } }]
"#,
    )
    .var("ws", &ws.addr.to_string())
    .start()
    .await;

    let open = || async {
        let mut conn = RawConn::connect(gw.addr()).await;
        conn.send(&handshake("")).await;
        let resp = conn.read_response().await.expect("an answer");
        assert_eq!(resp.status, 101);
        conn.send(b"ping").await;
        assert_eq!(conn.read_exact(4).await, b"ping");
        conn
    };

    // The client goes away: the upstream's connection is closed.
    let conn = open().await;
    drop(conn);
    tokio::time::timeout(support::DEADLINE, ws.peer_closed.recv())
        .await
        .expect("the upstream to see the tunnel close")
        .unwrap();

    // The upstream goes away: the client's connection is closed.
    let mut conn = open().await;
    ws.close.notify_one();
    assert!(
        conn.closed_within(support::DEADLINE).await,
        "the client's side stays open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_ends_after_the_read_timeout_a_busy_one_lives_on() {
    let mut ws = ws_server().await;
    // As nginx's proxy_read_timeout: a tunnel silent both ways for `timeout.read` is closed.
    let gw = Gateway::with(
        r#"
routes:
  - id: ws
    paths: ["/ws/*"]
    upstream: { nodes: [{ address: "{{ws}}" }], timeout: { read: 1s } }
"#,
    )
    .var("ws", &ws.addr.to_string())
    .start()
    .await;

    let mut tunnels = Vec::new();
    for _ in 0..2 {
        let mut conn = RawConn::connect(gw.addr()).await;
        conn.send(&handshake("")).await;
        let resp = conn.read_response().await.expect("an answer");
        assert_eq!(resp.status, 101);
        tunnels.push(conn);
    }
    let (mut idle, mut busy) = (tunnels.remove(0), tunnels.remove(0));

    // The busy tunnel talks every 250 ms for three times the read timeout: never cut.
    for i in 0..12u8 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        busy.send(&[b'a' + i]).await;
        assert_eq!(busy.read_exact(1).await, [b'a' + i], "the busy tunnel was cut");
    }
    // The idle one was closed on both sides.
    assert!(
        idle.closed_within(support::DEADLINE).await,
        "the idle tunnel stays open"
    );
    tokio::time::timeout(support::DEADLINE, ws.peer_closed.recv())
        .await
        .expect("the upstream to see the idle tunnel close")
        .unwrap();
}
