//! WebSocket upgrades pass through a route: the 101 comes back and bytes flow both ways.

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
