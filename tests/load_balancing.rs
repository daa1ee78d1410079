//! Balancers beyond round robin (consistent hashing, least connections, peak-EWMA), passive
//! and active health checks, and health state across a reload — through the real binary.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;
use support::{Client, DEADLINE, Gateway, Upstream, eventually, eventually_async};

fn two_nodes(balancer_and_more: &str) -> String {
    format!(
        r#"
upstreams:
  - id: u
    nodes: [{{ address: "{{{{a}}}}" }}, {{ address: "{{{{b}}}}" }}]
{balancer_and_more}
routes: [{{ id: r, paths: ["/*"], upstream: u }}]
"#
    )
}

async fn served_by(gw: &Gateway, client: &Client, path: &str, header: Option<(&str, &str)>) -> String {
    let mut req = client.get(&gw.url(path));
    if let Some((n, v)) = header {
        req = req.header(n, v);
    }
    let resp = req.send().await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.upstream().expect("X-Upstream")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_keeps_each_key_on_one_node() {
    let (a, b, c) = (
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    );
    let gw = Gateway::with(
        r#"
upstreams:
  - id: u
    nodes: [{ address: "{{a}}" }, { address: "{{b}}" }, { address: "{{c}}" }]
    balancer: consistent_hash
    hash_on: header:x-user
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .var("a", &a.address())
    .var("b", &b.address())
    .var("c", &c.address())
    .start()
    .await;
    let client = Client::new();
    let mut owner = BTreeMap::new();
    for user in 0..60 {
        let user = format!("user-{user}");
        let first = served_by(&gw, &client, "/x", Some(("x-user", &user))).await;
        for _ in 0..3 {
            assert_eq!(
                served_by(&gw, &client, "/y", Some(("x-user", &user))).await,
                first,
                "{user} moved"
            );
        }
        owner.insert(user, first);
    }
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for node in owner.values() {
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(
        per_node.len(),
        3,
        "60 keys should land on all three nodes: {per_node:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_the_busy_node() {
    let a = Upstream::builder("a").hold().start().await;
    let b = Upstream::start("b").await;
    let gw = Gateway::with(&two_nodes("    balancer: least_connections"))
        .var("a", &a.address())
        .var("b", &b.address())
        .start()
        .await;
    // Requests one at a time: each lands before the next is sent. Once one is held by `a`
    // (one in flight there), every later one must go to the idle `b`.
    let mut pending = Vec::new();
    for i in 0..10 {
        let (client, url) = (Client::new(), gw.url(&format!("/r/{i}")));
        pending.push(tokio::spawn(async move { client.get(&url).send().await.status }));
        eventually("the request to reach a node", DEADLINE, || {
            (a.requests() + b.requests() > i).then_some(())
        })
        .await;
    }
    assert_eq!(a.requests(), 1, "only the first request to land on `a` goes there");
    assert_eq!(b.requests(), 9);
    a.release();
    for p in pending {
        assert_eq!(p.await.unwrap(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ewma_sends_little_to_a_slow_node() {
    let slow = Upstream::builder("slow")
        .delay(Duration::from_millis(150))
        .start()
        .await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let gw = Gateway::with(
        r#"
upstreams:
  - id: u
    nodes: [{ address: "{{slow}}" }, { address: "{{b}}" }, { address: "{{c}}" }]
    balancer: ewma
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .var("slow", &slow.address())
    .var("b", &b.address())
    .var("c", &c.address())
    .start()
    .await;
    let client = Client::new();
    for i in 0..90 {
        served_by(&gw, &client, &format!("/r/{i}"), None).await;
    }
    // Each node is tried while its estimate is unknown; after that the slow one loses every
    // pairing (it is only probed again once its estimate is two seconds old).
    assert!(slow.requests() <= 6, "slow node got {} of 90", slow.requests());
    assert!(b.requests() + c.requests() >= 84);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_failures_eject_a_node_until_a_trial_succeeds() {
    let bad = Upstream::builder("bad").status(500).start().await;
    let good = Upstream::start("good").await;
    let gw = Gateway::with(&two_nodes(
        "    health_check: { passive: { unhealthy_statuses: [500], failures: 2, cooldown: 1s } }",
    ))
    .var("a", &bad.address())
    .var("b", &good.address())
    .start()
    .await;
    let client = Client::new();
    for i in 0..20 {
        let resp = client.get(&gw.url(&format!("/r/{i}"))).send().await;
        assert!(resp.status == 200 || resp.status == 500);
    }
    assert_eq!(bad.requests(), 2, "two failures in a row eject the node");
    gw.wait_stderr("ejected").await;
    // After the cooldown one trial request goes to it; it fails again, so it stays out.
    eventually_async("a trial request after the cooldown", DEADLINE, || async {
        client.get(&gw.url("/probe")).send().await;
        (bad.requests() == 3).then_some(())
    })
    .await;
    for i in 0..10 {
        client.get(&gw.url(&format!("/after/{i}"))).send().await;
    }
    assert_eq!(
        bad.requests(),
        3,
        "a failed trial reopens the circuit for another cooldown"
    );
    gw.wait_stderr("circuit stays open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_checks_take_a_node_out_and_503_when_none_is_left() {
    let sick = Upstream::builder("sick").status(503).start().await;
    let well = Upstream::start("well").await;
    let mut gw = Gateway::with(&two_nodes(
        "    retries: 0\n    health_check: { active: { path: /healthz, interval: 100ms, timeout: 1s, healthy: 1, unhealthy: 2 } }",
    ))
    .var("a", &sick.address())
    .var("b", &well.address())
    .start()
    .await;
    gw.wait_stderr("node unhealthy (active check)").await;
    let before = sick.requests();
    let client = Client::new();
    for i in 0..10 {
        assert_eq!(served_by(&gw, &client, &format!("/r/{i}"), None).await, "well");
    }
    // Only health probes reached `sick` meanwhile, never a request.
    assert!(sick.received().iter().skip(before).all(|e| e.path() == "/healthz"));

    // With the only healthy node gone too, the gateway answers 503 itself.
    gw.rewrite_with(
        r#"
upstreams:
  - id: u
    nodes: [{ address: "{{a}}" }]
    health_check: { active: { path: /healthz, interval: 100ms, timeout: 1s, healthy: 1, unhealthy: 2 } }
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    );
    eventually_async("a 503 once the only node is down", DEADLINE, || async {
        let resp = client.get(&gw.url("/x")).send().await;
        (resp.status == 503).then(|| resp.assert_error(503))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_node_stays_ejected_across_a_reload() {
    let bad = Upstream::builder("bad").status(500).start().await;
    let good = Upstream::start("good").await;
    let passive = "    health_check: { passive: { unhealthy_statuses: [500], failures: 1, cooldown: 1h } }";
    let mut gw = Gateway::with(&two_nodes(passive))
        .var("a", &bad.address())
        .var("b", &good.address())
        .start()
        .await;
    let client = Client::new();
    for i in 0..4 {
        client.get(&gw.url(&format!("/r/{i}"))).send().await;
    }
    assert_eq!(bad.requests(), 1);
    // Same upstream and nodes, one more route: the node's circuit must still be open.
    gw.rewrite_with(&format!(
        "{}  - {{ id: other, paths: [\"/other\"], plugins: {{ mock: {{ body: reloaded }} }} }}\n",
        two_nodes(passive).replace(
            "routes: [{ id: r, paths: [\"/*\"], upstream: u }]",
            "routes:\n  - { id: r, paths: [\"/*\"], upstream: u }"
        )
    ));
    eventually_async("the reload", DEADLINE, || async {
        let resp = client.get(&gw.url("/other")).send().await;
        (resp.status == 200 && resp.text() == "reloaded").then_some(())
    })
    .await;
    for i in 0..6 {
        assert_eq!(served_by(&gw, &client, &format!("/after/{i}"), None).await, "good");
    }
    assert_eq!(bad.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dying_under_load_fails_no_request() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    // Requests to `doomed` are held, so some are in flight on it when it dies.
    let mut doomed = Upstream::builder("doomed").hold().start().await;
    let gw = Gateway::with(
        r#"
upstreams:
  - id: u
    nodes: [{ address: "{{a}}" }, { address: "{{b}}" }, { address: "{{doomed}}" }]
    retries: 2
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .var("a", &a.address())
    .var("b", &b.address())
    .var("doomed", &doomed.address())
    .start()
    .await;
    let url = gw.url("/load");
    let load: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = Client::strict();
                let mut statuses = Vec::new();
                for _ in 0..150 {
                    statuses.push(client.get(&url).send().await.status);
                }
                statuses
            })
        })
        .collect();
    eventually("requests in flight on the doomed node", DEADLINE, || {
        (doomed.requests() >= 3).then_some(())
    })
    .await;
    doomed.stop().await;
    for l in load {
        let statuses = l.await.unwrap();
        assert!(statuses.iter().all(|&s| s == 200), "a client saw {statuses:?}");
    }
    assert!(a.requests() > 0 && b.requests() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_node_that_recovers_takes_traffic_again() {
    let flaky = Upstream::builder("flaky").status(500).start().await;
    let steady = Upstream::start("steady").await;
    let gw = Gateway::with(&two_nodes(
        "    health_check: { passive: { unhealthy_statuses: [500], failures: 1, cooldown: 1s } }",
    ))
    .var("a", &flaky.address())
    .var("b", &steady.address())
    .start()
    .await;
    let client = Client::new();
    for i in 0..4 {
        client.get(&gw.url(&format!("/r/{i}"))).send().await;
    }
    assert_eq!(flaky.requests(), 1, "one failure ejects it");
    gw.wait_stderr("ejected").await;
    flaky.set_status(200);
    // After the cooldown the trial request succeeds and the circuit closes.
    eventually_async("the recovered node to serve again", DEADLINE, || async {
        let resp = client.get(&gw.url("/again")).send().await;
        (resp.upstream().as_deref() == Some("flaky")).then_some(())
    })
    .await;
    gw.wait_stderr("recovered").await;
    let mut seen = BTreeMap::new();
    for i in 0..10 {
        *seen
            .entry(served_by(&gw, &client, &format!("/after/{i}"), None).await)
            .or_insert(0) += 1;
    }
    assert_eq!(seen.get("flaky"), Some(&5), "round robin again: {seen:?}");
}
