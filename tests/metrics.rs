//! Prometheus metrics through the real binary: requests are sent, `GET /metrics` on the admin
//! listener is scraped, the exposition text is parsed, and counters, histogram buckets, node
//! gauges, refusals and reloads are checked to move as the requests say they must.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use support::{Client, DEADLINE, Gateway, Upstream, eventually_async, refused_addr};

/// One listener, one worker, the admin API on `{{admin}}`.
const PREAMBLE: &str = r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 1
  access_log: { path: "off" }
  admin: { address: "{{admin}}", api_key: metrics-test-key-0123456789 }
"#;

/// One sample of the exposition text: `name{labels} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed `/metrics` page.
#[derive(Debug)]
struct Page {
    samples: Vec<Sample>,
    text: String,
}

impl Page {
    fn parse(text: &str) -> Page {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => (name, labels(rest.strip_suffix('}').unwrap())),
            };
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        Page {
            samples,
            text: text.to_owned(),
        }
    }

    /// The samples of `name` whose labels include every pair of `want`.
    fn matching(&self, name: &str, want: &[(&str, &str)]) -> Vec<&Sample> {
        (self.samples.iter())
            .filter(|s| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with labels `want` (0 when there is none yet).
    fn get(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        match self.matching(name, want).as_slice() {
            [] => 0.0,
            [one] => one.value,
            many => panic!("{} samples of {name} {want:?}: {many:?}", many.len()),
        }
    }

    /// The sum over every sample of `name` with labels `want`.
    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.matching(name, want).iter().map(|s| s.value).sum()
    }

    /// A histogram's cumulative buckets `(le, count)` for `want`, in order.
    fn buckets(&self, name: &str, want: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let mut b: Vec<(f64, f64)> = self
            .matching(&format!("{name}_bucket"), want)
            .iter()
            .map(|s| {
                let le = &s.labels["le"];
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, s.value)
            })
            .collect();
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        b
    }
}

/// `a="x",b="y"` (values unescaped; ours never hold quotes).
fn labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let end = after.find('"').unwrap();
        out.insert(name.trim_start_matches(',').to_owned(), after[..end].to_owned());
        rest = &after[end + 1..];
    }
    out
}

async fn scrape(gw: &Gateway) -> Page {
    let resp = Client::new().get(&gw.admin_url("/metrics")).send().await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let ct = resp.header("content-type").unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    Page::parse(&resp.text())
}

/// Scrapes until `check` holds (a response's metrics are recorded when its last byte has gone).
async fn scrape_until(gw: &Gateway, what: &str, check: impl Fn(&Page) -> bool) -> Page {
    eventually_async(what, DEADLINE, || async {
        let page = scrape(gw).await;
        check(&page).then_some(page)
    })
    .await
}

const REQS: &str = "portico_http_requests_total";
const DURATION: &str = "portico_http_request_duration_seconds";
const UPSTREAM: &str = "portico_upstream_duration_seconds";

#[tokio::test]
async fn requests_latency_and_bytes_are_counted_by_route_method_and_status() {
    let up = Upstream::start("backend").await;
    let gw = Gateway::builder(&format!(
        "{PREAMBLE}{}",
        r#"
upstreams: [{ id: backend, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: users, paths: ["/users/*"], upstream: backend }
  - { id: teapot, paths: ["/tea"], plugins: { mock: { status: 418, body: short and stout } } }
"#
    ))
    .var("up", &up.address())
    .start()
    .await;
    let before = scrape(&gw).await;
    assert_eq!(before.sum(REQS, &[("route", "users")]), 0.0);
    assert_eq!(before.matching("portico_config_info", &[]).len(), 1);

    let c = Client::new();
    let mut sent_bytes = 0;
    for i in 0..3 {
        let resp = c.get(&gw.url(&format!("/users/{i}?token=secret"))).send().await;
        assert_eq!(resp.status, 200);
        sent_bytes += resp.body.len();
    }
    let resp = c.post(&gw.url("/users/new")).body("hello").send().await;
    assert_eq!(resp.status, 200);
    sent_bytes += resp.body.len();
    let resp = c
        .request(hyper::Method::from_bytes(b"PURGE").unwrap(), &gw.url("/users/x"))
        .send()
        .await;
    assert_eq!(resp.status, 200);
    sent_bytes += resp.body.len();
    assert_eq!(c.get(&gw.url("/tea")).send().await.status, 418);
    assert_eq!(c.get(&gw.url("/nowhere/at/all")).send().await.status, 404);

    let page = scrape_until(&gw, "every request counted", |p| {
        p.get(REQS, &[("route", "users"), ("method", "GET"), ("status", "200")]) == 3.0
            && p.get(REQS, &[("route", "")]) == 1.0
            && p.get(REQS, &[("route", "teapot")]) == 1.0
            && p.get(REQS, &[("route", "users"), ("method", "OTHER")]) == 1.0
            && p.get(REQS, &[("route", "users"), ("method", "POST")]) == 1.0
    })
    .await;
    assert_eq!(
        page.get(REQS, &[("route", ""), ("method", "GET"), ("status", "404")]),
        1.0
    );
    assert_eq!(
        page.get(REQS, &[("route", "teapot"), ("method", "GET"), ("status", "418")]),
        1.0
    );
    assert!(!page.text.contains("nowhere") && !page.text.contains("secret") && !page.text.contains("PURGE"));

    // Histograms: five requests on users, each in exactly one bucket, buckets cumulative.
    for name in [DURATION, UPSTREAM] {
        let users = [("route", "users")];
        assert_eq!(page.get(&format!("{name}_count"), &users), 5.0, "{name}");
        let buckets = page.buckets(name, &users);
        assert!(buckets.len() > 5, "{name}: {buckets:?}");
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative: {buckets:?}");
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, 5.0));
        assert!(page.get(&format!("{name}_sum"), &users) > 0.0);
    }
    assert_eq!(
        page.get(&format!("{UPSTREAM}_count"), &[("route", "teapot")]),
        0.0,
        "a mock has no upstream"
    );
    assert_eq!(page.get(&format!("{DURATION}_count"), &[("route", "teapot")]), 1.0);

    assert_eq!(page.get("portico_bytes_received_total", &[("route", "users")]), 5.0);
    assert_eq!(
        page.get("portico_bytes_sent_total", &[("route", "users")]),
        sent_bytes as f64
    );
    let addr = up.address();
    let node = [("upstream", "backend"), ("node", addr.as_str())];
    assert_eq!(page.get("portico_upstream_node_healthy", &node), 1.0);
    assert_eq!(page.get("portico_upstream_node_inflight", &node), 0.0);
}

#[tokio::test]
async fn in_flight_and_unhealthy_nodes_show() {
    let held = Upstream::builder("held").hold().start().await;
    let dead = refused_addr();
    let gw = Gateway::builder(&format!(
        "{PREAMBLE}{}",
        r#"
upstreams:
  - id: held
    nodes: [{ address: "{{held}}" }]
  - id: flaky
    nodes: [{ address: "{{dead}}" }, { address: "{{held}}" }]
    retries: 0
    health_check: { passive: { failures: 1, cooldown: 1m } }
routes:
  - { id: slow, paths: ["/slow"], upstream: held }
  - { id: flaky, paths: ["/flaky"], upstream: flaky }
"#
    ))
    .var("held", &held.address())
    .var("dead", &dead)
    .start()
    .await;

    let url = gw.url("/slow");
    let waiting = tokio::spawn(async move { Client::new().get(&url).send().await.status });
    let held_addr = held.address();
    let node = [("upstream", "held"), ("node", held_addr.as_str())];
    scrape_until(&gw, "one request in flight on the held node", |p| {
        p.get("portico_upstream_node_inflight", &node) == 1.0
    })
    .await;
    held.release();
    assert_eq!(waiting.await.unwrap(), 200);
    scrape_until(&gw, "no request in flight", |p| {
        p.get("portico_upstream_node_inflight", &node) == 0.0
    })
    .await;

    // Round robin reaches the refused node within two requests; one failure ejects it.
    for _ in 0..2 {
        Client::new().get(&gw.url("/flaky")).send().await;
    }
    let page = scrape_until(&gw, "both flaky requests counted", |p| {
        p.sum(REQS, &[("route", "flaky")]) == 2.0
    })
    .await;
    let dead_node = [("upstream", "flaky"), ("node", dead.as_str())];
    assert_eq!(
        page.get("portico_upstream_node_healthy", &dead_node),
        0.0,
        "{}",
        page.text
    );
    assert_eq!(page.matching("portico_upstream_node_healthy", &dead_node).len(), 1);
    let live = [("upstream", "flaky"), ("node", held_addr.as_str())];
    assert_eq!(page.get("portico_upstream_node_healthy", &live), 1.0);
    assert_eq!(page.get(REQS, &[("route", "flaky"), ("status", "502")]), 1.0);
}

#[tokio::test]
async fn rate_limit_rejections_and_auth_failures_are_counted_by_route_and_plugin() {
    let up = Upstream::start("backend").await;
    let gw = Gateway::builder(&format!(
        "{PREAMBLE}{}",
        r#"
consumers:
  - { username: alice, groups: [staff], credentials: { key-auth: { key: alice-key-0123456789 } } }
  - { username: bob, credentials: { key-auth: { key: bob-key-0123456789 } } }
routes:
  - id: guarded
    paths: ["/g"]
    upstream: { nodes: [{ address: "{{up}}" }] }
    plugins:
      key-auth: {}
      acl: { allow_groups: [staff] }
      rate-limit: { requests: 2, window: 1m, key: consumer }
"#
    ))
    .var("up", &up.address())
    .start()
    .await;
    let c = Client::new();
    let get = |key: Option<&'static str>| {
        let mut req = c.get(&gw.url("/g"));
        if let Some(k) = key {
            req = req.header("apikey", k);
        }
        req.send()
    };
    assert_eq!(get(None).await.status, 401);
    assert_eq!(get(Some("wrong-key-0123456789")).await.status, 401);
    assert_eq!(get(Some("bob-key-0123456789")).await.status, 403);
    for want in [200, 200, 429, 429] {
        assert_eq!(get(Some("alice-key-0123456789")).await.status, want);
    }

    let g = ("route", "guarded");
    let page = scrape_until(&gw, "seven requests counted", |p| p.sum(REQS, &[g]) == 7.0).await;
    assert_eq!(
        page.get("portico_auth_failures_total", &[g, ("plugin", "key-auth")]),
        2.0
    );
    assert_eq!(page.get("portico_auth_failures_total", &[g, ("plugin", "acl")]), 1.0);
    assert_eq!(page.get("portico_rate_limit_rejections_total", &[g]), 2.0);
    assert_eq!(page.get(REQS, &[g, ("status", "401")]), 2.0);
    assert_eq!(page.get(REQS, &[g, ("status", "429")]), 2.0);
    // Refusals never reached the upstream: no upstream latency for them.
    assert_eq!(page.get(&format!("{UPSTREAM}_count"), &[g]), 2.0);
}

#[tokio::test]
async fn reloads_are_counted_and_series_follow_the_config() {
    let up = Upstream::start("backend").await;
    let routes = |extra: &str| {
        format!(
            "{PREAMBLE}upstreams: [{{ id: backend, nodes: [{{ address: \"{}\" }}] }}]\nroutes:\n  - {{ id: kept, paths: [\"/kept\"], upstream: backend }}\n{extra}",
            up.address()
        )
    };
    let mut gw = Gateway::builder(&routes(
        "  - { id: dropped, paths: [\"/dropped\"], upstream: backend }\n",
    ))
    .start()
    .await;
    let c = Client::new();
    for path in ["/kept", "/kept", "/dropped"] {
        assert_eq!(c.get(&gw.url(path)).send().await.status, 200);
    }
    let page = scrape_until(&gw, "three requests", |p| {
        p.sum(REQS, &[("route", "kept")]) == 2.0 && p.sum(REQS, &[("route", "dropped")]) == 1.0
    })
    .await;
    let first_hash = page.matching("portico_config_info", &[])[0].labels["hash"].clone();
    assert_eq!(page.get("portico_config_info", &[("hash", &first_hash)]), 1.0);
    assert_eq!(page.get("portico_config_reloads_total", &[("result", "success")]), 0.0);

    // A valid change: counted, the new hash alone, `kept` keeps counting, `dropped` is gone.
    // The file is watched; SIGHUP makes sure (a second look at the same file is no reload).
    gw.rewrite_config(&routes("  - { id: added, paths: [\"/added\"], upstream: backend }\n"));
    gw.sighup();
    scrape_until(&gw, "the reload counted", |p| {
        p.get("portico_config_reloads_total", &[("result", "success")]) == 1.0
    })
    .await;
    assert_eq!(c.get(&gw.url("/kept")).send().await.status, 200);
    let page = scrape_until(&gw, "kept counted on", |p| p.sum(REQS, &[("route", "kept")]) == 3.0).await;
    let info = page.matching("portico_config_info", &[]);
    assert_eq!(info.len(), 1, "{info:?}");
    assert_ne!(info[0].labels["hash"], first_hash);
    assert!(!page.text.contains("route=\"dropped\""), "{}", page.text);

    // An invalid one: counted as a failure, the served config unchanged.
    gw.rewrite_config(&routes("  - { id: broken, paths: [\"/b\"], upstream: nowhere }\n"));
    gw.sighup();
    let page = scrape_until(&gw, "the refused reload counted", |p| {
        p.get("portico_config_reloads_total", &[("result", "failure")]) >= 1.0
    })
    .await;
    assert_eq!(page.get("portico_config_reloads_total", &[("result", "success")]), 1.0);
    assert_eq!(
        page.matching("portico_config_info", &[])[0].labels["hash"],
        info[0].labels["hash"]
    );
}
