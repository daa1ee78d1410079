//! gRPC through the gateway with a real client and server (tonic): unary, server streaming
//! and bidirectional streaming over HTTP/2 both ways (h2c and TLS upstreams), trailers and
//! statuses passed through and logged, and the gateway's own errors answered as gRPC
//! statuses to gRPC requests (and as the spec's JSON to everything else).

#![allow(clippy::unwrap_used)]

#[path = "support/grpc.rs"]
mod grpc_support;
mod support;

use grpc_support::{GrpcClient, GrpcUpstream, msg};
use support::upstream_tls::Ca;
use support::{Client, Gateway, Resp, Upstream, refused_addr};
use tonic::{Code, Request};

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

/// A gateway with one catch-all route to `up` over `scheme: grpc`, plus `extra` routes.
async fn gateway_to(up: &GrpcUpstream) -> Gateway {
    Gateway::with(
        r#"
routes:
  - { id: grpc, paths: ["/test.Echo/*"], upstream: { scheme: grpc, nodes: [{ address: "{{up}}" }] } }
"#,
    )
    .var("up", &up.address())
    .start()
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_pass_through_with_metadata_and_status() {
    let up = GrpcUpstream::start().await;
    let gw = gateway_to(&up).await;
    let mut client = GrpcClient::connect(gw.addr()).await;

    let mut req = Request::new(msg("hello", 0));
    req.metadata_mut()
        .insert("x-request-id", "grpc-unary-1".parse().unwrap());
    req.metadata_mut().insert("x-trace", "abc".parse().unwrap());
    let resp = client.unary("Unary", req).await.unwrap();
    assert_eq!(resp.get_ref().text, "HELLO");
    let md = resp.metadata();
    assert_eq!(
        md.get("x-seen-x-trace").unwrap(),
        "abc",
        "request metadata reaches the upstream"
    );
    assert_eq!(md.get("x-seen-x-forwarded-for").unwrap(), "127.0.0.1");
    assert_eq!(md.get("x-seen-te").unwrap(), "trailers");
    assert_eq!(md.get("x-request-id").unwrap(), "grpc-unary-1");
    let line = gw.access_log_for("grpc-unary-1").await;
    assert_eq!(line["status"], 200);
    assert_eq!(line["grpc_status"], 0, "{line}");
    assert_eq!(line["route_id"], "grpc");
    assert_eq!(line["upstream_addr"], up.address().as_str());

    // An error status and its metadata come through the upstream's trailers.
    let mut req = Request::new(msg("no such thing", 0));
    req.metadata_mut()
        .insert("x-request-id", "grpc-fail-1".parse().unwrap());
    let err = client.unary("Fail", req).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "no such thing");
    assert_eq!(err.metadata().get("x-detail").unwrap(), "42");
    assert_eq!(gw.access_log_for("grpc-fail-1").await["grpc_status"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_ends_with_the_upstreams_trailers() {
    let up = GrpcUpstream::start().await;
    let gw = gateway_to(&up).await;
    let mut client = GrpcClient::connect(gw.addr()).await;
    let (items, trailers) = client.count(50).await.unwrap();
    assert_eq!(items.len(), 50);
    assert_eq!(items[49], msg("item 50", 50));
    assert_eq!(trailers.get("x-count").unwrap(), "50", "custom trailers pass through");
    let (items, _) = client.count(0).await.unwrap();
    assert!(items.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidirectional_streams_interleave_through_the_gateway() {
    let up = GrpcUpstream::start().await;
    let gw = gateway_to(&up).await;
    let mut client = GrpcClient::connect(gw.addr()).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut replies = client
        .chat(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap();
    // Ping-pong: each reply arrives before the next message is sent, so nothing is buffered
    // whole on either side of the gateway.
    for i in 0..20 {
        tx.send(msg(&format!("ping {i}"), i)).await.unwrap();
        let reply = tokio::time::timeout(support::DEADLINE, replies.message())
            .await
            .expect("a reply before the next message")
            .unwrap()
            .unwrap();
        assert_eq!(reply, msg(&format!("PING {i}"), i));
    }
    drop(tx);
    assert_eq!(replies.message().await.unwrap(), None, "the client's end ends the call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_share_one_upstream_connection() {
    let up = GrpcUpstream::start().await;
    let gw = gateway_to(&up).await;
    let client = GrpcClient::connect(gw.addr()).await;
    let calls = (0..40).map(|i| {
        let mut c = client.clone();
        async move { c.unary("Unary", Request::new(msg(&format!("call {i}"), 0))).await }
    });
    let results = futures_join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().get_ref().text, format!("CALL {i}"));
    }
    assert_eq!(up.calls(), 40);
    assert_eq!(
        up.connections(),
        1,
        "concurrent calls are multiplexed on one HTTP/2 connection"
    );
}

/// Runs the futures concurrently on this task, results in order.
async fn futures_join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcs_upstreams_speak_tls_with_alpn_h2() {
    let ca = Ca::new("grpc CA");
    let dir = tempfile::tempdir().unwrap();
    let up = GrpcUpstream::start_with(Some(&ca.issue("grpc", &["127.0.0.1"]))).await;
    let gw = Gateway::with(
        r#"
routes:
  - id: grpcs
    paths: ["/test.Echo/*"]
    upstream: { scheme: grpcs, nodes: [{ address: "{{up}}" }], tls: { ca: "{{ca}}" } }
"#,
    )
    .var("up", &up.address())
    .var("ca", &ca.write(dir.path(), "ca").display().to_string())
    .start()
    .await;
    let mut client = GrpcClient::connect(gw.addr()).await;
    let resp = client.unary("Unary", Request::new(msg("secure", 0))).await.unwrap();
    assert_eq!(resp.get_ref().text, "SECURE");
    let (items, trailers) = client.count(3).await.unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(trailers.get("x-count").unwrap(), "3");
    assert_eq!(up.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_gets_the_gateways_statuses() {
    let up = GrpcUpstream::start().await;
    let gw = Gateway::with(
        r#"
consumers:
  - { username: alice, credentials: { key-auth: { key: alice-key } } }
routes:
  - id: auth
    paths: ["/test.Echo/Unary"]
    upstream: { scheme: grpc, nodes: [{ address: "{{up}}" }] }
    plugins: { key-auth: {} }
  - id: limited
    paths: ["/test.Echo/Count"]
    upstream: { scheme: grpc, nodes: [{ address: "{{up}}" }] }
    plugins: { rate-limit: { requests: 1, window: 1m } }
  - id: down
    paths: ["/test.Echo/Chat"]
    upstream: { scheme: grpc, nodes: [{ address: "{{dead}}" }], retries: 0 }
"#,
    )
    .var("up", &up.address())
    .var("dead", &refused_addr())
    .start()
    .await;
    let mut client = GrpcClient::connect(gw.addr()).await;

    let err = client.unary("Nope", Request::new(msg("x", 0))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert_eq!(err.message(), "no route matched");

    let err = client.unary("Unary", Request::new(msg("x", 0))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let mut req = Request::new(msg("x", 0));
    req.metadata_mut().insert("apikey", "alice-key".parse().unwrap());
    assert_eq!(client.unary("Unary", req).await.unwrap().get_ref().text, "X");

    client.count(1).await.unwrap();
    let err = client.count(1).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    let (_tx, rx) = tokio::sync::mpsc::channel::<grpc_support::Msg>(1);
    let err = client
        .chat(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_nodes_are_probed_with_the_grpc_health_check() {
    let good = GrpcUpstream::start().await;
    let bad = GrpcUpstream::start().await;
    bad.set_serving(false);
    let gw = Gateway::with(
        r#"
routes:
  - id: grpc
    paths: ["/test.Echo/*"]
    upstream:
      scheme: grpc
      nodes: [{ address: "{{good}}" }, { address: "{{bad}}" }]
      retries: 0
      health_check: { active: { interval: 50ms, timeout: 2s, healthy: 1, unhealthy: 1 } }
"#,
    )
    .var("good", &good.address())
    .var("bad", &bad.address())
    .start()
    .await;
    let ejected = format!("node={} reason=health status 2 (not SERVING)", bad.address());
    support::eventually("the NOT_SERVING node ejected", support::DEADLINE, || {
        gw.stderr().contains(&ejected).then_some(())
    })
    .await;
    let mut client = GrpcClient::connect(gw.addr()).await;
    for i in 0..6 {
        let resp = client.unary("Unary", Request::new(msg("x", i))).await.unwrap();
        assert_eq!(resp.get_ref().text, "X");
    }
    assert_eq!((good.calls(), bad.calls()), (6, 0), "only the SERVING node is used");
    assert!(good.health_checks() > 0);

    bad.set_serving(true);
    support::eventually_async("the node back in rotation", support::DEADLINE, || {
        let mut client = client.clone();
        let bad = &bad;
        async move {
            client.unary("Unary", Request::new(msg("y", 0))).await.unwrap();
            (bad.calls() > 0).then_some(())
        }
    })
    .await;
}
