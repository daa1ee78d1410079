//! The plugins this issue ships: `mock`, `redirect`, `request-transformer`,
//! `response-transformer`, and their fixed phase order.

#![allow(clippy::unwrap_used)]

mod support;

use support::{Client, Gateway, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_answers_without_an_upstream() {
    let gw = Gateway::with(
        r#"
routes:
  - id: full
    paths: [/full]
    plugins:
      mock:
        status: 201
        body: '{"made": true}'
        headers: { content-type: application/json, x-mocked: "yes" }
  - { id: defaults, paths: [/defaults], plugins: { mock: {} } }
  - { id: teapot, paths: [/teapot], plugins: { mock: { status: 418, body: "short and stout" } } }
"#,
    )
    .start()
    .await;
    let c = Client::new();
    let resp = c.post(&gw.url("/full")).body("ignored").send().await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.json(), serde_json::json!({"made": true}));
    assert_eq!(resp.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(resp.header("x-mocked").as_deref(), Some("yes"));
    assert!(
        resp.header("x-request-id").is_some(),
        "mocked responses carry X-Request-Id too"
    );

    let resp = c.get(&gw.url("/defaults")).send().await;
    assert_eq!(resp.status, 200, "mock's default status is 200: {}", resp.text());

    let resp = c.get(&gw.url("/teapot")).send().await;
    assert_eq!((resp.status, resp.text().as_str()), (418, "short and stout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_a_url_or_to_https() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: moved, paths: [/old], plugins: { redirect: { to: "https://new.example.com/new" } } }
  - { id: found, paths: [/tmp], plugins: { redirect: { to: "/elsewhere", status: 302 } } }
  - { id: secure, paths: ["/secure/*"], plugins: { redirect: { https: true } } }
"#,
    )
    .start()
    .await;
    let c = Client::new();
    let resp = c.get(&gw.url("/old")).send().await;
    assert_eq!(resp.status, 301, "redirect's default status is 301");
    assert_eq!(resp.header("location").as_deref(), Some("https://new.example.com/new"));
    assert!(resp.header("x-request-id").is_some());

    let resp = c.get(&gw.url("/tmp")).send().await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.header("location").as_deref(), Some("/elsewhere"));

    let resp = c
        .get(&gw.url("/secure/page?a=1&b=2"))
        .host("shop.example.com")
        .send()
        .await;
    assert_eq!(resp.status, 301);
    assert_eq!(
        resp.header("location").as_deref(),
        Some("https://shop.example.com/secure/page?a=1&b=2"),
        "https: true sends the same URL over https"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_transformer_rewrites_the_path() {
    let up = Upstream::start("a").await;
    let gw = Gateway::with(
        r#"
upstreams: [{ id: u, nodes: [{ address: "{{a}}" }] }]
routes:
  - { id: strip, paths: ["/api/*"], upstream: u, plugins: { request-transformer: { strip_prefix: /api } } }
  - { id: fixed, paths: ["/fixed/*"], upstream: u, plugins: { request-transformer: { uri: /internal/status } } }
  - id: regex
    paths: ["/v1/*"]
    upstream: u
    plugins: { request-transformer: { regex_uri: ["^/v1/users/([0-9]+)/(.*)$", "/users/$2/$1"] } }
  - id: regex-plain
    paths: ["/old/*"]
    upstream: u
    plugins: { request-transformer: { regex_uri: ["^/old/(.*)", "/new/$1"] } }
"#,
    )
    .var("a", &up.address())
    .start()
    .await;
    let c = Client::new();

    let echo = c.get(&gw.url("/api/users/7?x=1")).send().await.echo();
    assert_eq!(echo.path(), "/users/7");
    assert_eq!(echo.query(), Some("x=1"), "the query survives strip_prefix");

    let echo = c.get(&gw.url("/api/")).send().await.echo();
    assert_eq!(echo.path(), "/");

    let echo = c.get(&gw.url("/fixed/anything")).send().await.echo();
    assert_eq!(echo.path(), "/internal/status");

    let echo = c.get(&gw.url("/old/a/b")).send().await.echo();
    assert_eq!(echo.path(), "/new/a/b");

    let echo = c.get(&gw.url("/v1/users/42/profile")).send().await.echo();
    assert_eq!(echo.path(), "/users/profile/42");

    // A path the pattern does not match goes up unchanged.
    let echo = c.get(&gw.url("/v1/other")).send().await.echo();
    assert_eq!(echo.path(), "/v1/other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_transformer_changes_host_headers_and_query() {
    let up = Upstream::start("a").await;
    let gw = Gateway::with(
        r#"
upstreams: [{ id: u, nodes: [{ address: "{{a}}" }] }]
routes:
  - id: r
    paths: ["/*"]
    upstream: u
    plugins:
      request-transformer:
        host: backend.internal
        add_headers: { x-added: "1", x-tenant: acme }
        set_headers: { x-overwritten: new, user-agent: portico-test }
        remove_headers: [x-secret, cookie]
        add_query: { source: gateway, v: "2" }
"#,
    )
    .var("a", &up.address())
    .start()
    .await;
    let echo = Client::new()
        .get(&gw.url("/t?keep=yes"))
        .host("api.example.com")
        .header("x-overwritten", "old")
        .header("x-secret", "hunter2")
        .header("cookie", "session=abc")
        .header("x-untouched", "same")
        .send()
        .await
        .echo();
    assert_eq!(echo.headers("host"), vec!["backend.internal"]);
    assert_eq!(echo.header("x-added").as_deref(), Some("1"));
    assert_eq!(echo.header("x-tenant").as_deref(), Some("acme"));
    assert_eq!(echo.headers("x-overwritten"), vec!["new"]);
    assert_eq!(echo.headers("user-agent"), vec!["portico-test"]);
    assert_eq!(echo.header("x-secret"), None);
    assert_eq!(echo.header("cookie"), None);
    assert_eq!(echo.header("x-untouched").as_deref(), Some("same"));
    let query = echo.query().unwrap_or_default().to_owned();
    let mut pairs: Vec<&str> = query.split('&').collect();
    pairs.sort_unstable();
    assert_eq!(pairs, ["keep=yes", "source=gateway", "v=2"], "query {query:?}");
    // The original host is still reported to the upstream.
    assert_eq!(echo.header("x-forwarded-host").as_deref(), Some("api.example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_transformer_changes_the_response() {
    let up = Upstream::builder("a")
        .header("x-internal-secret", "s3cr3t")
        .header("server", "upstream/1.0")
        .header("x-keep", "kept")
        .start()
        .await;
    let gw = Gateway::with(
        r#"
upstreams: [{ id: u, nodes: [{ address: "{{a}}" }] }]
routes:
  - id: r
    paths: ["/*"]
    upstream: u
    plugins:
      response-transformer:
        add_headers: { x-added: "yes" }
        set_headers: { server: portico }
        remove_headers: [x-internal-secret]
        status: 202
  - id: mocked
    paths: [/mocked]
    plugins:
      mock: { status: 200, body: mocked }
      response-transformer: { add_headers: { x-transformed: "1" }, status: 203 }
"#,
    )
    .var("a", &up.address())
    .start()
    .await;
    let c = Client::new();
    let resp = c.get(&gw.url("/x")).send().await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(resp.json()["server"], "a", "the body is the upstream's");
    assert_eq!(resp.header("x-added").as_deref(), Some("yes"));
    assert_eq!(resp.headers_all("server"), vec!["portico"]);
    assert_eq!(resp.header("x-internal-secret"), None);
    assert_eq!(resp.header("x-keep").as_deref(), Some("kept"));

    // The response phase runs on answers from the route phase too.
    let resp = c.get(&gw.url("/mocked")).send().await;
    assert_eq!((resp.status, resp.text().as_str()), (203, "mocked"));
    assert_eq!(resp.header("x-transformed").as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_run_in_the_fixed_order_whatever_the_yaml_order() {
    let up = Upstream::start("a").await;
    let gw = Gateway::with(
        r#"
upstreams: [{ id: u, nodes: [{ address: "{{a}}" }] }]
routes:
  - id: r
    paths: ["/*"]
    upstream: u
    plugins:
      response-transformer: { set_headers: { x-phase: response } }
      mock: { status: 200, body: from-mock }
      request-transformer: { uri: /never-seen }
"#,
    )
    .var("a", &up.address())
    .start()
    .await;
    // rewrite → route (mock answers) → response: the upstream is never called, and the
    // response transformer still sees the mock's answer.
    let resp = Client::new().get(&gw.url("/x")).send().await;
    assert_eq!((resp.status, resp.text().as_str()), (200, "from-mock"));
    assert_eq!(resp.header("x-phase").as_deref(), Some("response"));
    assert_eq!(up.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_reach_plugin_config() {
    let gw = Gateway::with(
        r#"
routes:
  - id: r
    paths: [/env]
    plugins: { mock: { body: "${PORTICO_TEST_BODY}", headers: { x-env: "${PORTICO_TEST_UNSET:-fallback}" } } }
"#,
    )
    .env("PORTICO_TEST_BODY", "from the environment")
    .start()
    .await;
    let resp = Client::new().get(&gw.url("/env")).send().await;
    assert_eq!(resp.text(), "from the environment");
    assert_eq!(resp.header("x-env").as_deref(), Some("fallback"));
}
