//! HTTP/2 downstream: h2c with prior knowledge on a plain listener, many streams at once on
//! one connection, and the same routing, plugins and access log as HTTP/1.1.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::certs::{TestCa, get, h2_handshake, h2_send, tls_connect};
use support::{Client, DEADLINE, Gateway, Upstream, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_on_a_plain_listener() {
    let up = Upstream::start("u").await;
    let gw = Gateway::proxying_to(&up).await;

    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let mut h2 = h2_handshake(tcp).await;
    let resp = h2_send(&mut h2, get("http://h2c.test/a/b?x=1")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, http::Version::HTTP_2);
    let echo = resp.json();
    assert_eq!(echo["path"], "/a/b");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["headers"]["host"][0], "h2c.test");
    assert_eq!(echo["headers"]["x-forwarded-host"][0], "h2c.test");
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "http");
    let id = resp.header("x-request-id").unwrap();
    let line = gw.access_log_for(&id).await;
    assert_eq!(line["host"], "h2c.test");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);

    // A POST with a body on the same connection.
    let req = http::Request::post("http://h2c.test/upload")
        .body(Full::new(Bytes::from(vec![b'z'; 100_000])))
        .unwrap();
    let resp = h2_send(&mut h2, req).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["body_len"], 100_000);

    // HTTP/1.1 on the same listener is unchanged.
    let echo = Client::new().get(&gw.url("/h1")).send().await.echo();
    assert_eq!(echo.path(), "/h1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_on_one_connection() {
    const STREAMS: usize = 100;
    let up = Upstream::builder("u").hold().start().await;
    let gw = Gateway::proxying_to(&up).await;

    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let h2 = h2_handshake(tcp).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..STREAMS {
        let mut h2 = h2.clone();
        tasks.spawn(async move { h2_send(&mut h2, get(&format!("http://many.test/s/{i}"))).await });
    }
    // Every request reaches the upstream while none has been answered: they are in flight
    // together on the one connection.
    eventually("every stream to reach the upstream", DEADLINE, || {
        (up.completed() == STREAMS).then_some(())
    })
    .await;
    up.release();
    let mut paths = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let resp = r.unwrap();
        assert_eq!(resp.status, 200);
        paths.push(resp.json()["path"].as_str().unwrap().to_owned());
    }
    paths.sort();
    let mut want: Vec<String> = (0..STREAMS).map(|i| format!("/s/{i}")).collect();
    want.sort();
    assert_eq!(paths, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_and_errors_are_the_same_over_http2() {
    let up = Upstream::start("u").await;
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf(&["api.test"]).write(dir.path(), "api");
    let gw = Gateway::builder(
        r#"
gateway:
  listeners:
    - address: "{{listen}}"
      tls: { certificates: [{ cert: "{{cert}}", key: "{{key}}" }] }
  workers: 1
  access_log: { path: "{{access_log}}" }
consumers:
  - { username: alice, credentials: { key-auth: { key: alice-key } } }
routes:
  - id: private
    hosts: [api.test]
    paths: ["/private/*"]
    upstream: { nodes: [{ address: "{{up}}" }] }
    plugins: { key-auth: {} }
"#,
    )
    .var("cert", &cert.display().to_string())
    .var("key", &key.display().to_string())
    .var("up", &up.address())
    .start()
    .await;

    let conn = tls_connect(gw.addr(), Some("api.test"), ca.client(&["h2"])).await;
    let mut h2 = h2_handshake(conn).await;

    let resp = h2_send(&mut h2, get("https://api.test/private/x")).await;
    support::assert_gateway_error(
        resp.status,
        resp.header("content-type").as_deref(),
        resp.header("x-request-id").as_deref(),
        &resp.body,
        401,
    );
    let line = gw.access_log_for(&resp.header("x-request-id").unwrap()).await;
    assert_eq!(
        (line["status"].as_u64(), line["route_id"].as_str()),
        (Some(401), Some("private"))
    );

    let req = http::Request::get("https://api.test/private/x")
        .header("apikey", "alice-key")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = h2_send(&mut h2, req).await;
    assert_eq!(resp.status, 200);
    let echo = resp.json();
    assert_eq!(echo["headers"]["x-consumer-username"][0], "alice");
    assert!(echo["headers"].get("apikey").is_none(), "credentials hidden");

    // Routing by :authority: another host matches no route.
    let resp = h2_send(&mut h2, get("https://elsewhere.test/private/x")).await;
    assert_eq!(resp.status, 404);
}
