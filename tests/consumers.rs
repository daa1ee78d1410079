//! Consumers through the real binary: credential uniqueness, per-consumer plugin settings,
//! and secrets kept out of every log.

#![allow(clippy::unwrap_used)]

mod support;

use support::{Client, Gateway, Upstream, validate};

#[test]
fn duplicate_credentials_are_located_errors_without_the_secret() {
    let (code, out) = validate(
        r#"
gateway: { listeners: [{ address: "127.0.0.1:18080" }] }
consumers:
  - { username: a, credentials: { key-auth: { key: top-secret-1 }, basic-auth: { password: pw } } }
  - { username: b, credentials: { key-auth: { key: top-secret-1 }, jwt-auth: { key: app, secret: hs-secret-9 } } }
  - { username: c, credentials: { jwt-auth: { key: app, secret: hs-secret-9 }, basic-auth: { username: a, password: x } } }
  - { username: a, credentials: { oauth2: {} } }
"#,
    );
    assert_eq!(code, 1, "{out}");
    for want in [
        "consumers[1].credentials.key-auth.key: already used by consumer \"a\"",
        "consumers[2].credentials.jwt-auth.key: already used by consumer \"b\"",
        "consumers[2].credentials.basic-auth.username: \"a\" already belongs to consumer \"a\"",
        "consumers[3].username: duplicate username",
        "consumers[3].credentials.oauth2: \"oauth2\" is not an auth plugin",
    ] {
        assert!(
            out.lines().any(|l| l.trim().starts_with(want)),
            "missing {want:?} in:\n{out}"
        );
    }
    assert!(!out.contains("top-secret-1") && !out.contains("hs-secret-9"), "{out}");
}

#[test]
fn plugin_errors_are_located_inside_the_plugin() {
    let (code, out) = validate(
        r#"
gateway: { listeners: [{ address: "127.0.0.1:18080" }] }
upstreams: [{ id: u, nodes: [{ address: "127.0.0.1:19001" }] }]
consumers:
  - { username: a, plugins: { key-auth: {} } }
routes:
  - { id: a, paths: [/a], upstream: u, plugins: { key-auth: { header: "bad header" } } }
  - { id: b, paths: [/b], upstream: u, plugins: { ip-restriction: { allow: [10.0.0.0/8, nope] } } }
  - { id: c, paths: [/c], upstream: u, plugins: { jwt-auth: { jwks_uri: "ftp://idp.example/keys" } } }
  - { id: d, paths: [/d], upstream: u, plugins: { cors: { allow_credentials: true } } }
  - { id: e, paths: [/e], upstream: u, plugins: { request-size-limit: { max_body: lots } } }
  - { id: f, paths: [/f], upstream: u, plugins: { acl: {} } }
"#,
    );
    assert_eq!(code, 1, "{out}");
    for want in [
        "consumers[0].plugins.key-auth: runs before authentication",
        "routes[0].plugins.key-auth.header: invalid header name",
        "routes[1].plugins.ip-restriction.allow[1]: \"nope\" is not a CIDR",
        "routes[2].plugins.jwt-auth.jwks_uri: \"ftp://idp.example/keys\" must start with http://",
        "routes[3].plugins.cors.allow_credentials:",
        "routes[4].plugins.request-size-limit.max_body:",
        "routes[5].plugins.acl: set allow_groups",
    ] {
        assert!(
            out.lines().any(|l| l.trim().starts_with(want)),
            "missing {want:?} in:\n{out}"
        );
    }
}

#[tokio::test]
async fn a_consumers_plugins_replace_the_routes_after_auth() {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(
        r#"
consumers:
  - username: vip
    groups: [gold]
    credentials: { key-auth: { key: vip-key } }
    plugins:
      request-transformer: { add_headers: { x-tier: vip } }
      response-transformer: { set_headers: { x-served: vip } }
  - username: plain
    credentials: { key-auth: { key: plain-key } }
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - id: r
    paths: ["/*"]
    upstream: up
    plugins:
      key-auth: {}
      request-transformer: { add_headers: { x-tier: standard, x-route: r } }
      request-size-limit: { max_body: 1kb }
"#,
    )
    .var("up", &up.address())
    .start()
    .await;
    let c = Client::new();
    let resp = c.get(&gw.url("/x")).header("apikey", "vip-key").send().await;
    assert_eq!(resp.header("x-served").as_deref(), Some("vip"));
    let echo = resp.echo();
    assert_eq!(echo.headers("x-tier"), ["vip"]);
    assert_eq!(
        echo.header("x-route"),
        None,
        "the consumer's transformer replaces the route's"
    );
    let resp = c.get(&gw.url("/x")).header("apikey", "plain-key").send().await;
    assert_eq!(resp.header("x-served"), None);
    let echo = resp.echo();
    assert_eq!(echo.headers("x-tier"), ["standard"]);
    assert_eq!(echo.header("x-route").as_deref(), Some("r"));
    // The route's other plugins still hold for the consumer (the head alone says too large).
    let mut conn = support::RawConn::connect(gw.addr()).await;
    conn.send(b"POST /x HTTP/1.1\r\nHost: h\r\napikey: vip-key\r\nContent-Length: 2048\r\n\r\n")
        .await;
    conn.read_response().await.unwrap().assert_error(413);
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    const SECRETS: [&str; 4] = ["sk-live-key-0001", "hunter2-basic-pw", "jwt-hs-secret-77", "eyJ"];
    let up = Upstream::start("up").await;
    let gw = Gateway::with(
        r#"
consumers:
  - username: alice
    credentials:
      key-auth: { key: sk-live-key-0001 }
      basic-auth: { password: hunter2-basic-pw }
      jwt-auth: { key: alice-app, secret: jwt-hs-secret-77 }
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: k, paths: ["/k"], upstream: up, plugins: { key-auth: {} } }
  - { id: b, paths: ["/b"], upstream: up, plugins: { basic-auth: {} } }
  - { id: j, paths: ["/j"], upstream: up, plugins: { jwt-auth: {} } }
"#,
    )
    .var("up", &up.address())
    .env("PORTICO_LOG", "debug")
    .start()
    .await;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "iss": "alice-app", "exp": 4102444800u64 }),
        &jsonwebtoken::EncodingKey::from_secret(b"jwt-hs-secret-77"),
    )
    .unwrap();
    let basic = |pw: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{pw}"))
        )
    };
    let c = Client::new();
    let mut ids = Vec::new();
    let mut go = |resp: support::Resp, want: u16| {
        assert_eq!(resp.status, want, "{}", resp.text());
        ids.push(resp.header("x-request-id").unwrap());
    };
    go(c.get(&gw.url("/k?apikey=sk-live-key-0001")).send().await, 200);
    go(
        c.get(&gw.url("/k")).header("apikey", "sk-live-key-0001").send().await,
        200,
    );
    go(c.get(&gw.url("/k?apikey=sk-live-key-0001x")).send().await, 401);
    go(
        c.get(&gw.url("/b"))
            .header("authorization", &basic("hunter2-basic-pw"))
            .send()
            .await,
        200,
    );
    go(
        c.get(&gw.url("/b"))
            .header("authorization", &basic("hunter2-basic-pwx"))
            .send()
            .await,
        401,
    );
    go(
        c.get(&gw.url("/j"))
            .header("authorization", &format!("Bearer {token}"))
            .send()
            .await,
        200,
    );
    go(
        c.get(&gw.url("/j"))
            .header("authorization", &format!("Bearer {token}x"))
            .send()
            .await,
        401,
    );
    for id in &ids {
        gw.access_log_for(id).await;
    }
    let log: Vec<String> = gw.access_log_lines().iter().map(|l| l.to_string()).collect();
    let log = log.join("\n");
    let logs = format!("{log}\n{}\n{}", gw.stderr(), gw.stdout());
    for s in SECRETS
        .iter()
        .chain([basic("hunter2-basic-pw").as_str(), token.as_str()].iter())
    {
        assert!(!logs.contains(s), "{s:?} appears in the logs:\n{logs}");
    }
}

#[tokio::test]
async fn a_reload_applies_new_and_revoked_credentials() {
    let up = Upstream::start("up").await;
    let config = |key: &str| {
        format!(
            r#"
consumers:
  - {{ username: alice, credentials: {{ key-auth: {{ key: {key} }} }} }}
upstreams: [{{ id: up, nodes: [{{ address: "{{{{up}}}}" }}] }}]
routes:
  - {{ id: r, paths: ["/*"], upstream: up, plugins: {{ key-auth: {{}} }} }}
"#
        )
    };
    let mut gw = Gateway::with(&config("old-key")).var("up", &up.address()).start().await;
    let status = |gw: &Gateway, key: &str| {
        let req = Client::new().get(&gw.url("/x")).header("apikey", key);
        async move { req.send().await.status }
    };
    assert_eq!(status(&gw, "old-key").await, 200);
    assert_eq!(status(&gw, "new-key").await, 401);
    gw.rewrite_with(&config("new-key"));
    support::eventually_async("the new key after the reload", support::DEADLINE, || async {
        (status(&gw, "new-key").await == 200).then_some(())
    })
    .await;
    assert_eq!(status(&gw, "old-key").await, 401, "a revoked key stops working");
}
