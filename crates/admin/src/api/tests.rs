//! The handler on a compiled snapshot, no sockets: paths, methods, keys, bodies, and the write
//! path through a recording store.

use super::*;
use crate::writer::{FileStore, WriteFuture, Written};
use http_body_util::Full;
use std::sync::Mutex;

const KEY: &str = "test-admin-key-0123456789";

const CONFIG: &str = r#"
gateway:
  listeners: [{ address: "127.0.0.1:8080" }]
  admin: { address: "127.0.0.1:9180", api_key: test-admin-key-0123456789 }
upstreams:
  - { id: users, nodes: [{ address: "127.0.0.1:9001", weight: 2 }] }
consumers:
  - { username: alice, credentials: { key-auth: { key: alice-very-secret } } }
routes:
  - { id: r1, paths: [/users], upstream: users }
"#;

fn snapshot() -> Arc<Snapshot> {
    let cfg = portico_config::from_str(CONFIG, &|_| None).expect("valid");
    Arc::new(portico_proxy::compile(&cfg, "hash-1").expect("compiles"))
}

/// Records what reached the store.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl ConfigWriter for Recorder {
    fn put<'a>(&'a self, kind: Kind, id: &'a str, item: &'a Value, expected: Option<u64>) -> WriteFuture<'a> {
        self.0
            .lock()
            .expect("lock")
            .push(format!("put {kind}/{id} {item} {expected:?}"));
        Box::pin(async {
            Ok(Written {
                revision: Some(7),
                created: false,
            })
        })
    }

    fn delete<'a>(&'a self, kind: Kind, id: &'a str, expected: Option<u64>) -> WriteFuture<'a> {
        self.0
            .lock()
            .expect("lock")
            .push(format!("delete {kind}/{id} {expected:?}"));
        Box::pin(async { Err(WriteError::Conflict("changed since revision 3".into())) })
    }
}

fn admin_with(writer: Arc<dyn ConfigWriter>) -> Admin {
    let snap = snapshot();
    Admin::new(KEY, StoreKind::File, Arc::new(move || snap.clone()), writer)
        .metrics(Arc::new(|| "portico_up 1\n".to_owned()))
}

fn admin() -> Admin {
    admin_with(Arc::new(FileStore {
        path: "/etc/portico/portico.yaml".into(),
    }))
}

async fn call(
    admin: &Admin,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, HeaderMap, Value, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).expect("request");
    let resp = handle(admin, req).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, json, text)
}

fn assert_error(status: u16, headers: &HeaderMap, body: &Value, want: u16) {
    assert_eq!(status, want, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(body["request_id"].as_str(), headers["x-request-id"].to_str().ok());
}

#[tokio::test]
async fn healthz_and_metrics_need_no_key() {
    let a = admin();
    let (status, _, body, _) = call(&a, "GET", "/healthz", None, "").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["config"]["hash"], "hash-1");
    assert_eq!(body["config"]["routes"], 1);
    let (status, headers, _, text) = call(&a, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4")
    );
    assert_eq!(text, "portico_up 1\n");
    let (status, headers, body, _) = call(&a, "POST", "/healthz", None, "").await;
    assert_error(status, &headers, &body, 405);
    assert_eq!(headers["allow"], "GET, HEAD");
}

#[tokio::test]
async fn health_detail_is_extensible() {
    let health = Health::default();
    let a = admin().health(health.clone());
    health.set(
        "config_store",
        json!({ "state": "serving cached config, store unreachable" }),
    );
    let (_, _, body, _) = call(&a, "GET", "/healthz", None, "").await;
    assert_eq!(
        body["detail"]["config_store"]["state"],
        "serving cached config, store unreachable"
    );
    health.remove("config_store");
    let (_, _, body, _) = call(&a, "GET", "/healthz", None, "").await;
    assert_eq!(body["detail"], json!({}));
}

#[tokio::test]
async fn every_admin_path_needs_the_key() {
    let a = admin();
    for path in [
        "/admin/routes",
        "/admin/config",
        "/admin/nope",
        "/admin/routes/r1",
        "/admin",
    ] {
        for key in [None, Some(""), Some("wrong"), Some("test-admin-key-012345678")] {
            let (status, headers, body, _) = call(&a, "GET", path, key, "").await;
            assert_error(status, &headers, &body, 401);
        }
    }
    let (status, _, _, _) = call(&a, "GET", "/admin/routes", Some(KEY), "").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn lists_items_and_unknowns() {
    let a = admin();
    let (status, _, body, _) = call(&a, "GET", "/admin/routes", Some(KEY), "").await;
    assert_eq!(status, 200);
    assert_eq!(body["count"], 1);
    assert_eq!(body["routes"][0]["id"], "r1");
    assert_eq!(body["routes"][0]["upstream"], "users");
    let (_, _, body, _) = call(&a, "GET", "/admin/upstreams/users/", Some(KEY), "").await;
    assert_eq!(body["nodes"][0]["weight"], 2);
    let (_, _, body, text) = call(&a, "GET", "/admin/consumers/alice", Some(KEY), "").await;
    assert_eq!(body["credentials"]["key-auth"]["key"], mask::MASK);
    assert!(!text.contains("alice-very-secret"));
    let (_, _, body, text) = call(&a, "GET", "/admin/config", Some(KEY), "").await;
    assert_eq!(body["hash"], "hash-1");
    assert!(!text.contains("alice-very-secret") && !text.contains(KEY), "{text}");
    let (_, _, body, _) = call(&a, "GET", "/admin/upstreams/users/health", Some(KEY), "").await;
    assert_eq!(body["id"], "users");

    for (method, path, want) in [
        ("GET", "/admin/routes/nope", 404),
        ("GET", "/admin/upstreams/nope/health", 404),
        ("GET", "/admin/widgets", 404),
        ("GET", "/admin/widgets/x", 404),
        ("GET", "/admin/routes/r1/extra", 404),
        ("GET", "/nope", 404),
        ("GET", "/", 404),
        ("GET", "/admin/%FF", 404),
        ("POST", "/admin/routes", 405),
        ("POST", "/admin/routes/r1", 405),
        ("DELETE", "/admin/config", 405),
        ("PUT", "/admin/upstreams/users/health", 405),
    ] {
        let (status, headers, body, _) = call(&a, method, path, Some(KEY), "").await;
        assert_error(status, &headers, &body, want);
    }
}

#[tokio::test]
async fn file_mode_writes_are_409_pointing_to_the_file() {
    let a = admin();
    for (method, body) in [("PUT", r#"{"paths": ["/x"]}"#), ("PUT", "not json"), ("DELETE", "")] {
        let (status, headers, body, _) = call(&a, method, "/admin/routes/r1", Some(KEY), body).await;
        assert_error(status, &headers, &body, 409);
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("/etc/portico/portico.yaml"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn writes_are_validated_then_stored() {
    let rec = Arc::new(Recorder::default());
    let a = admin_with(rec.clone());

    let (status, headers, body, _) = call(&a, "PUT", "/admin/routes/r2", Some(KEY), "{ nope").await;
    assert_error(status, &headers, &body, 400);
    assert!(body["message"].as_str().unwrap_or_default().starts_with("invalid JSON"));

    let bad = r#"{"paths": ["/b"], "upstream": "missing", "methods": ["FETCH"]}"#;
    let (status, headers, body, _) = call(&a, "PUT", "/admin/routes/r2", Some(KEY), bad).await;
    assert_error(status, &headers, &body, 400);
    let locations: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["location"].as_str())
        .collect();
    assert_eq!(locations, vec!["routes/r2.methods[0]", "routes/r2.upstream"]);

    let (status, _, body, _) = call(&a, "DELETE", "/admin/upstreams/users", Some(KEY), "").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        rec.0.lock().expect("lock").is_empty(),
        "nothing invalid reaches the store"
    );

    let good = r#"{"paths": ["/b"], "upstream": "users"}"#;
    let req = Request::builder()
        .method("PUT")
        .uri("/admin/routes/r2")
        .header("x-api-key", KEY)
        .header("if-match", "\"5\"")
        .body(Full::new(Bytes::from(good)))
        .expect("request");
    let resp = handle(&a, req).await;
    assert_eq!(resp.status(), 201);
    let consumer = format!(
        r#"{{"groups": ["gold"], "credentials": {{"key-auth": {{"key": "{}"}}}}}}"#,
        mask::MASK
    );
    let (status, _, body, text) = call(&a, "PUT", "/admin/consumers/alice", Some(KEY), &consumer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revision"], 7);
    assert!(!text.contains("alice-very-secret"), "the answer masks: {text}");
    let (status, headers, body, _) = call(&a, "DELETE", "/admin/routes/r1", Some(KEY), "").await;
    assert_error(status, &headers, &body, 409);

    let log = rec.0.lock().expect("lock").clone();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log[0].starts_with("put routes/r2 ") && log[0].contains(r#""id":"r2""#) && log[0].ends_with("Some(5)"));
    assert!(
        log[1].contains("alice-very-secret"),
        "the store gets the real secret back: {log:?}"
    );
    assert_eq!(log[2], "delete routes/r1 None");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let a = admin_with(Arc::new(Recorder::default()));
    let big = format!(r#"{{"paths": ["/{}"]}}"#, "a".repeat(MAX_BODY));
    let (status, headers, body, _) = call(&a, "PUT", "/admin/routes/r2", Some(KEY), &big).await;
    assert_error(status, &headers, &body, 413);
}

#[test]
fn paths_split_and_decode() {
    assert_eq!(
        segments("/admin/routes/a%20b/"),
        Some(vec!["admin".into(), "routes".into(), "a b".into()])
    );
    assert_eq!(segments("/admin//x"), None);
    assert_eq!(segments("/admin/%FF"), None);
    assert_eq!(segments("/"), None);
}
