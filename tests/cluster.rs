//! Cluster mode: several `portico run` processes sharing one real etcd. A push is served by
//! every node; a change reaches every node within a second; broken documents in etcd are
//! skipped and logged with their key; etcd going away and coming back costs no request; a
//! node started while etcd is down serves its cached config.

#![allow(clippy::unwrap_used)]

mod support;

use hyper::Method;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::gateway::{Output, portico};
use support::{Client, DEADLINE, EtcdServer, Gateway, Resp, Upstream, eventually_async};
use tempfile::TempDir;

/// How soon a change must be served by every node (the spec's "within one second").
const APPLY_DEADLINE: Duration = Duration::from_secs(1);

/// A node's file in etcd mode: only the gateway section.
const NODE: &str = r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 1
  access_log: { path: "{{access_log}}" }
  config_store: { type: etcd, endpoints: ["{{etcd}}"], prefix: /portico-test{{cache}} }
"#;

/// A node's file with the admin API on `{{admin}}` (key [`KEY`]).
const NODE_WITH_ADMIN: &str = r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 1
  access_log: { path: "{{access_log}}" }
  admin: { address: "{{admin}}", api_key: admin-key-for-tests-0123456789 }
  config_store: { type: etcd, endpoints: ["{{etcd}}"], prefix: /portico-test }
"#;

const KEY: &str = "admin-key-for-tests-0123456789";

/// One etcd and a directory for the declarative files pushed to it.
struct Cluster {
    etcd: EtcdServer,
    dir: TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        Cluster {
            etcd: EtcdServer::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A node following the store (its cache in its own directory).
    async fn node(&self) -> Gateway {
        self.node_with_cache(None).await
    }

    /// A node whose cache is the file `cache` (it outlives the node).
    async fn node_with_cache(&self, cache: Option<&Path>) -> Gateway {
        let cache = cache.map_or(String::new(), |p| format!(", cache: \"{}\"", p.display()));
        Gateway::builder(NODE)
            .var("etcd", &self.etcd.endpoint())
            .var("cache", &cache)
            .start()
            .await
    }

    /// A node with the admin API.
    async fn admin_node(&self) -> Gateway {
        Gateway::builder(NODE_WITH_ADMIN)
            .var("etcd", &self.etcd.endpoint())
            .start()
            .await
    }

    /// The declarative file with `rest` (upstreams, routes, ...) after its gateway section.
    fn file(&self, rest: &str) -> PathBuf {
        let text = format!(
            r#"
gateway:
  listeners: [{{ address: "127.0.0.1:1" }}]
  config_store: {{ type: etcd, endpoints: ["{}"], prefix: /portico-test }}
{rest}"#,
            self.etcd.endpoint()
        );
        let path = self.dir.path().join("cluster.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `portico push -c FILE [ARGS]` on `rest`.
    fn push(&self, rest: &str, args: &[&str]) -> Output {
        let path = self.file(rest);
        let mut all = vec!["push", "-c", path.to_str().unwrap()];
        all.extend_from_slice(args);
        portico(&all, self.dir.path(), &[])
    }

    fn push_ok(&self, rest: &str) -> String {
        let out = self.push(rest, &[]);
        assert_eq!(out.code, 0, "push failed: {}", out.all());
        out.stdout
    }
}

/// Routes `/hello` answered by a mock saying `body`, and `/api/*` proxied to `{{up}}`.
fn routes(body: &str, up: &str) -> String {
    format!(
        r#"
upstreams: [{{ id: api, nodes: [{{ address: "{up}" }}] }}]
routes:
  - {{ id: hello, paths: [/hello], plugins: {{ mock: {{ body: "{body}" }} }} }}
  - {{ id: api, paths: ["/api/*"], upstream: api }}
"#
    )
}

/// Polls `GET url` until its body is `want`, for at most `within`.
async fn until_body(client: &Client, url: &str, want: &str, within: Duration) {
    eventually_async(&format!("{url} to answer {want:?}"), within, || async {
        let r = client.get(url).try_send().await.ok()?;
        (r.status == 200 && r.text() == want).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_push_is_served_by_every_node_and_a_change_reaches_all_within_a_second() {
    let cluster = Cluster::start().await;
    let up = Upstream::start("api").await;
    let nodes = [cluster.node().await, cluster.node().await, cluster.node().await];
    let client = Client::new();
    // An empty store: every node serves, and nothing matches.
    for n in &nodes {
        assert_eq!(client.get(&n.url("/hello")).send().await.status, 404);
    }

    let out = cluster.push_ok(&routes("one", &up.address()));
    for line in ["created upstream api", "created route api", "created route hello"] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    for n in &nodes {
        until_body(&client, &n.url("/hello"), "one", DEADLINE).await;
        let r = client.get(&n.url("/api/users")).send().await;
        assert_eq!(r.status, 200);
        assert_eq!(r.upstream().as_deref(), Some("api"));
    }

    let out = cluster.push_ok(&routes("two", &up.address()));
    assert_eq!(out.lines().next(), Some("updated route hello"), "{out}");
    for n in &nodes {
        until_body(&client, &n.url("/hello"), "two", APPLY_DEADLINE).await;
    }
    // What each node applied is in its log, once.
    for n in &nodes {
        n.wait_stderr("trigger=\"etcd change\"").await;
    }
}

#[tokio::test]
async fn push_dry_run_prints_the_diff_and_writes_nothing() {
    let cluster = Cluster::start().await;
    cluster.push_ok(&routes("one", "127.0.0.1:9")); // the upstream is never called

    let changed = r#"
routes:
  - { id: hello, paths: [/hello], plugins: { mock: { body: "three" } } }
  - { id: new, paths: [/new], plugins: { mock: {} } }
consumers: [{ username: alice, credentials: { key-auth: { key: "${ALICE_KEY:-k1}" } } }]
"#;
    let out = cluster.push(changed, &["--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "would delete upstream api",
            "would create consumer alice",
            "would delete route api",
            "would update route hello",
            "would create route new",
            "dry run: 5 change(s), nothing written",
        ],
        "{}",
        out.all()
    );
    assert!(
        !out.all().contains("k1"),
        "a push never prints a credential:\n{}",
        out.all()
    );
    let stored = cluster.etcd.get("/portico-test/routes/hello").await.unwrap();
    assert!(stored.contains("one"), "a dry run wrote: {stored}");
    assert!(cluster.etcd.get("/portico-test/consumers/alice").await.is_none());

    let out = cluster.push_ok(changed);
    assert!(
        out.contains("created consumer alice") && out.contains("deleted route api"),
        "{out}"
    );
    let alice: serde_json::Value =
        serde_json::from_str(&cluster.etcd.get("/portico-test/consumers/alice").await.unwrap()).unwrap();
    assert_eq!(
        alice["credentials"]["key-auth"]["key"], "k1",
        "${{VAR}} is substituted before the push"
    );
    let again = cluster.push(changed, &["--dry-run"]);
    assert!(again.stdout.starts_with("no changes"), "{}", again.all());
}

#[tokio::test]
async fn push_refuses_invalid_files_and_says_why() {
    let cluster = Cluster::start().await;
    let out = cluster.push("routes: [{ id: a, paths: [/a], upstream: nowhere }]\n", &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains(r#"routes[0].upstream: unknown upstream "nowhere""#),
        "{}",
        out.all()
    );
    assert!(cluster.etcd.get("/portico-test/routes/a").await.is_none());

    let file_store = cluster.dir.path().join("file.yaml");
    std::fs::write(&file_store, "gateway: { listeners: [{ address: \"127.0.0.1:1\" }] }\n").unwrap();
    let out = portico(&["push", "-c", file_store.to_str().unwrap()], cluster.dir.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("does not name a cluster store"), "{}", out.all());
}

#[tokio::test]
async fn push_to_an_unreachable_etcd_fails_clearly() {
    let mut cluster = Cluster::start().await;
    cluster.etcd.kill().await;
    let out = cluster.push("routes: [{ id: a, paths: [/a], plugins: { mock: {} } }]\n", &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("portico push: cannot read /portico-test/ from etcd"),
        "{}",
        out.all()
    );
}

#[tokio::test]
async fn a_push_guarded_by_a_stale_revision_writes_nothing() {
    use portico_store::push::{diff, transaction};
    let cluster = Cluster::start().await;
    cluster.push_ok("routes: [{ id: a, paths: [/a], plugins: { mock: {} } }]\n");
    let mut client = cluster.etcd.client().await;
    let (stored, read_at) = portico_store::client::load(&mut client, "/portico-test").await.unwrap();

    // Someone else writes in between the read and the write.
    cluster
        .etcd
        .put(
            "/portico-test/routes/b",
            r#"{"paths": ["/b"], "plugins": {"mock": {}}}"#,
        )
        .await;

    let doc = serde_json::json!({"id": "c", "paths": ["/c"], "plugins": {"mock": {}}});
    let desired = [(portico_store::Key::new(portico_store::Kind::Route, "c"), &doc)].into();
    let changes = diff(&desired, &stored);
    let resp = client
        .txn(transaction("/portico-test", read_at, &changes))
        .await
        .unwrap();
    assert!(!resp.succeeded(), "a write based on a stale read must be refused");
    assert!(cluster.etcd.get("/portico-test/routes/c").await.is_none());
    assert!(
        cluster.etcd.get("/portico-test/routes/a").await.is_some(),
        "nothing deleted either"
    );
}

#[tokio::test]
async fn bad_documents_in_etcd_are_skipped_and_logged_with_their_key() {
    let cluster = Cluster::start().await;
    cluster.push_ok(&routes("good", "127.0.0.1:9"));
    let node = cluster.node().await;
    let client = Client::new();
    until_body(&client, &node.url("/hello"), "good", DEADLINE).await;

    // Not JSON, an unknown key, an id that is not its key's: each skipped, the route it
    // would have replaced keeps serving.
    cluster.etcd.put("/portico-test/routes/hello", "{not json").await;
    node.wait_stderr("key=/portico-test/routes/hello").await;
    cluster
        .etcd
        .put("/portico-test/routes/hello", r#"{"paths": ["/hello"], "pathz": []}"#)
        .await;
    node.wait_stderr("pathz").await;
    cluster
        .etcd
        .put("/portico-test/routes/other", r#"{"id": "hello", "paths": ["/x"]}"#)
        .await;
    node.wait_stderr("does not match the key").await;
    // A document that decodes but leaves the config invalid: the whole change is refused.
    cluster
        .etcd
        .put(
            "/portico-test/routes/broken",
            r#"{"paths": ["/broken"], "upstream": "missing"}"#,
        )
        .await;
    node.wait_stderr("/portico-test/routes/broken: upstream").await;
    node.wait_stderr("config refused").await;
    assert_eq!(client.get(&node.url("/hello")).send().await.text(), "good");

    // A good change after all that is applied (the broken route is fixed by removing it).
    let mut etcd = cluster.etcd.client().await;
    etcd.delete("/portico-test/routes/broken", None).await.unwrap();
    cluster
        .etcd
        .put(
            "/portico-test/routes/hello",
            r#"{"paths": ["/hello"], "plugins": {"mock": {"body": "better"}}}"#,
        )
        .await;
    until_body(&client, &node.url("/hello"), "better", DEADLINE).await;
    let mut node = node;
    assert!(node.is_running());
}

#[tokio::test]
async fn etcd_killed_and_restarted_under_load_fails_no_request_and_nodes_catch_up() {
    let mut cluster = Cluster::start().await;
    cluster.push_ok(&routes("before", "127.0.0.1:9"));
    let nodes = [cluster.node().await, cluster.node().await];
    let client = Client::new();
    for n in &nodes {
        until_body(&client, &n.url("/hello"), "before", DEADLINE).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let load: Vec<_> = nodes
        .iter()
        .map(|n| {
            let (client, url, stop, ok, failed) = (
                client.clone(),
                n.url("/hello"),
                stop.clone(),
                ok.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match client.get(&url).try_send().await {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                        Ok(r) => {
                            failed.lock().unwrap().push(format!("status {}", r.status));
                            0
                        }
                        Err(e) => {
                            failed.lock().unwrap().push(e);
                            0
                        }
                    };
                }
            })
        })
        .collect();

    cluster.etcd.kill().await;
    for n in &nodes {
        n.wait_stderr("serving the last applied config").await;
    }
    cluster.etcd.restart().await;
    for n in &nodes {
        eventually_async("the node to watch etcd again", DEADLINE, || async {
            let log = n.stderr();
            let lost = log.rfind("serving the last applied config")?;
            log[lost..].contains("watching etcd").then_some(())
        })
        .await;
    }
    cluster.push_ok(&routes("after", "127.0.0.1:9"));
    for n in &nodes {
        until_body(&client, &n.url("/hello"), "after", DEADLINE).await;
    }
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok.load(Ordering::SeqCst) > 0);
}

use std::sync::Mutex;

#[tokio::test]
async fn a_node_started_while_etcd_is_down_serves_its_cached_config() {
    let mut cluster = Cluster::start().await;
    cluster.push_ok(&routes("cached", "127.0.0.1:9"));
    let cache = cluster.dir.path().join("node.cache.json");
    let client = Client::new();
    {
        let node = cluster.node_with_cache(Some(&cache)).await;
        until_body(&client, &node.url("/hello"), "cached", DEADLINE).await;
    }
    assert!(cache.exists(), "the applied config is cached");
    cluster.etcd.kill().await;

    let node = cluster.node_with_cache(Some(&cache)).await;
    node.wait_stderr("serving the cached config").await;
    assert_eq!(client.get(&node.url("/hello")).send().await.text(), "cached");

    // When etcd is back, the node catches up.
    cluster.etcd.restart().await;
    cluster.push_ok(&routes("fresh", "127.0.0.1:9"));
    until_body(&client, &node.url("/hello"), "fresh", DEADLINE).await;
}

#[tokio::test]
async fn a_node_with_neither_etcd_nor_a_cache_refuses_to_start() {
    let mut cluster = Cluster::start().await;
    cluster.etcd.kill().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.yaml");
    let text = NODE
        .replace("{{listen}}", &format!("127.0.0.1:{}", support::free_port()))
        .replace("{{access_log}}", "off")
        .replace("{{etcd}}", &cluster.etcd.endpoint())
        .replace("{{cache}}", "");
    std::fs::write(&path, text).unwrap();
    let out = portico(&["run", "-c", path.to_str().unwrap()], dir.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("nothing to serve"), "{}", out.all());
    assert!(out.stderr.contains("no cached config"), "{}", out.all());
}

/// `METHOD /admin/...` on `node`'s admin API with the key, a JSON body, and `If-Match` if given.
async fn admin(node: &Gateway, method: Method, path: &str, body: &str, if_match: Option<i64>) -> Resp {
    let mut req = Client::new()
        .request(method, &node.admin_url(path))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(rev) = if_match {
        req = req.header("if-match", &rev.to_string());
    }
    req.send().await
}

fn json(r: &Resp) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

#[tokio::test]
async fn admin_writes_on_one_node_are_served_by_every_node() {
    let cluster = Cluster::start().await;
    let (a, b, c) = (cluster.admin_node().await, cluster.node().await, cluster.node().await);
    let client = Client::new();

    let r = admin(
        &a,
        Method::PUT,
        "/admin/routes/w",
        r#"{"paths": ["/w"], "plugins": {"mock": {"body": "w1"}}}"#,
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let rev1 = json(&r)["revision"].as_i64().expect("a revision");
    for n in [&a, &b, &c] {
        until_body(&client, &n.url("/w"), "w1", APPLY_DEADLINE).await;
    }
    let stored: serde_json::Value =
        serde_json::from_str(&cluster.etcd.get("/portico-test/routes/w").await.unwrap()).unwrap();
    assert_eq!(stored["plugins"]["mock"]["body"], "w1");

    // Based on rev1: accepted. Based on rev1 again (stale now): 409, nothing written.
    let r = admin(
        &a,
        Method::PUT,
        "/admin/routes/w",
        r#"{"paths": ["/w"], "plugins": {"mock": {"body": "w2"}}}"#,
        Some(rev1),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rev2 = json(&r)["revision"].as_i64().unwrap();
    assert!(rev2 > rev1);
    let r = admin(
        &a,
        Method::PUT,
        "/admin/routes/w",
        r#"{"paths": ["/w"], "plugins": {"mock": {"body": "w3"}}}"#,
        Some(rev1),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("changed since revision"), "{}", r.text());
    for n in [&a, &b, &c] {
        until_body(&client, &n.url("/w"), "w2", APPLY_DEADLINE).await;
    }

    // Invalid writes: 400 with the errors, nothing stored.
    let r = admin(
        &a,
        Method::PUT,
        "/admin/routes/bad",
        r#"{"paths": ["/bad"], "upstream": "missing"}"#,
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("missing"), "{}", r.text());
    let r = admin(
        &a,
        Method::PUT,
        "/admin/routes/bad",
        r#"{"paths": ["/bad"], "pathz": []}"#,
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(cluster.etcd.get("/portico-test/routes/bad").await.is_none());

    // A consumer's secret reaches every node (node b lets the key in) and is masked on reads.
    let r = admin(
        &a,
        Method::PUT,
        "/admin/consumers/alice",
        r#"{"credentials": {"key-auth": {"key": "alice-secret-key"}}}"#,
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = eventually_async("alice on node a", DEADLINE, || async {
        let r = admin(&a, Method::GET, "/admin/consumers/alice", "", None).await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert!(!r.text().contains("alice-secret-key"), "{}", r.text());
    let r = admin(
        &a,
        Method::PUT,
        "/admin/routes/keyed",
        r#"{"paths": ["/keyed"], "plugins": {"key-auth": {}, "mock": {"body": "in"}}}"#,
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    eventually_async("the key to open /keyed on node b", DEADLINE, || async {
        let r = client
            .get(&b.url("/keyed"))
            .header("apikey", "alice-secret-key")
            .try_send()
            .await
            .ok()?;
        (r.status == 200 && r.text() == "in").then_some(())
    })
    .await;

    // DELETE: gone everywhere; a second DELETE is 404.
    let r = admin(&a, Method::DELETE, "/admin/routes/w", "", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for n in [&a, &b, &c] {
        eventually_async("/w to be gone", APPLY_DEADLINE, || async {
            (client.get(&n.url("/w")).try_send().await.ok()?.status == 404).then_some(())
        })
        .await;
    }
    let r = admin(&a, Method::DELETE, "/admin/routes/w", "", None).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

#[tokio::test]
async fn healthz_says_where_the_config_comes_from() {
    let mut cluster = Cluster::start().await;
    let node = cluster.admin_node().await;
    let health = |node: &Gateway| {
        let url = node.admin_url("/healthz");
        async move { serde_json::from_slice::<serde_json::Value>(&Client::new().get(&url).send().await.body).unwrap() }
    };
    let h = health(&node).await;
    assert_eq!(h["detail"]["config_store"]["connected"], true, "{h}");
    assert_eq!(h["detail"]["config_store"]["serving_from"], "etcd", "{h}");

    cluster.etcd.kill().await;
    eventually_async("healthz to say etcd is unreachable", DEADLINE, || async {
        let h = health(&node).await;
        (h["detail"]["config_store"]["connected"] == false && h["detail"]["config_store"]["error"].is_string())
            .then_some(())
    })
    .await;
    // Writes while etcd is down: 503, nothing half-done.
    let r = admin(
        &node,
        Method::PUT,
        "/admin/routes/x",
        r#"{"paths": ["/x"], "plugins": {"mock": {}}}"#,
        None,
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());

    cluster.etcd.restart().await;
    eventually_async("healthz to say etcd is back", DEADLINE, || async {
        let h = health(&node).await;
        (h["detail"]["config_store"]["connected"] == true).then_some(())
    })
    .await;
}

#[tokio::test]
async fn counters_of_unchanged_routes_survive_a_change_from_etcd() {
    let cluster = Cluster::start().await;
    let limited = |other: &str| {
        format!(
            r#"
routes:
  - {{ id: limited, paths: [/limited], plugins: {{ rate-limit: {{ requests: 2, window: 1m }}, mock: {{}} }} }}
  - {{ id: other, paths: [/other], plugins: {{ mock: {{ body: "{other}" }} }} }}
"#
        )
    };
    cluster.push_ok(&limited("one"));
    let node = cluster.node().await;
    let client = Client::new();
    until_body(&client, &node.url("/other"), "one", DEADLINE).await;
    for _ in 0..2 {
        assert_eq!(client.get(&node.url("/limited")).send().await.status, 200);
    }
    cluster.push_ok(&limited("two"));
    until_body(&client, &node.url("/other"), "two", DEADLINE).await;
    let r = client.get(&node.url("/limited")).send().await;
    assert_eq!(r.status, 429, "the count of the unchanged route was kept: {}", r.text());
}
