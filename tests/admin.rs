//! The admin API through the real binary: off unless configured, the key, every endpoint's
//! JSON, node health as checks see it, answers that follow a reload, secrets masked
//! everywhere, writes refused in file mode, unknown paths and wrong methods.

#![allow(clippy::unwrap_used)]

mod support;

use hyper::Method;
use std::time::{Duration, Instant};
use support::gateway::run_until_exit;
use support::{
    Client, DEADLINE, Gateway, POLL, RawConn, Resp, Upstream, check_gateway_error, eventually_async, free_port,
};

const KEY: &str = "admin-key-for-tests-0123456789";

/// One listener, one worker, the admin API on `{{admin}}` with [`KEY`].
const ADMIN_PREAMBLE: &str = r#"
gateway:
  listeners:
    - address: "{{listen}}"
  workers: 1
  access_log: { path: "{{access_log}}" }
  admin: { address: "{{admin}}", api_key: admin-key-for-tests-0123456789 }
"#;

fn with_admin(rest: &str) -> support::gateway::GatewayBuilder {
    Gateway::builder(&format!("{ADMIN_PREAMBLE}{rest}"))
}

async fn admin_get(gw: &Gateway, path: &str) -> Resp {
    Client::new()
        .get(&gw.admin_url(path))
        .header("x-api-key", KEY)
        .send()
        .await
}

fn assert_admin_error(resp: &Resp, status: u16) -> String {
    check_gateway_error(
        resp.status,
        resp.header("content-type").as_deref(),
        resp.header("x-request-id").as_deref(),
        &resp.body,
        status,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The TCP ports process `pid` listens on, read from /proc (no tool needed).
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            if cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                let port = cols[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports.sort_unstable();
    ports
}

#[tokio::test]
async fn off_unless_configured() {
    let up = Upstream::start("a").await;
    let gw = Gateway::proxying_to(&up).await;
    assert_eq!(
        listening_ports(gw.pid()),
        vec![gw.addr().port()],
        "only the listener, no admin port"
    );

    let gw = with_admin(r#"routes: [{ id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{a}}" }] } }]"#)
        .var("a", &up.address())
        .start()
        .await;
    let admin_port: u16 = gw.admin_url("").rsplit(':').next().unwrap().parse().unwrap();
    let mut want = vec![gw.addr().port(), admin_port];
    want.sort_unstable();
    assert_eq!(listening_ports(gw.pid()), want);
}

#[tokio::test]
async fn every_admin_call_needs_the_right_key() {
    let gw = with_admin(r#"routes: [{ id: m, paths: [/m], plugins: { mock: { body: hi } } }]"#)
        .start()
        .await;
    let client = Client::new();
    for path in [
        "/admin/routes",
        "/admin/config",
        "/admin/routes/m",
        "/admin/no-such-thing",
    ] {
        let missing = client.get(&gw.admin_url(path)).send().await;
        assert_admin_error(&missing, 401);
        for wrong in [
            "wrong",
            "admin-key-for-tests-012345678",
            "admin-key-for-tests-01234567890",
            "",
        ] {
            let resp = client.get(&gw.admin_url(path)).header("x-api-key", wrong).send().await;
            assert_admin_error(&resp, 401);
        }
    }
    let ok = admin_get(&gw, "/admin/routes").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    // No key for these two.
    assert_eq!(client.get(&gw.admin_url("/healthz")).send().await.status, 200);
    assert_eq!(client.get(&gw.admin_url("/metrics")).send().await.status, 200);
    assert!(!gw.stderr().contains(KEY), "the key is never logged");
}

#[tokio::test]
async fn each_endpoint_answers_json() {
    let up = Upstream::start("users").await;
    let gw = with_admin(
        r#"
upstreams:
  - { id: users, nodes: [{ address: "{{users}}", weight: 3 }], timeout: { connect: 1s } }
consumers:
  - { username: alice, groups: [gold], credentials: { key-auth: { key: alice-key-123456 } } }
routes:
  - { id: users-api, paths: [/users, "/users/{id}"], methods: [GET], upstream: users, plugins: { key-auth: {} } }
  - { id: m, paths: [/m], priority: 2, plugins: { mock: { status: 202 } } }
"#,
    )
    .var("users", &up.address())
    .start()
    .await;

    let health = Client::new().get(&gw.admin_url("/healthz")).send().await;
    assert_eq!(health.status, 200);
    assert_eq!(health.header("content-type").as_deref(), Some("application/json"));
    let h = health.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["config"]["routes"], 2);
    assert_eq!(h["config"]["store"], "file");
    assert!(h["detail"].is_object(), "{h}");

    assert_eq!(Client::new().get(&gw.url("/m")).send().await.status, 202);
    let metrics = Client::new().get(&gw.admin_url("/metrics")).send().await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(
        text.contains(&format!(
            "portico_config_info{{hash=\"{}\"}} 1",
            h["config"]["hash"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(text.contains("portico_http_requests_total{"), "{text}");
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        metrics.header("content-type")
    );

    let routes = admin_get(&gw, "/admin/routes").await.json();
    assert_eq!(routes["count"], 2);
    assert_eq!(routes["routes"][0]["id"], "users-api");
    assert_eq!(routes["routes"][0]["paths"][1], "/users/{id}");
    assert_eq!(routes["routes"][0]["upstream"], "users");
    assert_eq!(routes["routes"][1]["priority"], 2);
    assert_eq!(routes["hash"], h["config"]["hash"]);

    let upstreams = admin_get(&gw, "/admin/upstreams").await.json();
    assert_eq!(upstreams["upstreams"][0]["nodes"][0]["weight"], 3);
    assert_eq!(upstreams["upstreams"][0]["timeout"]["connect"], "1s");
    let consumers = admin_get(&gw, "/admin/consumers").await.json();
    assert_eq!(consumers["consumers"][0]["username"], "alice");
    assert_eq!(consumers["consumers"][0]["groups"][0], "gold");

    let one = admin_get(&gw, "/admin/routes/users-api").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["methods"][0], "GET");
    assert_eq!(admin_get(&gw, "/admin/upstreams/users").await.json()["id"], "users");
    assert_eq!(
        admin_get(&gw, "/admin/consumers/alice").await.json()["username"],
        "alice"
    );
    for unknown in [
        "/admin/routes/nope",
        "/admin/upstreams/nope",
        "/admin/consumers/nope",
        "/admin/upstreams/nope/health",
    ] {
        assert_admin_error(&admin_get(&gw, unknown).await, 404);
    }

    let node = &admin_get(&gw, "/admin/upstreams/users/health").await.json()["nodes"][0];
    assert_eq!(node["address"], up.address());
    assert_eq!(node["weight"], 3);
    assert_eq!(node["healthy"], true, "{node}");
    assert_eq!(node["in_flight"], 0);

    let config = admin_get(&gw, "/admin/config").await.json();
    assert_eq!(config["hash"], h["config"]["hash"]);
    assert_eq!(config["config"]["routes"][1]["plugins"]["mock"]["status"], 202);
    assert_eq!(config["config"]["gateway"]["workers"], 1);
}

#[tokio::test]
async fn node_health_shows_a_stopped_node_and_why() {
    let mut active = Upstream::start("active-a").await;
    let active_b = Upstream::start("active-b").await;
    let passive = Upstream::builder("passive").status(500).start().await;
    let gw = with_admin(
        r#"
upstreams:
  - id: checked
    nodes: [{ address: "{{a}}" }, { address: "{{b}}" }]
    health_check: { active: { path: /, interval: 100ms, timeout: 1s, healthy: 1, unhealthy: 2 } }
  - id: breaker
    nodes: [{ address: "{{p}}" }]
    health_check: { passive: { failures: 2, cooldown: 1m } }
routes:
  - { id: checked, paths: [/c], upstream: checked }
  - { id: breaker, paths: [/p], upstream: breaker }
"#,
    )
    .var("a", &active.address())
    .var("b", &active_b.address())
    .var("p", &passive.address())
    .start()
    .await;

    // Active: both nodes up, then one stops and its check fails.
    let stopped = active.address();
    active.stop().await;
    let node = eventually_async("the stopped node marked down by active checks", DEADLINE, || async {
        let h = admin_get(&gw, "/admin/upstreams/checked/health").await.json();
        let nodes = h["nodes"].as_array().cloned().unwrap_or_default();
        nodes
            .into_iter()
            .find(|n| n["address"] == stopped && n["healthy"] == false)
    })
    .await;
    assert_eq!(node["active"]["state"], "down", "{node}");
    assert!(
        node["reason"].as_str().unwrap().contains("active check failing"),
        "{node}"
    );
    assert!(
        node["active"]["last_error"].as_str().unwrap().contains("connect"),
        "{node}"
    );
    assert!(node["last_change"]["what"].as_str().unwrap().contains("down"), "{node}");
    let h = admin_get(&gw, "/admin/upstreams/checked/health").await.json();
    let other = h["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["address"] == active_b.address())
        .unwrap()
        .clone();
    assert_eq!(other["healthy"], true, "{h}");

    // Passive: two 500s open the circuit.
    for _ in 0..2 {
        assert_eq!(Client::new().get(&gw.url("/p")).send().await.status, 500);
    }
    let h = admin_get(&gw, "/admin/upstreams/breaker/health").await.json();
    let node = &h["nodes"][0];
    assert_eq!(node["healthy"], false, "{h}");
    assert_eq!(node["passive"]["circuit"], "open", "{h}");
    assert!(node["reason"].as_str().unwrap().contains("circuit open"), "{h}");
    assert_eq!(h["healthy_nodes"], 0);
}

#[tokio::test]
async fn answers_follow_a_reload() {
    let mut gw = with_admin(r#"routes: [{ id: one, paths: [/one], plugins: { mock: {} } }]"#)
        .start()
        .await;
    let before = admin_get(&gw, "/admin/config").await.json()["hash"].clone();
    let rotated = format!(
        "{}{}",
        ADMIN_PREAMBLE.replace(KEY, "rotated-admin-key-abcdefghij"),
        r#"
routes:
  - { id: one, paths: [/one], plugins: { mock: {} } }
  - { id: two, paths: [/two], plugins: { mock: {} } }
"#
    );
    gw.rewrite_config(&rotated);
    let start = Instant::now();
    let mut written = Instant::now();
    let routes = loop {
        let r = Client::new()
            .get(&gw.admin_url("/admin/routes"))
            .header("x-api-key", "rotated-admin-key-abcdefghij")
            .send()
            .await;
        if r.status == 200 && r.json()["count"] == 2 {
            break r.json();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the reloaded routes never showed in /admin/routes"
        );
        // Right after start the file watcher may take its first look after the rewrite and
        // see nothing to do: write the file again (a new inode) until the reload shows.
        if written.elapsed() > Duration::from_secs(1) {
            gw.rewrite_config(&rotated);
            written = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(routes["routes"][1]["id"], "two");
    assert_ne!(routes["hash"], before);
    let health = Client::new().get(&gw.admin_url("/healthz")).send().await.json();
    assert_eq!(health["config"]["hash"], routes["hash"]);
    assert_eq!(health["config"]["routes"], 2);
    // The old key stopped working with the reload.
    assert_admin_error(&admin_get(&gw, "/admin/routes").await, 401);
}

/// Distinctive secrets in every secret field; none may appear in any admin answer or log.
#[tokio::test]
async fn no_secret_appears_in_any_answer() {
    let secrets = [
        "S3CRET-ADMIN-KEY-0001",
        "S3CRET-KEYAUTH-0002",
        "S3CRET-BASIC-0003",
        "S3CRET-JWT-0004",
        "S3CRET-REDIS-0005",
        "S3CRET-HEADER-0006",
        "S3CRET-ENV-0007",
        "S3CRET-BOB-BASIC-0008",
    ];
    let gw = Gateway::builder(
        r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 1
  access_log: { path: "{{access_log}}" }
  admin: { address: "{{admin}}", api_key: S3CRET-ADMIN-KEY-0001 }
  redis: { url: "redis://portico:S3CRET-REDIS-0005@127.0.0.1:1/0" }
consumers:
  - username: alice
    credentials:
      key-auth: { key: S3CRET-KEYAUTH-0002 }
      basic-auth: { password: S3CRET-BASIC-0003 }
      jwt-auth: { key: alice-app, algorithm: HS256, secret: S3CRET-JWT-0004 }
  - username: bob
    credentials:
      key-auth: { key: "${BOB_KEY}" }
      basic-auth: { password: S3CRET-BOB-BASIC-0008 }
routes:
  - id: r
    paths: ["/*"]
    plugins:
      key-auth: {}
      request-transformer: { set_headers: { Authorization: "Bearer S3CRET-HEADER-0006" } }
      mock: { body: ok }
"#,
    )
    .env("BOB_KEY", "S3CRET-ENV-0007")
    .start()
    .await;
    let client = Client::new();
    let get = |path: &str| {
        client
            .get(&gw.admin_url(path))
            .header("x-api-key", "S3CRET-ADMIN-KEY-0001")
            .send()
    };
    // The gateway does hold them: alice's key works.
    let proxied = client
        .get(&gw.url("/x"))
        .header("apikey", "S3CRET-KEYAUTH-0002")
        .send()
        .await;
    assert_eq!(proxied.status, 200, "{}", proxied.text());

    let mut answers = Vec::new();
    for path in [
        "/admin/config",
        "/admin/consumers",
        "/admin/consumers/alice",
        "/admin/consumers/bob",
        "/admin/routes",
        "/admin/routes/r",
        "/admin/upstreams",
        "/admin/no-such-path",
    ] {
        let resp = get(path).await;
        answers.push((path, resp.status, resp.text()));
    }
    for path in ["/healthz", "/metrics"] {
        let resp = client.get(&gw.admin_url(path)).send().await;
        answers.push((path, resp.status, resp.text()));
    }
    let config = &answers[0].2;
    assert!(config.contains("******"), "{config}");
    assert!(config.contains("alice-app"), "public fields stay: {config}");
    for (path, status, body) in &answers {
        for s in secrets {
            assert!(!body.contains(s), "{s} appears in {path} ({status}): {body}");
        }
    }
    let log = gw.stderr();
    for s in secrets {
        assert!(!log.contains(s), "{s} appears in the log: {log}");
    }
}

#[tokio::test]
async fn writes_are_409_in_file_mode() {
    let mut gw = with_admin(r#"routes: [{ id: m, paths: [/m], plugins: { mock: {} } }]"#)
        .start()
        .await;
    let client = Client::new();
    for (method, path, body) in [
        (
            Method::PUT,
            "/admin/routes/m",
            r#"{"paths": ["/x"], "plugins": {"mock": {}}}"#,
        ),
        (
            Method::PUT,
            "/admin/routes/new",
            r#"{"paths": ["/y"], "plugins": {"mock": {}}}"#,
        ),
        (Method::DELETE, "/admin/routes/m", ""),
        (
            Method::PUT,
            "/admin/upstreams/u",
            r#"{"nodes": [{"address": "127.0.0.1:1"}]}"#,
        ),
        (Method::DELETE, "/admin/consumers/nobody", ""),
    ] {
        let resp = client
            .request(method.clone(), &gw.admin_url(path))
            .header("x-api-key", KEY)
            .body(body)
            .send()
            .await;
        let message = assert_admin_error(&resp, 409);
        let file = gw.config_path().display().to_string();
        assert!(
            message.contains(&file),
            "{method} {path}: {message:?} should name {file}"
        );
    }
    let routes = admin_get(&gw, "/admin/routes").await.json();
    assert_eq!(routes["count"], 1);
    assert_eq!(routes["routes"][0]["paths"][0], "/m");
    assert!(gw.is_running());
}

#[tokio::test]
async fn unknown_paths_404_wrong_methods_405_garbage_400() {
    let gw = with_admin(r#"routes: [{ id: m, paths: [/m], plugins: { mock: {} } }]"#)
        .start()
        .await;
    let client = Client::new();
    for (method, path, want) in [
        (Method::GET, "/", 404),
        (Method::GET, "/nope", 404),
        (Method::GET, "/admin/widgets", 404),
        (Method::GET, "/admin/routes/m/extra", 404),
        (Method::POST, "/healthz", 405),
        (Method::DELETE, "/metrics", 405),
        (Method::POST, "/admin/routes", 405),
        (Method::PATCH, "/admin/routes/m", 405),
        (Method::POST, "/admin/config", 405),
    ] {
        let resp = client
            .request(method.clone(), &gw.admin_url(path))
            .header("x-api-key", KEY)
            .send()
            .await;
        assert_admin_error(&resp, want);
        if want == 405 {
            assert!(resp.header("allow").is_some(), "{method} {path}");
        }
    }
    // Bytes that are not HTTP: a 400 from the server, which keeps serving.
    let admin_addr = gw.admin_url("").trim_start_matches("http://").parse().unwrap();
    let mut raw = RawConn::connect(admin_addr).await;
    raw.send(b"\x00\x01garbage\r\n\r\n").await;
    if let Some(resp) = raw.read_response().await {
        assert_eq!(resp.status, 400);
    }
    assert_eq!(client.get(&gw.admin_url("/healthz")).send().await.status, 200);
}

#[test]
fn a_taken_admin_port_stops_run() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run_until_exit(
        &format!(
            r#"
gateway:
  listeners: [{{ address: "127.0.0.1:{listen}" }}]
  admin: {{ address: "127.0.0.1:{port}", api_key: {KEY} }}
routes: [{{ id: m, paths: [/m], plugins: {{ mock: {{}} }} }}]
"#,
            listen = free_port()
        ),
        DEADLINE,
    )
    .expect("portico run exits");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}")) && out.stderr.contains("gateway.admin"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("serving"), "{}", out.stderr);
}

#[test]
fn a_bad_admin_section_is_refused_with_its_location() {
    let (code, out) = support::validate(
        r#"
gateway:
  listeners: [{ address: "127.0.0.1:18080" }]
  admin: { address: "127.0.0.1:18080", api_key: tinykey }
"#,
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("gateway.admin.address: 127.0.0.1:18080 is also a listener"),
        "{out}"
    );
    assert!(out.contains("gateway.admin.api_key: too short"), "{out}");
    assert!(!out.contains("tinykey"), "the key itself is not printed: {out}");
}

/// In etcd mode `/healthz` says how the node stands with its store, and the routes it
/// serves come from etcd.
#[tokio::test]
async fn etcd_mode_health_shows_the_store() {
    let etcd = support::EtcdServer::start().await;
    etcd.put(
        "/portico-admin-test/routes/from-etcd",
        r#"{"id": "from-etcd", "paths": ["/e"], "plugins": {"mock": {}}}"#,
    )
    .await;
    let gw = Gateway::builder(
        r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 1
  access_log: { path: "{{access_log}}" }
  admin: { address: "{{admin}}", api_key: admin-key-for-tests-0123456789 }
  config_store: { type: etcd, endpoints: ["{{etcd}}"], prefix: /portico-admin-test, cache: "{{dir}}/cache.json" }
"#,
    )
    .var("etcd", &etcd.endpoint())
    .start()
    .await;
    let health = Client::new().get(&gw.admin_url("/healthz")).send().await.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["config"]["store"], "etcd");
    let store = &health["detail"]["config_store"];
    assert_eq!(store["store"], "etcd", "{health}");
    assert_eq!(store["prefix"], "/portico-admin-test", "{health}");
    assert_eq!(store["serving_from"], "etcd", "{health}");
    let routes = admin_get(&gw, "/admin/routes").await.json();
    assert_eq!(routes["routes"][0]["id"], "from-etcd", "{routes}");
}
