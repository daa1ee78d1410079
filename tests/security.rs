//! acl, ip-restriction, cors and request-size-limit through the real binary.

#![allow(clippy::unwrap_used)]

mod support;

use support::{Client, Gateway, RawConn, Upstream, free_port};

#[tokio::test]
async fn acl_lets_groups_through_and_refuses_the_rest() {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(
        r#"
consumers:
  - { username: gold, groups: [gold], credentials: { key-auth: { key: k-gold } } }
  - { username: banned, groups: [gold, banned], credentials: { key-auth: { key: k-banned } } }
  - { username: nobody, credentials: { key-auth: { key: k-nobody } } }
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: a, paths: ["/a"], upstream: up, plugins: { key-auth: {}, acl: { allow_groups: [gold], deny_groups: [banned] } } }
  - { id: noauth, paths: ["/noauth"], upstream: up, plugins: { acl: { allow_groups: [gold] } } }
  - { id: byname, paths: ["/byname"], upstream: up, plugins: { key-auth: {}, acl: { allow_consumers: [nobody] } } }
"#,
    )
    .var("up", &up.address())
    .start()
    .await;
    let c = Client::new();
    let get = |key: &str| c.get(&gw.url("/a")).header("apikey", key).send();
    assert_eq!(
        get("k-gold").await.echo().header("x-consumer-groups").as_deref(),
        Some("gold")
    );
    for key in ["k-banned", "k-nobody"] {
        let resp = get(key).await;
        resp.assert_error(403);
        let line = gw.access_log_for(&resp.header("x-request-id").unwrap()).await;
        assert_eq!(line["status"], 403);
        assert!(
            line["consumer"].is_string(),
            "the refused consumer is still logged: {line}"
        );
    }
    c.get(&gw.url("/noauth")).send().await.assert_error(403);
    let by_name = |key: &str| c.get(&gw.url("/byname")).header("apikey", key).send();
    assert_eq!(by_name("k-nobody").await.status, 200);
    by_name("k-gold").await.assert_error(403);
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn ip_restriction_judges_the_peer_address() {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(
        r#"
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: allow, paths: ["/allow"], upstream: up, plugins: { ip-restriction: { allow: [127.0.0.0/8] } } }
  - { id: deny, paths: ["/deny"], upstream: up, plugins: { ip-restriction: { deny: [127.0.0.1] } } }
  - { id: other, paths: ["/other"], upstream: up, plugins: { ip-restriction: { allow: [10.0.0.0/8, "2001:db8::/32"] } } }
"#,
    )
    .var("up", &up.address())
    .start()
    .await;
    let c = Client::new();
    assert_eq!(c.get(&gw.url("/allow")).send().await.status, 200);
    // X-Forwarded-For is the client's word, not the peer address.
    let resp = c
        .get(&gw.url("/deny"))
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await;
    assert!(resp.assert_error(403).contains("IP"));
    c.get(&gw.url("/other")).send().await.assert_error(403);
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn ip_restriction_speaks_ipv6() {
    let up = Upstream::start("up").await;
    let port = free_port();
    let gw = Gateway::builder(&format!(
        r#"
gateway:
  listeners: [{{ address: "[::1]:{port}" }}]
  workers: 1
  access_log: {{ path: off }}
upstreams: [{{ id: up, nodes: [{{ address: "{{{{up}}}}" }}] }}]
routes:
  - {{ id: v6, paths: ["/v6"], upstream: up, plugins: {{ ip-restriction: {{ allow: ["::1/128"] }} }} }}
  - {{ id: not, paths: ["/not"], upstream: up, plugins: {{ ip-restriction: {{ deny: ["::/0"] }} }} }}
"#
    ))
    .var("up", &up.address())
    .start()
    .await;
    let c = Client::new();
    // The harness waits for the listeners it placed; this one it does not know of.
    let v6 = format!("http://[::1]:{port}/v6");
    let status = support::eventually_async("the [::1] listener", support::DEADLINE, || async {
        c.get(&v6).try_send().await.ok().map(|r| r.status)
    })
    .await;
    assert_eq!(status, 200);
    c.get(&format!("http://[::1]:{port}/not"))
        .send()
        .await
        .assert_error(403);
    drop(gw);
}

const CORS: &str = r#"
consumers: [{ username: u, credentials: { key-auth: { key: k } } }]
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - id: list
    paths: ["/list"]
    upstream: up
    plugins:
      key-auth: {}
      cors:
        allow_origins: [https://app.example.com]
        allow_methods: [GET, POST]
        allow_headers: [x-custom, content-type]
        expose_headers: [x-request-id]
        max_age: 10m
        allow_credentials: true
  - { id: any, paths: ["/any"], upstream: up, plugins: { cors: { allow_origins: "*" } } }
"#;

#[tokio::test]
async fn cors_preflights_are_answered_by_the_gateway() {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(CORS).var("up", &up.address()).start().await;
    let c = Client::new();
    let preflight = |path: &str, origin: &str| {
        c.request(hyper::Method::OPTIONS, &gw.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-custom")
            .send()
    };
    let resp = preflight("/list", "https://app.example.com").await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(
        resp.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        resp.header("access-control-allow-methods").as_deref(),
        Some("GET, POST")
    );
    assert_eq!(
        resp.header("access-control-allow-headers").as_deref(),
        Some("x-custom, content-type")
    );
    assert_eq!(resp.header("access-control-allow-credentials").as_deref(), Some("true"));
    assert_eq!(resp.header("access-control-max-age").as_deref(), Some("600"));
    assert_eq!(resp.headers_all("vary"), ["Origin"]);

    let resp = preflight("/list", "https://evil.example.com").await;
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), None);

    let resp = preflight("/any", "https://whoever.example").await;
    assert_eq!(resp.header("access-control-allow-origin").as_deref(), Some("*"));
    assert_eq!(resp.header("access-control-allow-headers").as_deref(), Some("x-custom"));
    assert_eq!(up.requests(), 0, "preflights never reach the upstream");
}

#[tokio::test]
async fn cors_headers_decorate_answers_and_rejections() {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(CORS).var("up", &up.address()).start().await;
    let c = Client::new();
    let resp = c
        .get(&gw.url("/list"))
        .header("origin", "https://app.example.com")
        .header("apikey", "k")
        .send()
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(resp.header("access-control-allow-credentials").as_deref(), Some("true"));
    assert_eq!(
        resp.header("access-control-expose-headers").as_deref(),
        Some("x-request-id")
    );
    assert!(
        resp.headers_all("vary")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("origin"))
    );

    // A browser must be able to read the 401, so it carries the CORS headers too.
    let resp = c
        .get(&gw.url("/list"))
        .header("origin", "https://app.example.com")
        .send()
        .await;
    resp.assert_error(401);
    assert_eq!(
        resp.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );

    let resp = c
        .get(&gw.url("/list"))
        .header("origin", "https://evil.example.com")
        .header("apikey", "k")
        .send()
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), None);
    let resp = c.get(&gw.url("/any")).send().await;
    assert_eq!(resp.header("access-control-allow-origin"), None, "no Origin, no CORS");
}

async fn size_limited() -> (Upstream, Gateway) {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(
        r#"
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: small, paths: ["/small"], upstream: up, plugins: { request-size-limit: { max_body: 1kb } } }
  - { id: default, paths: ["/default"], upstream: up, plugins: { request-size-limit: {} } }
"#,
    )
    .var("up", &up.address())
    .start()
    .await;
    (up, gw)
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_before_anything_is_sent() {
    let (up, gw) = size_limited().await;
    let c = Client::new();
    assert_eq!(
        c.post(&gw.url("/small"))
            .body(vec![b'a'; 1024])
            .send()
            .await
            .echo()
            .body_len(),
        1024
    );
    // Only the head is sent: the answer must not wait for a body it will never read (and a
    // client still writing a body the gateway refused could see a reset instead of the 413).
    for (path, len) in [("/small", 1025), ("/default", 1024 * 1024 + 1)] {
        let mut conn = RawConn::connect(gw.addr()).await;
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: h\r\nX-Request-Id: big-{len}\r\nContent-Length: {len}\r\n\r\n");
        conn.send(head.as_bytes()).await;
        let resp = conn.read_response().await.unwrap();
        resp.assert_error(413);
        assert_eq!(resp.header("connection"), Some("close"));
        let line = gw.access_log_for(&format!("big-{len}")).await;
        assert_eq!(line["status"], 413);
    }
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn a_chunked_body_is_cut_at_the_limit() {
    let (up, gw) = size_limited().await;
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(b"POST /small HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n")
        .await;
    conn.send(&[b'a'; 0x200]).await;
    conn.send(b"\r\n0\r\n\r\n").await;
    let ok = conn.read_response().await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());

    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(b"POST /small HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    // Two chunks of 600 bytes cross the 1kb limit; nothing more is sent, so the gateway has
    // read everything it was sent when it answers and closes.
    for _ in 0..2 {
        conn.send(b"258\r\n").await;
        conn.send(&[b'b'; 0x258]).await;
        conn.send(b"\r\n").await;
    }
    let resp = conn.read_response().await.unwrap();
    let msg = resp.assert_error(413);
    assert!(msg.contains("too large"), "{msg}");
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(up.completed(), 1, "the oversize body never arrived whole");
    assert!(up.received().iter().all(|e| e.body_len() <= 1024));
}
