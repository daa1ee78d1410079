//! traffic-split: canary rules on headers, cookies and query; weighted splits between
//! upstreams; the chosen upstream in the access log.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use support::{Client, Gateway, Upstream, validate};

const CONFIG: &str = r#"
upstreams:
  - { id: stable, nodes: [{ address: "{{stable}}" }] }
  - { id: canary, nodes: [{ address: "{{canary}}" }] }
routes:
  - id: r
    paths: ["/*"]
    upstream: stable
    plugins:
      traffic-split:
        rules:
          - { match: { header: { x-canary: "1" } }, upstream: canary }
          - { match: { cookie: { beta: "yes" }, query: { v: "2" } }, upstream: canary }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_rules_pick_the_upstream() {
    let (stable, canary) = (Upstream::start("stable").await, Upstream::start("canary").await);
    let gw = Gateway::with(CONFIG)
        .var("stable", &stable.address())
        .var("canary", &canary.address())
        .start()
        .await;
    let client = Client::new();
    let via = |resp: support::Resp| resp.upstream().unwrap();
    assert_eq!(via(client.get(&gw.url("/a")).send().await), "stable");
    assert_eq!(
        via(client.get(&gw.url("/a")).header("x-canary", "1").send().await),
        "canary"
    );
    assert_eq!(
        via(client.get(&gw.url("/a")).header("x-canary", "0").send().await),
        "stable"
    );
    // Every condition of a rule must hold.
    assert_eq!(
        via(client
            .get(&gw.url("/a?v=2"))
            .header("cookie", "a=1; beta=yes")
            .send()
            .await),
        "canary"
    );
    assert_eq!(
        via(client.get(&gw.url("/a?v=3")).header("cookie", "beta=yes").send().await),
        "stable"
    );
    assert_eq!(via(client.get(&gw.url("/a?v=2")).send().await), "stable");

    let resp = client.get(&gw.url("/logged")).header("x-canary", "1").send().await;
    let id = resp.header("x-request-id").unwrap();
    let line = gw.access_log_for(&id).await;
    assert_eq!(line["upstream"], "canary", "{line}");
    assert_eq!(line["upstream_addr"], canary.address().as_str(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_splits_are_exact_over_a_cycle() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let gw = Gateway::with(
        r#"
upstreams:
  - { id: v1, nodes: [{ address: "{{v1}}" }] }
  - { id: v2, nodes: [{ address: "{{v2}}" }] }
routes:
  - id: r
    paths: ["/*"]
    upstream: v1
    plugins:
      traffic-split:
        weighted: [{ upstream: v2, weight: 10 }, { weight: 90 }]
"#,
    )
    .var("v1", &v1.address())
    .var("v2", &v2.address())
    .start()
    .await;
    let client = Client::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..200 {
        let resp = client.get(&gw.url(&format!("/r/{i}"))).send().await;
        *seen.entry(resp.upstream().unwrap()).or_default() += 1;
    }
    // An entry without `upstream` is the route's own (v1).
    assert_eq!(seen, BTreeMap::from([("v1".to_string(), 180), ("v2".to_string(), 20)]));
}

#[test]
fn unknown_upstreams_and_empty_rules_are_located_errors() {
    let (code, out) = validate(
        r#"
gateway:
  listeners: [{ address: "127.0.0.1:18080" }]
upstreams:
  - { id: stable, nodes: [{ address: "127.0.0.1:19001" }] }
routes:
  - id: r
    paths: ["/*"]
    upstream: stable
    plugins:
      traffic-split:
        rules: [{ match: { header: { x-canary: "1" } }, upstream: nope }]
  - id: s
    paths: ["/s"]
    upstream: stable
    plugins:
      traffic-split: {}
"#,
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(r#"routes[0].plugins.traffic-split.rules[0].upstream: unknown upstream "nope""#),
        "{out}"
    );
    assert!(out.contains("routes[1].plugins.traffic-split"), "{out}");
}
