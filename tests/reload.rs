//! Hot reload: the config file rewritten (and SIGHUP) while clients keep sending requests.
//! Every change is observed, invalid configs are refused while the old one keeps serving, and
//! not one request fails.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use support::{Client, DEADLINE, Gateway, PREAMBLE, Upstream, eventually};
use tokio::task::JoinHandle;

/// Every upstream is declared; `/r` goes to `target`; `/slow` to a held upstream.
fn config(target: &str) -> String {
    format!(
        "{PREAMBLE}{}",
        r#"
upstreams:
  - { id: a, nodes: [{ address: "{{a}}" }] }
  - { id: b, nodes: [{ address: "{{b}}" }] }
  - { id: c, nodes: [{ address: "{{c}}" }] }
  - { id: d, nodes: [{ address: "{{d}}" }] }
  - { id: slow, nodes: [{ address: "{{slow}}" }] }
routes:
  - { id: r, paths: [/r], upstream: TARGET }
  - { id: slow, paths: [/slow], upstream: slow }
"#
        .replace("TARGET", target)
    )
}

/// A client sending requests to one URL in a loop, recording who answered or what failed.
struct Loop {
    log: Arc<Mutex<Vec<Result<String, String>>>>,
    task: JoinHandle<()>,
}

impl Loop {
    fn start(client: Client, url: String, stop: Arc<AtomicBool>) -> Loop {
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                while !stop.load(Ordering::SeqCst) {
                    let r = match client.get(&url).try_send().await {
                        Ok(resp) if resp.status == 200 => Ok(resp.upstream().unwrap_or_default()),
                        Ok(resp) => Err(format!("status {}: {}", resp.status, resp.text())),
                        Err(e) => Err(e),
                    };
                    log.lock().unwrap().push(r);
                }
            }
        });
        Loop { log, task }
    }

    fn seen(&self, server: &str) -> bool {
        self.log.lock().unwrap().iter().any(|r| r.as_deref() == Ok(server))
    }

    fn len(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

async fn all_see(loops: &[Loop], server: &str) {
    eventually(&format!("every client to be answered by {server}"), DEADLINE, || {
        loops.iter().all(|l| l.seen(server)).then_some(())
    })
    .await;
}

/// Lets every loop send at least `n` more requests.
async fn let_run(loops: &[Loop], n: usize) {
    let start: Vec<usize> = loops.iter().map(Loop::len).collect();
    eventually(&format!("{n} more requests from every client"), DEADLINE, || {
        loops.iter().zip(&start).all(|(l, s)| l.len() >= s + n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_never_fails_a_request() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let d = Upstream::start("d").await;
    let slow = Upstream::builder("slow").hold().start().await;
    let mut gw = Gateway::builder(&config("a"))
        .var("a", &a.address())
        .var("b", &b.address())
        .var("c", &c.address())
        .var("d", &d.address())
        .var("slow", &slow.address())
        .start()
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let url = gw.url("/r");
    let loops = vec![
        // Kept-alive connections that must not be dropped (no silent client retry).
        Loop::start(Client::strict(), url.clone(), stop.clone()),
        Loop::start(Client::strict(), url.clone(), stop.clone()),
        // A new connection per request.
        Loop::start(Client::fresh_connections(), url.clone(), stop.clone()),
    ];
    all_see(&loops, "a").await;

    // A request in flight across the reload completes.
    let in_flight = tokio::spawn({
        let url = gw.url("/slow");
        async move { Client::strict().get(&url).try_send().await }
    });
    eventually("the slow request to reach its upstream", DEADLINE, || {
        (slow.requests() == 1).then_some(())
    })
    .await;

    // 1. A valid change, picked up from the file.
    gw.rewrite_config(&config("b"));
    all_see(&loops, "b").await;
    slow.release();
    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request survives the reload");
    assert_eq!(resp.status, 200, "{}", resp.text());

    // 2. An invalid config (unknown upstream) is refused, logged, and the old one keeps serving.
    gw.rewrite_config(&config("no-such-upstream-xyz"));
    gw.wait_stderr("no-such-upstream-xyz").await;
    let_run(&loops, 20).await;
    assert!(gw.is_running());

    // 3. An unknown section is refused the same way.
    gw.rewrite_config(&format!("{}\nroutez_typo_xyz: []\n", config("a")));
    gw.wait_stderr("routez_typo_xyz").await;
    let_run(&loops, 20).await;

    // 4. Text that is not YAML at all.
    let before = gw.stderr().len();
    gw.rewrite_config_raw("routes: [ { id: broken, paths: [/r\n  upstream: {{{ not yaml");
    eventually("a logged error for the unparsable config", DEADLINE, || {
        (gw.stderr().len() > before).then_some(())
    })
    .await;
    let_run(&loops, 20).await;

    // 5. Valid again.
    gw.rewrite_config(&config("c"));
    all_see(&loops, "c").await;

    // 6. SIGHUP, with a file whose modification time did not change.
    gw.rewrite_config_same_mtime(&config("d"));
    gw.sighup();
    all_see(&loops, "d").await;

    // 7. SIGHUP on an invalid file: refused, still serving.
    gw.rewrite_config_same_mtime(&config("no-such-upstream-hup"));
    gw.sighup();
    gw.wait_stderr("no-such-upstream-hup").await;
    let_run(&loops, 20).await;
    assert!(gw.is_running());

    stop.store(true, Ordering::SeqCst);
    let mut report = Vec::new();
    for (i, l) in loops.into_iter().enumerate() {
        l.task.await.unwrap();
        let log = l.log.lock().unwrap().clone();
        let failures: Vec<&String> = log.iter().filter_map(|r| r.as_ref().err()).collect();
        if !failures.is_empty() {
            report.push(format!(
                "client {i}: {} of {} requests failed, first: {:?}",
                failures.len(),
                log.len(),
                failures.first()
            ));
        }
        // Per client, answers only move forward: a* b* c* d*, and end on d.
        let order = ["a", "b", "c", "d"];
        let mut phase = 0;
        for r in log.iter().flatten() {
            let p = order.iter().position(|s| s == r).unwrap_or(usize::MAX);
            assert!(
                p >= phase && p != usize::MAX,
                "client {i} went back to {r} after {}",
                order[phase]
            );
            phase = p;
        }
        assert_eq!(order[phase], "d", "client {i} ended on {}", order[phase]);
    }
    assert!(
        report.is_empty(),
        "requests failed during reloads:\n{}",
        report.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_and_removes_routes_and_plugins() {
    let a = Upstream::start("a").await;
    let mut gw = Gateway::with(
        r#"
routes:
  - { id: one, paths: [/one], plugins: { mock: { body: one-v1 } } }
"#,
    )
    .var("a", &a.address())
    .start()
    .await;
    let c = Client::new();
    assert_eq!(c.get(&gw.url("/one")).send().await.text(), "one-v1");
    c.get(&gw.url("/two")).send().await.assert_error(404);

    gw.rewrite_with(
        r#"
routes:
  - { id: one, paths: [/one], plugins: { mock: { body: one-v2 } } }
  - id: two
    paths: [/two]
    upstream: { nodes: [{ address: "{{a}}" }] }
    plugins: { response-transformer: { add_headers: { x-v: "2" } } }
"#,
    );
    eventually_text(&gw, &c, "/one", "one-v2").await;
    let resp = c.get(&gw.url("/two")).send().await;
    assert_eq!(resp.echo().server(), "a");
    assert_eq!(resp.header("x-v").as_deref(), Some("2"));

    gw.rewrite_with(
        r#"
routes:
  - { id: two, paths: [/two], plugins: { mock: { body: two-mocked } } }
"#,
    );
    eventually_text(&gw, &c, "/two", "two-mocked").await;
    c.get(&gw.url("/one")).send().await.assert_error(404);
}

async fn eventually_text(gw: &Gateway, c: &Client, path: &str, want: &str) {
    let start = std::time::Instant::now();
    loop {
        let resp = c.get(&gw.url(path)).send().await;
        if resp.text() == want {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{path} still answers {:?}, want {want:?}",
            resp.text()
        );
        tokio::time::sleep(support::POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_an_upstreams_nodes() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let yaml = |nodes: &str| {
        format!(
            "upstreams:\n  - {{ id: u, nodes: [{nodes}] }}\nroutes:\n  - {{ id: r, paths: [\"/*\"], upstream: u }}\n"
        )
    };
    let mut gw = Gateway::with(&yaml(r#"{ address: "{{a}}" }"#))
        .var("a", &a.address())
        .var("b", &b.address())
        .start()
        .await;
    let c = Client::new();
    assert_eq!(c.get(&gw.url("/x")).send().await.upstream().as_deref(), Some("a"));

    gw.rewrite_with(&yaml(r#"{ address: "{{b}}" }"#));
    eventually_upstream(&gw, &c, "b").await;
    for _ in 0..10 {
        assert_eq!(c.get(&gw.url("/x")).send().await.upstream().as_deref(), Some("b"));
    }

    // New weights apply from the reload on.
    gw.rewrite_with(&yaml(
        r#"{ address: "{{a}}", weight: 1 }, { address: "{{b}}", weight: 1 }"#,
    ));
    eventually_upstream(&gw, &c, "a").await;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..20 {
        *seen
            .entry(c.get(&gw.url("/x")).send().await.upstream().unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.get("a"), Some(&10), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&10), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_config_file_keeps_the_old_config_serving() {
    let mut gw = Gateway::with(
        r#"
routes: [{ id: m, paths: [/m], plugins: { mock: { body: v1 } } }]
"#,
    )
    .start()
    .await;
    let c = Client::new();
    assert_eq!(c.get(&gw.url("/m")).send().await.text(), "v1");
    let before = gw.stderr().len();
    std::fs::remove_file(gw.config_path()).unwrap();
    gw.sighup();
    eventually("a logged error about the missing file", DEADLINE, || {
        (gw.stderr().len() > before).then_some(())
    })
    .await;
    for _ in 0..10 {
        assert_eq!(c.get(&gw.url("/m")).send().await.text(), "v1");
    }
    assert!(gw.is_running());
    gw.rewrite_with(
        r#"
routes: [{ id: m, paths: [/m], plugins: { mock: { body: v2 } } }]
"#,
    );
    eventually_text(&gw, &c, "/m", "v2").await;
}

async fn eventually_upstream(gw: &Gateway, c: &Client, want: &str) {
    let start = std::time::Instant::now();
    loop {
        let resp = c.get(&gw.url("/x")).send().await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        if resp.upstream().as_deref() == Some(want) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "still answered by {:?}, want {want}",
            resp.upstream()
        );
        tokio::time::sleep(support::POLL).await;
    }
}
