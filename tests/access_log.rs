//! The JSON access log: one object per request with the spec's fields, to a file or stdout.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{Client, Gateway, Upstream, refused_addr};

const FIELDS: [&str; 14] = [
    "ts",
    "request_id",
    "client_ip",
    "method",
    "host",
    "path",
    "status",
    "bytes_sent",
    "duration_ms",
    "route_id",
    "consumer",
    "upstream_addr",
    "upstream_status",
    "upstream_duration_ms",
];

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' || !digits(8..10) {
        return false;
    }
    if !(b[10] == b'T' || b[10] == b't') || !digits(11..13) || b[13] != b':' || !digits(14..16) || b[16] != b':' {
        return false;
    }
    let mut i = 19;
    if !digits(17..19) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let tz = &s[i..];
    tz == "Z"
        || tz == "z"
        || (tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && tz.as_bytes()[3] == b':')
}

fn assert_shape(line: &Value) {
    for f in FIELDS {
        assert!(line.get(f).is_some(), "field {f} missing from {line}");
    }
    let ts = line["ts"].as_str().unwrap_or_default();
    assert!(is_rfc3339(ts), "ts is not RFC 3339: {ts:?}");
    assert!(line["status"].is_u64(), "status is a number: {line}");
    assert!(line["bytes_sent"].is_u64(), "bytes_sent is a number: {line}");
    assert!(line["duration_ms"].is_number(), "duration_ms is a number: {line}");
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_logged_with_the_spec_fields() {
    let up = Upstream::builder("a").status(201).start().await;
    let dead = refused_addr();
    let gw = Gateway::with(
        r#"
routes:
  - { id: proxied, paths: ["/p/*"], upstream: { nodes: [{ address: "{{a}}" }] } }
  - { id: mocked, paths: [/m], plugins: { mock: { status: 202, body: "12345" } } }
  - { id: dead, paths: [/dead], upstream: { nodes: [{ address: "{{dead}}" }], retries: 0 } }
"#,
    )
    .var("a", &up.address())
    .var("dead", &dead)
    .start()
    .await;
    let c = Client::new();

    // Proxied.
    let resp = c
        .post(&gw.url("/p/items?q=secret-query"))
        .host("api.example.com")
        .body("hello")
        .send()
        .await;
    assert_eq!(resp.status, 201);
    let id = resp.header("x-request-id").unwrap();
    let line = gw.access_log_for(&id).await;
    assert_shape(&line);
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["host"], "api.example.com");
    assert_eq!(line["path"], "/p/items");
    assert_eq!(line["status"], 201);
    assert!(
        line["bytes_sent"].as_u64().unwrap() >= resp.body.len() as u64,
        "bytes_sent {} < body {}",
        line["bytes_sent"],
        resp.body.len()
    );
    assert_eq!(line["route_id"], "proxied");
    assert_eq!(line["consumer"], Value::Null);
    assert_eq!(line["upstream_addr"], up.address());
    assert_eq!(line["upstream_status"], 201);
    assert!(line["upstream_duration_ms"].is_number(), "{line}");

    // Answered by a plugin: no upstream.
    let resp = c.get(&gw.url("/m")).header("x-request-id", "log-me-1").send().await;
    assert_eq!(resp.status, 202);
    let line = gw.access_log_for("log-me-1").await;
    assert_shape(&line);
    assert_eq!(line["route_id"], "mocked");
    assert_eq!(line["status"], 202);
    assert!(line["bytes_sent"].as_u64().unwrap() >= 5);
    assert_eq!(line["upstream_addr"], Value::Null);
    assert_eq!(line["upstream_status"], Value::Null);

    // No route.
    let resp = c.get(&gw.url("/none")).header("x-request-id", "log-me-2").send().await;
    assert_eq!(resp.status, 404);
    let line = gw.access_log_for("log-me-2").await;
    assert_shape(&line);
    assert_eq!(line["status"], 404);
    assert_eq!(line["route_id"], Value::Null);
    assert_eq!(line["upstream_addr"], Value::Null);

    // Upstream refused.
    let resp = c.get(&gw.url("/dead")).header("x-request-id", "log-me-3").send().await;
    assert_eq!(resp.status, 502);
    let line = gw.access_log_for("log-me-3").await;
    assert_shape(&line);
    assert_eq!(line["status"], 502);
    assert_eq!(line["route_id"], "dead");
    assert_eq!(line["upstream_status"], Value::Null);

    let lines = gw.access_log_lines();
    assert_eq!(lines.len(), 4, "one line per request: {lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_goes_to_stdout_by_default_and_can_be_off() {
    let gw = Gateway::builder(
        r#"
gateway: { listeners: [{ address: "{{listen}}" }], workers: 1 }
routes: [{ id: m, paths: [/m], plugins: { mock: { body: ok } } }]
"#,
    )
    .start()
    .await;
    let resp = Client::new()
        .get(&gw.url("/m"))
        .header("x-request-id", "to-stdout")
        .send()
        .await;
    assert_eq!(resp.status, 200);
    let line = gw.access_log_for("to-stdout").await;
    assert_eq!(line["route_id"], "m");
    assert!(!gw.stderr().contains("to-stdout"), "the access log is not on stderr");

    let gw = Gateway::builder(
        r#"
gateway: { listeners: [{ address: "{{listen}}" }], workers: 1, access_log: { path: "off" } }
routes: [{ id: m, paths: [/m], plugins: { mock: { body: ok } } }]
"#,
    )
    .start()
    .await;
    let c = Client::new();
    for _ in 0..5 {
        c.get(&gw.url("/m")).header("x-request-id", "silent").send().await;
    }
    // A request logged after these would show if "off" were ignored: there is none to wait
    // for, so check both outputs once the requests are answered.
    assert!(!gw.stdout().contains("silent"), "access_log off still wrote to stdout");
    assert!(!gw.stderr().contains("silent"), "access_log off still wrote to stderr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_line_for_every_request_under_concurrency() {
    let up = Upstream::start("a").await;
    let gw = Gateway::proxying_to(&up).await;
    let c = Client::new();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (c, gw_url) = (c.clone(), gw.url(""));
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let resp = c
                    .get(&format!("{gw_url}/c/{t}/{i}"))
                    .header("x-request-id", &format!("req-{t}-{i}"))
                    .send()
                    .await;
                assert_eq!(resp.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    support::eventually("100 access log lines", support::DEADLINE, || {
        (gw.access_log_lines().len() >= 100).then_some(())
    })
    .await;
    let lines = gw.access_log_lines();
    assert_eq!(lines.len(), 100);
    let mut ids: Vec<String> = lines
        .iter()
        .map(|l| l["request_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "each request logged once");
    for l in &lines {
        let (id, path) = (l["request_id"].as_str().unwrap(), l["path"].as_str().unwrap());
        assert_eq!(
            format!("/c/{}", &id[4..].replace('-', "/")),
            path,
            "a line mixes two requests: {l}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_still_queued_at_shutdown_are_written_before_exit() {
    let up = Upstream::start("a").await;
    let mut gw = Gateway::proxying_to(&up).await;
    let c = Client::new();
    for i in 0..20 {
        let resp = c
            .get(&gw.url(&format!("/last/{i}")))
            .header("x-request-id", &format!("last-{i}"))
            .send()
            .await;
        assert_eq!(resp.status, 200);
    }
    // Stop at once: the writer batches lines for a few milliseconds, and those must not be lost.
    gw.sigterm();
    let status = gw.wait_exit(support::DEADLINE).await.expect("the gateway exits");
    assert!(status.success());
    let lines = gw.access_log_lines();
    assert_eq!(lines.len(), 20, "every request logged before exit: {lines:#?}");
    assert_eq!(lines[19]["request_id"], "last-19");
}
