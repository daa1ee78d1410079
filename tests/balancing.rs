//! Weighted round robin (smooth, like nginx's), nodes dying mid-test, and retries to another
//! node after a connect failure.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use support::{Blackhole, Client, Gateway, Upstream, refused_addr};

/// Sends `n` GETs one after another; the answering upstream of each, in order (or `5xx`).
async fn sequence(gw: &Gateway, client: &Client, n: usize) -> Vec<String> {
    let mut seq = Vec::with_capacity(n);
    for i in 0..n {
        let resp = client.get(&gw.url(&format!("/r/{i}"))).send().await;
        seq.push(match resp.status {
            200 => resp.upstream().expect("X-Upstream"),
            s => s.to_string(),
        });
    }
    seq
}

fn counts(seq: &[String]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for s in seq {
        *m.entry(s.as_str()).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_is_exact_and_smooth() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::with(
        r#"
upstreams:
  - id: u
    nodes: [{ address: "{{a}}", weight: 3 }, { address: "{{b}}", weight: 1 }]
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .var("a", &a.address())
    .var("b", &b.address())
    .start()
    .await;
    let seq = sequence(&gw, &Client::new(), 400).await;
    assert_eq!(counts(&seq), BTreeMap::from([("a", 300), ("b", 100)]), "{seq:?}");
    // Smooth: the pattern repeats every 4 requests, so any 4 in a row hold 3 a and 1 b.
    for (i, w) in seq.windows(4).enumerate() {
        let bs = w.iter().filter(|s| *s == "b").count();
        assert_eq!(bs, 1, "requests {i}..{} are {w:?}: not smooth", i + 4);
    }
    assert_eq!((a.completed(), b.completed()), (300, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_interleaves_like_nginx() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let gw = Gateway::with(
        r#"
upstreams:
  - id: u
    nodes:
      - { address: "{{a}}", weight: 5 }
      - { address: "{{b}}", weight: 1 }
      - { address: "{{c}}", weight: 1 }
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .var("a", &a.address())
    .var("b", &b.address())
    .var("c", &c.address())
    .start()
    .await;
    let seq = sequence(&gw, &Client::new(), 70).await;
    assert_eq!(
        counts(&seq),
        BTreeMap::from([("a", 50), ("b", 10), ("c", 10)]),
        "{seq:?}"
    );
    // nginx's smooth weighted round robin for 5:1:1 is `a a b a c a a`: b and c are never
    // next to each other, and every 7 in a row hold 5 a, 1 b, 1 c.
    for w in seq.windows(7) {
        let c = counts(w);
        assert_eq!(
            c,
            BTreeMap::from([("a", 5), ("b", 1), ("c", 1)]),
            "window {w:?} of {seq:?}"
        );
    }
    for w in seq.windows(2) {
        assert!(w.contains(&"a".to_owned()), "{w:?} in a row: not smooth: {seq:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_weight_nodes_get_nothing() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::with(
        r#"
upstreams:
  - id: u
    nodes: [{ address: "{{a}}", weight: 0 }, { address: "{{b}}", weight: 2 }]
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .var("a", &a.address())
    .var("b", &b.address())
    .start()
    .await;
    let seq = sequence(&gw, &Client::new(), 20).await;
    assert_eq!(counts(&seq), BTreeMap::from([("b", 20)]));
    assert_eq!(a.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_hold_across_two_workers_and_many_connections() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::builder(
        r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 2
upstreams:
  - id: u
    nodes: [{ address: "{{a}}", weight: 3 }, { address: "{{b}}", weight: 1 }]
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .var("a", &a.address())
    .var("b", &b.address())
    .start()
    .await;
    let seq = sequence(&gw, &Client::fresh_connections(), 400).await;
    let c = counts(&seq);
    // Each worker may keep its own smooth sequence: exact per worker, within a few overall.
    let (na, nb) = (c.get("a").copied().unwrap_or(0), c.get("b").copied().unwrap_or(0));
    assert_eq!(na + nb, 400, "{c:?}");
    assert!((290..=310).contains(&na), "3:1 over 400 requests gave {c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_mid_test_is_routed_around() {
    let mut a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::with(
        r#"
upstreams:
  - id: u
    nodes: [{ address: "{{a}}" }, { address: "{{b}}" }]
    retries: 1
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .var("a", &a.address())
    .var("b", &b.address())
    .start()
    .await;
    let client = Client::new();
    let before = sequence(&gw, &client, 20).await;
    assert_eq!(counts(&before), BTreeMap::from([("a", 10), ("b", 10)]), "{before:?}");

    // The gateway holds pooled connections to `a`; they are closed under it.
    a.stop().await;
    let after = sequence(&gw, &client, 40).await;
    assert_eq!(
        counts(&after),
        BTreeMap::from([("b", 40)]),
        "every request after `a` stopped should succeed on `b`: {after:?}"
    );
    // Non-idempotent requests are retried too when the connection could not be made.
    for i in 0..10 {
        let resp = client.post(&gw.url(&format!("/post/{i}"))).body("x").send().await;
        assert_eq!(resp.status, 200, "POST after `a` stopped: {}", resp.text());
        assert_eq!(resp.upstream().as_deref(), Some("b"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_on_another_node() {
    let b = Upstream::start("b").await;
    let gw = Gateway::with(
        r#"
upstreams:
  - { id: retried, nodes: [{ address: "{{dead}}" }, { address: "{{b}}" }], retries: 1 }
  - { id: default-retries, nodes: [{ address: "{{dead}}" }, { address: "{{dead2}}" }, { address: "{{b}}" }] }
  - { id: no-retries, nodes: [{ address: "{{dead}}" }, { address: "{{b}}" }], retries: 0 }
routes:
  - { id: retried, paths: ["/retried/*"], upstream: retried }
  - { id: default-retries, paths: ["/default/*"], upstream: default-retries }
  - { id: no-retries, paths: ["/none/*"], upstream: no-retries }
"#,
    )
    .var("dead", &refused_addr())
    .var("dead2", &refused_addr())
    .var("b", &b.address())
    .start()
    .await;
    let client = Client::new();
    for prefix in ["/retried", "/default"] {
        for i in 0..12 {
            let resp = client.post(&gw.url(&format!("{prefix}/{i}"))).body("data").send().await;
            assert_eq!(
                (resp.status, resp.upstream().as_deref()),
                (200, Some("b")),
                "POST {prefix}/{i}: {}",
                resp.text()
            );
            assert_eq!(resp.echo().body_len(), 4, "the retried request carries its body");
        }
    }
    // Without retries, the requests that went to the dead node fail with 502.
    let mut failed = 0;
    for i in 0..10 {
        let resp = client.get(&gw.url(&format!("/none/{i}"))).send().await;
        match resp.status {
            200 => assert_eq!(resp.upstream().as_deref(), Some("b")),
            _ => {
                resp.assert_error(502);
                failed += 1;
            }
        }
    }
    assert!(failed > 0, "with retries: 0, no request went to the dead node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeouts_are_retried_on_another_node() {
    let hole = Blackhole::start().await;
    let b = Upstream::start("b").await;
    let gw = Gateway::with(
        r#"
upstreams:
  - id: u
    nodes: [{ address: "{{hole}}" }, { address: "{{b}}" }]
    timeout: { connect: 200ms }
    retries: 1
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .var("hole", &hole.address())
    .var("b", &b.address())
    .start()
    .await;
    let client = Client::new();
    for i in 0..4 {
        let resp = client.post(&gw.url(&format!("/t/{i}"))).body("x").send().await;
        assert_eq!(
            (resp.status, resp.upstream().as_deref()),
            (200, Some("b")),
            "{}",
            resp.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_are_retried_on_502_503_504() {
    // SPEC.md, `upstreams[].retries`: "other nodes tried after a connect failure; idempotent
    // methods also on 502/503/504".
    let bad = Upstream::builder("bad").status(503).start().await;
    let good = Upstream::start("good").await;
    let gw = Gateway::with(
        r#"
upstreams:
  - { id: u, nodes: [{ address: "{{bad}}" }, { address: "{{good}}" }], retries: 1 }
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .var("bad", &bad.address())
    .var("good", &good.address())
    .start()
    .await;
    let client = Client::new();
    for i in 0..6 {
        let resp = client.get(&gw.url(&format!("/g/{i}"))).send().await;
        assert_eq!(
            (resp.status, resp.upstream().as_deref()),
            (200, Some("good")),
            "GET /g/{i} should be retried on the other node after a 503: {}",
            resp.text()
        );
    }
    // POST is not idempotent: a 503 from the node it reached is the answer.
    let mut answered_by_bad = 0;
    for i in 0..6 {
        let resp = client.post(&gw.url(&format!("/p/{i}"))).body("once").send().await;
        if resp.upstream().as_deref() == Some("bad") {
            assert_eq!(resp.status, 503);
            answered_by_bad += 1;
        }
    }
    assert!(answered_by_bad > 0, "POSTs were retried after a 503");
    let posts_at_bad = bad.received().iter().filter(|e| e.method() == "POST").count();
    assert_eq!(posts_at_bad, answered_by_bad, "each POST reached one node only");
}
