//! key-auth through the real binary: header and query keys, every rejection, hidden
//! credentials, and the identity headers the upstream receives.

#![allow(clippy::unwrap_used)]

mod support;

use support::{Client, Gateway, Upstream};

const CONFIG: &str = r#"
consumers:
  - username: alice
    groups: [gold, beta]
    credentials: { key-auth: { key: alice-key-123 } }
  - username: bob
    credentials: { key-auth: { key: bob-key-456 } }
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: keyed, paths: ["/k/*"], upstream: up, plugins: { key-auth: {} } }
  - { id: custom, paths: ["/c/*"], upstream: up, plugins: { key-auth: { header: x-key, query: token, hide_credentials: false } } }
  - { id: open, paths: ["/open"], upstream: up }
"#;

async fn setup() -> (Upstream, Gateway) {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(CONFIG).var("up", &up.address()).start().await;
    (up, gw)
}

#[tokio::test]
async fn a_header_key_authenticates_and_names_the_consumer() {
    let (_up, gw) = setup().await;
    let resp = Client::new()
        .get(&gw.url("/k/a"))
        .header("apikey", "alice-key-123")
        .header("x-consumer-username", "mallory")
        .header("x-consumer-groups", "admin")
        .send()
        .await;
    let echo = resp.echo();
    assert_eq!(echo.header("x-consumer-username").as_deref(), Some("alice"));
    assert_eq!(echo.header("x-consumer-groups").as_deref(), Some("gold,beta"));
    assert_eq!(
        echo.headers("x-consumer-username").len(),
        1,
        "spoofed value must be gone"
    );
    assert_eq!(echo.header("apikey"), None, "hide_credentials removes the key");

    let id = resp.header("x-request-id").unwrap();
    let line = gw.access_log_for(&id).await;
    assert_eq!(line["consumer"], "alice");
    assert_eq!(line["status"], 200);

    // A consumer without groups gets no groups header, and no spoofed one either.
    let echo = Client::new()
        .get(&gw.url("/k/b"))
        .header("apikey", "bob-key-456")
        .header("x-consumer-groups", "admin")
        .send()
        .await
        .echo();
    assert_eq!(echo.header("x-consumer-username").as_deref(), Some("bob"));
    assert_eq!(echo.header("x-consumer-groups"), None);
}

#[tokio::test]
async fn a_query_key_authenticates_and_leaves_the_query() {
    let (_up, gw) = setup().await;
    let echo = Client::new()
        .get(&gw.url("/k/q?a=1&apikey=alice-key-123&b=x%20y"))
        .send()
        .await
        .echo();
    assert_eq!(echo.header("x-consumer-username").as_deref(), Some("alice"));
    assert_eq!(echo.query(), Some("a=1&b=x%20y"));
    let echo = Client::new()
        .get(&gw.url("/k/q?apikey=alice-key-123"))
        .send()
        .await
        .echo();
    assert_eq!(echo.query(), None);
}

#[tokio::test]
async fn missing_and_wrong_keys_are_401_and_never_reach_the_upstream() {
    let (up, gw) = setup().await;
    let c = Client::new();
    let cases: [(&str, &[(&str, &str)]); 5] = [
        ("/k/none", &[]),
        ("/k/wrong", &[("apikey", "alice-key-124")]),
        ("/k/prefix", &[("apikey", "alice-key-12")]),
        ("/k/empty", &[("apikey", "")]),
        ("/k/wrong?apikey=nope", &[]),
    ];
    for (path, headers) in cases {
        let mut req = c.get(&gw.url(path));
        for (n, v) in headers {
            req = req.header(n, v);
        }
        let resp = req.send().await;
        let msg = resp.assert_error(401);
        assert!(msg.contains("API key"), "{path}: {msg}");
        let line = gw.access_log_for(&resp.header("x-request-id").unwrap()).await;
        assert_eq!(line["status"], 401);
        assert!(line["consumer"].is_null());
    }
    assert_eq!(up.requests(), 0, "a rejected request reached the upstream");
}

#[tokio::test]
async fn header_and_query_names_are_configurable_and_may_be_kept() {
    let (_up, gw) = setup().await;
    let echo = Client::new()
        .get(&gw.url("/c/x"))
        .header("x-key", "bob-key-456")
        .send()
        .await
        .echo();
    assert_eq!(echo.header("x-consumer-username").as_deref(), Some("bob"));
    assert_eq!(echo.header("x-key").as_deref(), Some("bob-key-456"));
    let echo = Client::new().get(&gw.url("/c/x?token=bob-key-456")).send().await.echo();
    assert_eq!(echo.query(), Some("token=bob-key-456"));
    Client::new()
        .get(&gw.url("/c/x"))
        .header("apikey", "bob-key-456")
        .send()
        .await
        .assert_error(401);
}

#[tokio::test]
async fn a_route_without_auth_strips_spoofed_identity() {
    let (_up, gw) = setup().await;
    let echo = Client::new()
        .get(&gw.url("/open"))
        .header("x-consumer-username", "admin")
        .header("x-consumer-groups", "root")
        .send()
        .await
        .echo();
    assert_eq!(echo.header("x-consumer-username"), None);
    assert_eq!(echo.header("x-consumer-groups"), None);
}
