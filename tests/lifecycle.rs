//! Stopping: SIGTERM and SIGINT stop accepting, let in-flight requests finish (bounded by
//! `gateway.shutdown_timeout`), and exit 0.

#![allow(clippy::unwrap_used)]

mod support;

use support::{Client, DEADLINE, Gateway, Upstream, eventually, eventually_async};

fn config() -> &'static str {
    r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 1
  shutdown_timeout: 60s
  access_log: { path: "{{access_log}}" }
routes:
  - { id: slow, paths: [/slow], upstream: { nodes: [{ address: "{{slow}}" }] } }
  - { id: mock, paths: [/mock], plugins: { mock: { body: ok } } }
"#
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let slow = Upstream::builder("slow").hold().start().await;
    let mut gw = Gateway::builder(config()).var("slow", &slow.address()).start().await;
    let client = Client::new();
    // An idle kept-alive connection must not hold the shutdown up.
    assert_eq!(client.get(&gw.url("/mock")).send().await.text(), "ok");

    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), gw.url("/slow"));
        async move { client.get(&url).try_send().await }
    });
    eventually("the slow request to reach its upstream", DEADLINE, || {
        (slow.requests() == 1).then_some(())
    })
    .await;

    gw.sigterm();
    // Stop accepting: new connections are refused while the request is still in flight.
    let addr = gw.addr();
    eventually_async("the listener to close after SIGTERM", DEADLINE, || async move {
        tokio::net::TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    assert!(gw.is_running(), "portico exited with a request in flight");

    slow.release();
    let resp = in_flight.await.unwrap().expect("the in-flight request completes");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.upstream().as_deref(), Some("slow"));

    let status = gw.wait_exit(DEADLINE).await.expect("portico exits once drained");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_bounds_the_drain() {
    let slow = Upstream::builder("slow").hold().start().await;
    let yaml = config().replace("shutdown_timeout: 60s", "shutdown_timeout: 500ms");
    let mut gw = Gateway::builder(&yaml).var("slow", &slow.address()).start().await;
    let in_flight = tokio::spawn({
        let url = gw.url("/slow");
        async move { Client::new().get(&url).try_send().await }
    });
    eventually("the slow request to reach its upstream", DEADLINE, || {
        (slow.requests() == 1).then_some(())
    })
    .await;
    gw.sigterm();
    let status = gw
        .wait_exit(DEADLINE)
        .await
        .expect("portico exits after shutdown_timeout even with a request that never ends");
    assert_eq!(status.code(), Some(0), "exit status: {status}");
    in_flight.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_0() {
    let slow = Upstream::start("slow").await;
    let mut gw = Gateway::builder(config()).var("slow", &slow.address()).start().await;
    assert_eq!(Client::new().get(&gw.url("/slow")).send().await.status, 200);
    gw.signal("INT");
    let status = gw.wait_exit(DEADLINE).await.expect("portico exits on SIGINT");
    assert_eq!(status.code(), Some(0), "exit status: {status}");
}
