//! The gateway's own errors: JSON `{"message", "request_id"}` with the spec's statuses.

#![allow(clippy::unwrap_used)]

mod support;

use support::{Blackhole, Client, DEADLINE, Gateway, RawConn, Upstream, eventually, is_uuid, refused_addr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_a_json_404() {
    let gw = Gateway::with(
        r#"
routes: [{ id: only, paths: [/only], methods: [GET], plugins: { mock: { body: only } } }]
"#,
    )
    .start()
    .await;
    let c = Client::new();
    let resp = c.get(&gw.url("/elsewhere")).send().await;
    assert_eq!(resp.assert_error(404), "no route matched");
    assert!(is_uuid(&resp.header("x-request-id").unwrap()));

    let resp = c.post(&gw.url("/only")).send().await;
    assert_eq!(
        resp.assert_error(404),
        "no route matched",
        "a method that no route allows"
    );

    let resp = c.get(&gw.url("/nope")).header("x-request-id", "mine-1").send().await;
    resp.assert_error(404);
    assert_eq!(resp.json()["request_id"], "mine-1", "the client's id is the error's id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_is_a_json_502() {
    let gw = Gateway::with(
        r#"
routes: [{ id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{dead}}" }], retries: 0 } }]
"#,
    )
    .var("dead", &refused_addr())
    .start()
    .await;
    let c = Client::new();
    c.get(&gw.url("/x")).send().await.assert_error(502);
    c.post(&gw.url("/x")).body("payload").send().await.assert_error(502);
    // The gateway keeps serving after upstream failures.
    c.get(&gw.url("/x")).send().await.assert_error(502);
}

/// A server that reads a request and closes the connection without answering.
async fn closing_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// A server that answers every request with bytes that are not HTTP.
async fn garbage_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.0\r\n\x00\x01\x02garbage\r\n\r\n").await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_or_broken_upstream_is_a_json_502() {
    let (closing, t1) = closing_server().await;
    let (garbage, t2) = garbage_server().await;
    let gw = Gateway::with(
        r#"
routes:
  - { id: closing, paths: [/closing], upstream: { nodes: [{ address: "{{closing}}" }], retries: 0 } }
  - { id: garbage, paths: [/garbage], upstream: { nodes: [{ address: "{{garbage}}" }], retries: 0 } }
"#,
    )
    .var("closing", &closing)
    .var("garbage", &garbage)
    .start()
    .await;
    let c = Client::new();
    c.get(&gw.url("/closing")).send().await.assert_error(502);
    c.get(&gw.url("/garbage")).send().await.assert_error(502);
    t1.abort();
    t2.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_a_json_504() {
    let slow = Upstream::builder("slow").hold().start().await;
    let gw = Gateway::with(
        r#"
routes:
  - id: r
    paths: ["/*"]
    upstream: { nodes: [{ address: "{{slow}}" }], timeout: { read: 300ms }, retries: 0 }
"#,
    )
    .var("slow", &slow.address())
    .start()
    .await;
    let resp = Client::new().get(&gw.url("/slow")).send().await;
    resp.assert_error(504);
    assert_eq!(slow.requests(), 1, "the request reached the upstream once");
    slow.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timing_out_does_not_disturb_the_others() {
    let slow = Upstream::builder("slow").hold().start().await;
    let fast = Upstream::start("fast").await;
    let gw = Gateway::with(
        r#"
routes:
  - { id: slow, paths: [/slow], upstream: { nodes: [{ address: "{{slow}}" }], timeout: { read: 2s }, retries: 0 } }
  - { id: fast, paths: [/fast], upstream: { nodes: [{ address: "{{fast}}" }] } }
"#,
    )
    .var("slow", &slow.address())
    .var("fast", &fast.address())
    .start()
    .await;
    let c = Client::new();
    let pending = tokio::spawn({
        let c = c.clone();
        let url = gw.url("/slow");
        async move { c.get(&url).send().await }
    });
    eventually("the slow request to reach its upstream", DEADLINE, || {
        (slow.requests() == 1).then_some(())
    })
    .await;
    // A single worker keeps serving other requests while one waits on its upstream.
    for _ in 0..10 {
        assert_eq!(c.get(&gw.url("/fast")).send().await.echo().server(), "fast");
    }
    pending.await.unwrap().assert_error(504);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_on_a_kept_alive_connection_keep_it_usable() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: ok, paths: [/ok], plugins: { mock: { body: ok } } }
  - { id: dead, paths: [/dead], upstream: { nodes: [{ address: "{{dead}}" }], retries: 0 } }
"#,
    )
    .var("dead", &refused_addr())
    .start()
    .await;
    let mut conn = RawConn::connect(gw.addr()).await;
    for path in ["/missing", "/dead", "/ok", "/missing", "/ok"] {
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: h.test\r\n\r\n").as_bytes())
            .await;
        let resp = conn
            .read_response()
            .await
            .expect("a response on the kept-alive connection");
        match path {
            "/missing" => assert_eq!(resp.assert_error(404), "no route matched"),
            "/dead" => {
                resp.assert_error(502);
            }
            _ => assert_eq!((resp.status, resp.text().as_str()), (200, "ok")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_is_a_json_504() {
    let hole = Blackhole::start().await;
    let gw = Gateway::with(
        r#"
routes:
  - id: r
    paths: ["/*"]
    upstream: { nodes: [{ address: "{{hole}}" }], timeout: { connect: 300ms }, retries: 0 }
"#,
    )
    .var("hole", &hole.address())
    .start()
    .await;
    Client::new().get(&gw.url("/x")).send().await.assert_error(504);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_refusing_is_a_json_502_even_with_retries() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{d1}}" }, { address: "{{d2}}" }], retries: 3 } }
"#,
    )
    .var("d1", &refused_addr())
    .var("d2", &refused_addr())
    .start()
    .await;
    let c = Client::new();
    for _ in 0..3 {
        c.get(&gw.url("/x")).send().await.assert_error(502);
    }
}
