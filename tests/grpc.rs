//! gRPC through the gateway: the gateway's own errors answered as gRPC statuses to gRPC
//! requests (and as the spec's JSON to everything else).

#![allow(clippy::unwrap_used)]

mod support;

use support::{Client, Gateway, Resp, Upstream, refused_addr};

/// A gRPC-looking HTTP/1.1 request: the answer's shape is decided by `content-type` alone.
async fn grpc_post(c: &Client, url: &str, extra: &[(&str, &str)]) -> Resp {
    let mut req = c
        .post(url)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in extra {
        req = req.header(k, v);
    }
    // One empty gRPC message: flag 0, length 0.
    req.body(vec![0u8; 5]).send().await
}

/// Asserts a trailers-only gRPC answer with `code`; returns its `grpc-message`.
fn assert_grpc_status(resp: &Resp, code: u32) -> String {
    assert_eq!(
        resp.status,
        200,
        "gRPC errors are HTTP 200: {} {:?}",
        resp.status,
        resp.text()
    );
    assert_eq!(resp.header("content-type").as_deref(), Some("application/grpc"));
    assert_eq!(
        resp.header("grpc-status").as_deref(),
        Some(code.to_string().as_str()),
        "headers: {:?}",
        resp.headers
    );
    assert!(resp.body.is_empty(), "trailers-only: no body, got {:?}", resp.text());
    assert!(resp.header("x-request-id").is_some());
    resp.header("grpc-message").unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_errors_are_grpc_statuses_for_grpc_requests() {
    let slow = Upstream::builder("slow").hold().start().await;
    let ok = Upstream::start("ok").await;
    let gw = Gateway::with(
        r#"
consumers:
  - { username: alice, credentials: { key-auth: { key: alice-key } } }
routes:
  - { id: auth, paths: ["/auth/*"], upstream: { nodes: [{ address: "{{ok}}" }] }, plugins: { key-auth: {} } }
  - { id: limited, paths: ["/limited/*"], upstream: { nodes: [{ address: "{{ok}}" }] }, plugins: { rate-limit: { requests: 1, window: 1m } } }
  - { id: denied, paths: ["/denied/*"], upstream: { nodes: [{ address: "{{ok}}" }] }, plugins: { ip-restriction: { deny: [127.0.0.0/8] } } }
  - { id: small, paths: ["/small/*"], upstream: { nodes: [{ address: "{{ok}}" }] }, plugins: { request-size-limit: { max_body: 2 } } }
  - { id: down, paths: ["/down/*"], upstream: { nodes: [{ address: "{{dead}}" }], retries: 0 } }
  - { id: slow, paths: ["/slow/*"], upstream: { nodes: [{ address: "{{slow}}" }], timeout: { read: 300ms }, retries: 0 } }
"#,
    )
    .var("ok", &ok.address())
    .var("dead", &refused_addr())
    .var("slow", &slow.address())
    .start()
    .await;
    let c = Client::new();

    let resp = grpc_post(&c, &gw.url("/pkg.Svc/Nope"), &[]).await;
    assert_eq!(assert_grpc_status(&resp, 12), "no route matched", "UNIMPLEMENTED");
    let line = gw.access_log_for(&resp.header("x-request-id").unwrap()).await;
    assert_eq!(line["status"], 200);
    assert_eq!(line["grpc_status"], 12);

    let resp = grpc_post(&c, &gw.url("/auth/pkg.Svc/M"), &[]).await;
    assert_grpc_status(&resp, 16); // UNAUTHENTICATED
    let resp = grpc_post(&c, &gw.url("/auth/pkg.Svc/M"), &[("apikey", "alice-key")]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("grpc-status"), None, "the upstream's answer is not touched");

    assert_eq!(grpc_post(&c, &gw.url("/limited/pkg.Svc/M"), &[]).await.status, 200);
    let resp = grpc_post(&c, &gw.url("/limited/pkg.Svc/M"), &[]).await;
    assert_grpc_status(&resp, 8); // RESOURCE_EXHAUSTED
    assert!(resp.header("retry-after").is_some(), "Retry-After stays");

    assert_grpc_status(&grpc_post(&c, &gw.url("/denied/pkg.Svc/M"), &[]).await, 7); // PERMISSION_DENIED
    assert_grpc_status(&grpc_post(&c, &gw.url("/small/pkg.Svc/M"), &[]).await, 8); // body too large
    assert_grpc_status(&grpc_post(&c, &gw.url("/down/pkg.Svc/M"), &[]).await, 14); // UNAVAILABLE
    let resp = grpc_post(&c, &gw.url("/slow/pkg.Svc/M"), &[]).await;
    assert_eq!(assert_grpc_status(&resp, 4), "upstream timed out", "DEADLINE_EXCEEDED");
    slow.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_requests_keep_the_json_errors() {
    let gw = Gateway::with(
        r#"
routes: [{ id: only, paths: [/only], plugins: { mock: { body: only } } }]
"#,
    )
    .start()
    .await;
    let c = Client::new();
    let resp = c
        .post(&gw.url("/elsewhere"))
        .header("content-type", "application/json")
        .send()
        .await;
    assert_eq!(resp.assert_error(404), "no route matched");
    assert_eq!(resp.header("grpc-status"), None);
    let line = gw.access_log_for(&resp.header("x-request-id").unwrap()).await;
    assert!(
        line.get("grpc_status").is_none(),
        "only gRPC requests log a grpc_status: {line}"
    );
}
