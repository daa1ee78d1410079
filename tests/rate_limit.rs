//! rate-limit through the real binary: each algorithm admits exactly its limit (local and on
//! Redis), the `X-RateLimit-*` headers and the 429, keys and per-consumer overrides, two
//! gateways sharing one Redis, a Redis outage with `fail_open` true and false, Redis Cluster,
//! and counters kept across a reload.
//!
//! Windows are an hour long, so a count never depends on how fast the machine is.

mod support;

use support::{Client, DEADLINE, Gateway, RedisServer, Upstream, eventually_async};

/// Sends `n` GETs to `path` and returns their statuses.
async fn statuses(c: &Client, gw: &Gateway, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(c.get(&gw.url(path)).send().await.status);
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

/// Two workers and fresh connections: requests land on both workers, which must share counts.
const TWO_WORKERS: &str = r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 2
  access_log: { path: "{{access_log}}" }
"#;

fn three_algorithms(policy: &str) -> String {
    format!(
        r#"
upstreams: [{{ id: up, nodes: [{{ address: "{{{{up}}}}" }}] }}]
routes:
  - {{ id: fixed, paths: [/fixed], upstream: up, plugins: {{ rate-limit: {{ requests: 5, window: 1h, algorithm: fixed_window, {policy} }} }} }}
  - {{ id: sliding, paths: [/sliding], upstream: up, plugins: {{ rate-limit: {{ requests: 7, window: 1h, {policy} }} }} }}
  - {{ id: bucket, paths: [/bucket], upstream: up, plugins: {{ rate-limit: {{ requests: 3, window: 1h, algorithm: token_bucket, {policy} }} }} }}
"#
    )
}

async fn assert_exact_counts(gw: &Gateway) {
    let c = Client::fresh_connections();
    for (path, limit) in [("/fixed", 5), ("/sliding", 7), ("/bucket", 3)] {
        let got = statuses(&c, gw, path, 12).await;
        assert_eq!(count(&got, 200), limit, "{path}: {got:?}");
        assert_eq!(count(&got, 429), 12 - limit, "{path}: {got:?}");
        assert!(
            got[..limit].iter().all(|&s| s == 200),
            "{path}: the first {limit} pass: {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_algorithms_admit_exactly_the_limit() {
    let up = Upstream::start("up").await;
    let gw = Gateway::builder(&format!("{TWO_WORKERS}{}", three_algorithms("policy: local")))
        .var("up", &up.address())
        .start()
        .await;
    assert_exact_counts(&gw).await;
    assert_eq!(up.requests(), 5 + 7 + 3, "refused requests never reach the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_algorithms_admit_exactly_the_limit() {
    let redis = RedisServer::start().await;
    let up = Upstream::start("up").await;
    let yaml = format!(
        "{}  redis: {{ url: \"{{{{redis}}}}\" }}\n{}",
        TWO_WORKERS,
        three_algorithms("policy: redis, timeout: 2s, fail_open: false")
    );
    let gw = Gateway::builder(&yaml)
        .var("up", &up.address())
        .var("redis", &redis.url())
        .start()
        .await;
    assert_exact_counts(&gw).await;
    let keys = redis.cli(&["--scan", "--pattern", "portico:rl:*"]);
    assert_eq!(keys.lines().count(), 3, "one key per route and client: {keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_on_every_response_and_the_429() {
    let up = Upstream::builder("up").status(500).start().await;
    let gw = Gateway::with(
        r#"
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: r, paths: [/r], upstream: up, plugins: { rate-limit: { requests: 3, window: 1h, algorithm: fixed_window } } }
  - { id: free, paths: [/free], upstream: up }
"#,
    )
    .var("up", &up.address())
    .start()
    .await;
    let c = Client::new();
    for remaining in ["2", "1", "0"] {
        let r = c.get(&gw.url("/r")).send().await;
        assert_eq!(r.status, 500, "the upstream's own answer passes: {}", r.text());
        assert_eq!(r.header("x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some(remaining));
        let reset: u64 = r.header("x-ratelimit-reset").expect("reset").parse().expect("seconds");
        assert!((1..=3600).contains(&reset), "reset {reset}");
    }
    let r = c.get(&gw.url("/r")).send().await;
    let message = r.assert_error(429);
    assert!(message.contains("too many requests"), "{message}");
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.header("x-ratelimit-limit").as_deref(), Some("3"));
    assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(r.header("x-ratelimit-reset").is_some());
    let free = c.get(&gw.url("/free")).send().await;
    assert!(
        free.header("x-ratelimit-limit").is_none(),
        "only limited routes carry the headers"
    );
    // The refused request is logged like any other.
    let id = r.header("x-request-id").expect("id");
    assert_eq!(gw.access_log_for(&id).await["status"], 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_keys_fall_back_to_the_ip_and_consumers_override() {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(
        r#"
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
consumers:
  - { username: alice, credentials: { key-auth: { key: alice-key } }, plugins: { rate-limit: { requests: 1, window: 1h, key: consumer } } }
  - { username: bob, credentials: { key-auth: { key: bob-key } } }
routes:
  - id: tenant
    paths: [/tenant]
    upstream: up
    plugins: { rate-limit: { requests: 2, window: 1h, key: "header:x-tenant" } }
  - id: users
    paths: [/users]
    upstream: up
    plugins: { key-auth: {}, rate-limit: { requests: 3, window: 1h, key: consumer } }
"#,
    )
    .var("up", &up.address())
    .start()
    .await;
    let c = Client::new();
    let tenant = |t: Option<&'static str>| {
        let mut r = c.get(&gw.url("/tenant"));
        if let Some(t) = t {
            r = r.header("x-tenant", t);
        }
        async move { r.send().await.status }
    };
    let mut got = Vec::new();
    for t in [Some("a"), Some("a"), Some("a"), Some("b"), None, None, None] {
        got.push(tenant(t).await);
    }
    assert_eq!(
        got,
        [200, 200, 429, 200, 200, 200, 429],
        "per tenant; no header: per IP"
    );

    let user = |key: &'static str| {
        let r = c.get(&gw.url("/users")).header("apikey", key);
        async move { r.send().await }
    };
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(user("alice-key").await.status);
    }
    assert_eq!(alice, [200, 429, 429], "alice's own limit replaces the route's");
    let mut bob = Vec::new();
    for _ in 0..5 {
        bob.push(user("bob-key").await);
    }
    let codes: Vec<u16> = bob.iter().map(|r| r.status).collect();
    assert_eq!(codes, [200, 200, 200, 429, 429], "bob has the route's limit");
    assert_eq!(bob[0].header("x-ratelimit-limit").as_deref(), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_admit_the_limit_in_total() {
    let redis = RedisServer::start().await;
    let up = Upstream::start("up").await;
    let yaml = format!(
        r#"{TWO_WORKERS}  redis: {{ url: "{{{{redis}}}}" }}
upstreams: [{{ id: up, nodes: [{{ address: "{{{{up}}}}" }}] }}]
routes:
  - {{ id: shared, paths: ["/*"], upstream: up, plugins: {{ rate-limit: {{ requests: 10, window: 1h, key: route, policy: redis, timeout: 2s, fail_open: false }} }} }}
"#
    );
    let a = Gateway::builder(&yaml)
        .var("up", &up.address())
        .var("redis", &redis.url())
        .start()
        .await;
    let b = Gateway::builder(&yaml)
        .var("up", &up.address())
        .var("redis", &redis.url())
        .start()
        .await;
    let c = Client::fresh_connections();
    let mut got = Vec::new();
    for i in 0..30 {
        let gw = if i % 2 == 0 { &a } else { &b };
        got.push(c.get(&gw.url("/x")).send().await.status);
    }
    assert_eq!(count(&got, 200), 10, "{got:?}");
    assert_eq!(count(&got, 429), 20, "{got:?}");
    assert_eq!(up.requests(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_open_or_closed_then_recovers() {
    let mut redis = RedisServer::start().await;
    let up = Upstream::start("up").await;
    let yaml = format!(
        r#"{}  redis: {{ url: "{{{{redis}}}}" }}
upstreams: [{{ id: up, nodes: [{{ address: "{{{{up}}}}" }}] }}]
routes:
  - {{ id: open, paths: [/open], upstream: up, plugins: {{ rate-limit: {{ requests: 100, window: 1h, policy: redis, timeout: 1s }} }} }}
  - {{ id: closed, paths: [/closed], upstream: up, plugins: {{ rate-limit: {{ requests: 100, window: 1h, policy: redis, timeout: 1s, fail_open: false }} }} }}
"#,
        support::PREAMBLE
    );
    let gw = Gateway::builder(&yaml)
        .var("up", &up.address())
        .var("redis", &redis.url())
        .start()
        .await;
    let c = Client::new();
    for path in ["/open", "/closed"] {
        let r = c.get(&gw.url(path)).send().await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("99"), "{path}");
    }

    redis.kill().await;
    for _ in 0..3 {
        let open = c.get(&gw.url("/open")).send().await;
        assert_eq!(open.status, 200, "fail_open lets traffic through: {}", open.text());
        assert!(open.header("x-ratelimit-remaining").is_none(), "no count to tell");
        let closed = c.get(&gw.url("/closed")).send().await;
        let message = closed.assert_error(503);
        assert!(message.contains("rate limiter unavailable"), "{message}");
    }

    redis.restart().await;
    let remaining = eventually_async("the gateway to use Redis again", DEADLINE, || {
        let r = c.get(&gw.url("/closed"));
        async move {
            let r = r.send().await;
            (r.status == 200).then(|| r.header("x-ratelimit-remaining"))
        }
    })
    .await;
    assert_eq!(remaining.as_deref(), Some("99"), "a fresh Redis counts from zero");
    let open = c.get(&gw.url("/open")).send().await;
    assert_eq!(open.header("x-ratelimit-remaining").as_deref(), Some("99"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_counts_exactly() {
    let redis = RedisServer::start_cluster().await;
    let up = Upstream::start("up").await;
    let yaml = format!(
        "{}  redis: {{ urls: [\"{{{{redis}}}}\"] }}\n{}",
        TWO_WORKERS,
        three_algorithms("policy: redis, timeout: 2s, fail_open: false")
    );
    let gw = Gateway::builder(&yaml)
        .var("up", &up.address())
        .var("redis", &redis.url())
        .start()
        .await;
    assert_exact_counts(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_counters_of_unchanged_routes() {
    let up = Upstream::start("up").await;
    let routes = r#"
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: kept, paths: [/kept], upstream: up, plugins: { rate-limit: { requests: 5, window: 1h } } }
  - { id: changed, paths: [/changed], upstream: up, plugins: { rate-limit: { requests: 3, window: 1h } } }
"#;
    let mut gw = Gateway::with(routes).var("up", &up.address()).start().await;
    let c = Client::new();
    assert_eq!(statuses(&c, &gw, "/kept", 3).await, [200; 3]);
    assert_eq!(statuses(&c, &gw, "/changed", 4).await, [200, 200, 200, 429]);

    gw.rewrite_with(&format!(
        "{}  - {{ id: new, paths: [/new], upstream: up }}\n",
        routes.replace("requests: 3,", "requests: 4,")
    ));
    eventually_async("the reloaded config to serve /new", DEADLINE, || {
        let r = c.get(&gw.url("/new"));
        async move { (r.send().await.status == 200).then_some(()) }
    })
    .await;
    assert_eq!(
        statuses(&c, &gw, "/kept", 4).await,
        [200, 200, 429, 429],
        "3 of 5 were used before the reload"
    );
    assert_eq!(
        statuses(&c, &gw, "/changed", 5).await,
        [200, 200, 200, 200, 429],
        "a changed limit starts over"
    );
}

#[test]
fn bad_limit_settings_are_located_errors() {
    let (code, out) = support::validate(
        r#"
gateway:
  listeners: [{ address: "127.0.0.1:18080" }]
consumers:
  - { username: a, plugins: { rate-limit: { requests: 1, window: 1s, policy: redis } } }
upstreams: [{ id: u, nodes: [{ address: "127.0.0.1:19001" }] }]
routes:
  - { id: a, paths: [/a], upstream: u, plugins: { rate-limit: { requests: 1, window: 1s, policy: redis } } }
  - { id: b, paths: [/b], upstream: u, plugins: { rate-limit: { requests: 0, window: 1s } } }
  - { id: c, paths: [/c], upstream: u, plugins: { rate-limit: { requests: 1, window: 1s, key: host } } }
  - { id: d, paths: [/d], upstream: u, plugins: { limit-conn: { max: 1, burst: 2 } } }
"#,
    );
    assert_eq!(code, 1, "{out}");
    for (location, says) in [
        ("consumers[0].plugins.rate-limit.policy", "gateway.redis"),
        ("routes[0].plugins.rate-limit.policy", "gateway.redis"),
        ("routes[1].plugins.rate-limit.requests", "at least 1"),
        ("routes[2].plugins.rate-limit.key", "unknown key"),
        ("routes[3].plugins.limit-conn.burst", "unknown field"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{location}: ")))
            .unwrap_or_else(|| panic!("no error at {location} in:\n{out}"));
        assert!(line.contains(says), "{line}");
    }

    let (code, out) = support::validate(
        r#"
gateway:
  listeners: [{ address: "127.0.0.1:18080" }]
  redis: { url: "http://127.0.0.1:6379", urls: ["redis://:secret@127.0.0.1:7000"] }
"#,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("gateway.redis: give either"), "{out}");
    assert!(out.contains("gateway.redis.url: invalid Redis URL"), "{out}");
    assert!(!out.contains("secret"), "{out}");
}
