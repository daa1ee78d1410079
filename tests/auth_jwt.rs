//! jwt-auth through the real binary: the published vectors as they are, the classic attacks,
//! where tokens come from, and keys from a JWKS endpoint.

#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Client, DEADLINE, Gateway, JwksServer, Upstream, eventually_async};

/// The vectors from ../shared/conformance, copied beside the tests so that a clone of the repo
/// alone runs them; when the shared folder is there, the copy must be the same file.
fn vectors() -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("tests/data/jwt_vectors.json")).expect("tests/data/jwt_vectors.json");
    if let Ok(shared) = std::fs::read_to_string(root.join("../shared/conformance/jwt_vectors.json")) {
        assert_eq!(
            shared, text,
            "tests/data/jwt_vectors.json differs from the shared vectors: copy it again"
        );
    }
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn b64url_json(part: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object)
}

/// The config part of one vector: a consumer holding its key, a route checking as it says.
fn vector_config(v: &Value) -> String {
    let alg = v["verify_config"]["alg"].as_str().unwrap();
    let payload = v["token"].as_str().unwrap().split('.').nth(1).and_then(b64url_json);
    let (claim, name) = match &payload {
        Some(p) if p["key"].is_string() => ("key", p["key"].as_str().unwrap().to_owned()),
        Some(p) if p["iss"].is_string() => ("iss", p["iss"].as_str().unwrap().to_owned()),
        _ => ("iss", "no-such-claim".to_owned()),
    };
    let key = &v["key"];
    let q = |s: &Value| serde_json::to_string(s).unwrap();
    let cred = if let Some(jwk) = key.get("jwk") {
        format!("{{ key: {}, algorithm: {alg}, jwk: {jwk} }}", q(&json!(name)))
    } else if let Some(s) = key.get("secret") {
        format!("{{ key: {}, algorithm: {alg}, secret: {} }}", q(&json!(name)), q(s))
    } else if let Some(s) = key.get("secret_base64") {
        format!(
            "{{ key: {}, algorithm: {alg}, secret: {}, base64_secret: true }}",
            q(&json!(name)),
            q(s)
        )
    } else if let Some(pem) = key.get("pem") {
        format!(
            "{{ key: {}, algorithm: {alg}, public_key: {} }}",
            q(&json!(name)),
            q(pem)
        )
    } else {
        panic!("{}: unknown key shape {key}", v["id"]);
    };
    let vc = &v["verify_config"];
    let mut plugin = format!("key_claim: {claim}");
    if vc["verify_exp"] == json!(false) {
        plugin.push_str(", claims_to_verify: [nbf]");
    }
    if let Some(aud) = vc.get("aud") {
        plugin.push_str(&format!(", audience: {}", q(aud)));
    }
    if let Some(iss) = vc.get("iss") {
        plugin.push_str(&format!(", issuer: {}", q(iss)));
    }
    format!(
        r#"
consumers:
  - {{ username: vector-user, credentials: {{ jwt-auth: {cred} }} }}
upstreams: [{{ id: up, nodes: [{{ address: "{{{{up}}}}" }}] }}]
routes:
  - {{ id: v, paths: ["/v"], upstream: up, plugins: {{ jwt-auth: {{ {plugin} }} }} }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_vectors_get_their_verdicts() {
    let up = Upstream::start("up").await;
    let all = vectors();
    let list = all["vectors"].as_array().unwrap().clone();
    assert!(list.len() >= 40, "only {} vectors", list.len());
    let mut failures = Vec::new();
    for chunk in list.chunks(8) {
        let mut tasks = tokio::task::JoinSet::new();
        for v in chunk.iter().cloned() {
            let up_addr = up.address();
            tasks.spawn(async move {
                let id = v["id"].as_str().unwrap().to_owned();
                let gw = Gateway::with(&vector_config(&v)).var("up", &up_addr).start().await;
                let token = v["token"].as_str().unwrap();
                let resp = Client::new()
                    .get(&gw.url("/v"))
                    .header("authorization", &format!("Bearer {token}"))
                    .send()
                    .await;
                let expected = v["expected"].as_str().unwrap();
                let ok = match expected {
                    "accept" => resp.status == 200,
                    // A JWS-level "valid" with a payload that is not a JSON object is still no JWT.
                    "reject" | "accept-signature" => {
                        resp.status == 401
                            && resp.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer"))
                            && support::check_gateway_error(
                                resp.status,
                                resp.header("content-type").as_deref(),
                                resp.header("x-request-id").as_deref(),
                                &resp.body,
                                401,
                            )
                            .is_ok()
                    }
                    _ => resp.status == 200 || resp.status == 401,
                };
                (!ok).then(|| format!("{id}: expected {expected}, got {} {}", resp.status, resp.text()))
            });
        }
        while let Some(r) = tasks.join_next().await {
            failures.extend(r.unwrap());
        }
    }
    assert!(failures.is_empty(), "vectors failed:\n{}", failures.join("\n"));
    let accepted = list.iter().filter(|v| v["expected"] == "accept").count();
    assert_eq!(up.requests(), accepted, "only accepted tokens reach the upstream");
}

const SECRET: &str = "a-long-hs256-secret-for-tests";
/// A P-256 key pair: the private half signs test tokens, the public half is the consumer's.
const EC1_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg239XvqgXAltYj7Cm
uJ80aU3cNzXiGRky72vARLRglKahRANCAASU4oNWojc2ajh8huSB07NZBl+aNVXr
uHT6xKafwJWqe0mK1hZ/26Vyw1+j/fMe3WdnlVtwxIjraw6H2sHj2xk5
-----END PRIVATE KEY-----
";
const EC1_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAElOKDVqI3Nmo4fIbkgdOzWQZfmjVV
67h0+sSmn8CVqntJitYWf9ulcsNfo/3zHt1nZ5VbcMSI62sOh9rB49sZOQ==
-----END PUBLIC KEY-----
";
const EC1_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"lOKDVqI3Nmo4fIbkgdOzWQZfmjVV67h0-sSmn8CVqns","y":"SYrWFn_bpXLDX6P98x7dZ2eVW3DEiOtrDofawePbGTk"}"#;
const EC2_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+3hOgLV/XYRF+5k4
uoxLQtVGcVldnUuMaDLU6IxCXO+hRANCAAQf+BH/pYu6hrU8sZQSSbnY5xTJfBFg
hXzhUsI7RuVLCxcBS440wsaC/UqkLG5NxgitMBYl6hUoBZQpt3t7dNwj
-----END PRIVATE KEY-----
";
const EC2_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"k2","alg":"ES256","x":"H_gR_6WLuoa1PLGUEkm52OcUyXwRYIV84VLCO0blSws","y":"FwFLjjTCxoL9SqQsbk3GCK0wFiXqFSgFlCm3e3t03CM"}"#;

fn hs256(claims: Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn es256(claims: Value, private: &str, kid: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = kid.map(str::to_owned);
    encode(&h, &claims, &EncodingKey::from_ec_pem(private.as_bytes()).unwrap()).unwrap()
}

async fn setup() -> (Upstream, Gateway) {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(
        r#"
consumers:
  - username: alice
    groups: [gold]
    credentials: { jwt-auth: { key: alice-app, secret: "{{secret}}" } }
  - username: ecuser
    credentials: { jwt-auth: { key: ec-app, algorithm: ES256, public_key: "{{ec_public}}" } }
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: j, paths: ["/j"], upstream: up, plugins: { jwt-auth: { leeway: 60s } } }
  - { id: cookie, paths: ["/cookie"], upstream: up, plugins: { jwt-auth: { cookie: jwt, hide_credentials: true } } }
  - { id: hdr, paths: ["/hdr"], upstream: up, plugins: { jwt-auth: { header: x-token } } }
"#,
    )
    .var("up", &up.address())
    .var("secret", SECRET)
    .var("ec_public", &EC1_PUBLIC.replace('\n', "\\n"))
    .start()
    .await;
    (up, gw)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn valid_tokens_name_their_consumer() {
    let (_up, gw) = setup().await;
    let c = Client::new();
    let token = hs256(json!({ "iss": "alice-app", "exp": 4102444800u64 }));
    let resp = c
        .get(&gw.url("/j"))
        .header("authorization", &bearer(&token))
        .send()
        .await;
    let echo = resp.echo();
    assert_eq!(echo.header("x-consumer-username").as_deref(), Some("alice"));
    assert_eq!(echo.header("x-consumer-groups").as_deref(), Some("gold"));
    let line = gw.access_log_for(&resp.header("x-request-id").unwrap()).await;
    assert_eq!(line["consumer"], "alice");

    let ec = es256(json!({ "iss": "ec-app" }), EC1_PRIVATE, None);
    let echo = c
        .get(&gw.url("/j"))
        .header("authorization", &bearer(&ec))
        .send()
        .await
        .echo();
    assert_eq!(echo.header("x-consumer-username").as_deref(), Some("ecuser"));

    // Expired 30s ago, within the route's 60s leeway.
    let now = jsonwebtoken::get_current_timestamp();
    let recent = hs256(json!({ "iss": "alice-app", "exp": now - 30 }));
    assert_eq!(
        c.get(&gw.url("/j"))
            .header("authorization", &bearer(&recent))
            .send()
            .await
            .status,
        200
    );
    let old = hs256(json!({ "iss": "alice-app", "exp": now - 600 }));
    c.get(&gw.url("/j"))
        .header("authorization", &bearer(&old))
        .send()
        .await
        .assert_error(401);
}

#[tokio::test]
async fn tokens_come_from_a_cookie_or_a_named_header() {
    let (_up, gw) = setup().await;
    let c = Client::new();
    let token = hs256(json!({ "iss": "alice-app" }));
    let echo = c
        .get(&gw.url("/cookie"))
        .header("cookie", &format!("theme=dark; jwt={token}"))
        .send()
        .await
        .echo();
    assert_eq!(echo.header("x-consumer-username").as_deref(), Some("alice"));
    assert_eq!(
        echo.header("cookie").as_deref(),
        Some("theme=dark"),
        "the token cookie is hidden"
    );
    let echo = c.get(&gw.url("/hdr")).header("x-token", &token).send().await.echo();
    assert_eq!(echo.header("x-consumer-username").as_deref(), Some("alice"));
    assert_eq!(
        echo.header("x-token").as_deref(),
        Some(token.as_str()),
        "kept by default"
    );
    c.get(&gw.url("/hdr"))
        .header("authorization", &bearer(&token))
        .send()
        .await
        .assert_error(401);
}

#[tokio::test]
async fn classic_attacks_are_401_never_a_crash() {
    let (up, gw) = setup().await;
    let c = Client::new();
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let good = hs256(json!({ "iss": "alice-app", "exp": 4102444800u64 }));
    let parts: Vec<&str> = good.split('.').collect();
    let claims = json!({ "iss": "alice-app", "exp": 4102444800u64, "admin": true });
    // HS256 signed with the EC consumer's public key PEM as the HMAC secret.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "iss": "ec-app" }),
        &EncodingKey::from_secret(EC1_PUBLIC.as_bytes()),
    )
    .unwrap();
    let attacks = vec![
        ("missing", None),
        ("empty bearer", Some("Bearer ".to_owned())),
        ("not a jwt", Some(bearer("hello"))),
        (
            "alg none",
            Some(bearer(&format!("{}.{}.", b64(&json!({"alg":"none"})), b64(&claims)))),
        ),
        (
            "alg none with the old signature",
            Some(bearer(&format!(
                "{}.{}.{}",
                b64(&json!({"alg":"none","typ":"JWT"})),
                parts[1],
                parts[2]
            ))),
        ),
        (
            "tampered payload",
            Some(bearer(&format!("{}.{}.{}", parts[0], b64(&claims), parts[2]))),
        ),
        ("bad base64", Some(bearer(&format!("{}.@@@.{}", parts[0], parts[2])))),
        (
            "bad signature base64",
            Some(bearer(&format!("{}.{}.***", parts[0], parts[1]))),
        ),
        ("unknown key", Some(bearer(&hs256(json!({ "iss": "mallory" }))))),
        ("hs256 with the EC public key", Some(bearer(&confused))),
        (
            "oversize",
            Some(bearer(&format!("{}.{}.{}", parts[0], "A".repeat(9000), parts[2]))),
        ),
        ("basic scheme", Some(format!("Basic {good}"))),
    ];
    for (what, auth) in attacks {
        let mut req = c.get(&gw.url("/j"));
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await;
        let msg = resp.assert_error(401);
        let challenge = resp.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer realm=\"portico\""), "{what}: {challenge}");
        assert!(!msg.is_empty(), "{what}");
    }
    assert_eq!(up.requests(), 0, "an attack reached the upstream");
    assert_eq!(
        c.get(&gw.url("/j"))
            .header("authorization", &bearer(&good))
            .send()
            .await
            .status,
        200
    );
}

const JWKS_ROUTE: &str = r#"
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: j, paths: ["/j"], upstream: up, plugins: { jwt-auth: { jwks_uri: "{{jwks}}", audience: api } } }
"#;

async fn status_with(gw: &Gateway, token: &str) -> u16 {
    Client::new()
        .get(&gw.url("/j"))
        .header("authorization", &bearer(token))
        .send()
        .await
        .status
}

#[tokio::test]
async fn jwks_keys_verify_tokens_and_rotate_on_an_unknown_kid() {
    let up = Upstream::start("up").await;
    let jwks = JwksServer::start(&format!(r#"{{"keys":[{EC1_JWK}]}}"#)).await;
    let gw = Gateway::with(JWKS_ROUTE)
        .var("up", &up.address())
        .var("jwks", &jwks.url())
        .start()
        .await;
    let t1 = es256(json!({ "sub": "user-42", "aud": "api" }), EC1_PRIVATE, Some("k1"));
    eventually_async("the first JWKS fetch", DEADLINE, || async {
        (status_with(&gw, &t1).await == 200).then_some(())
    })
    .await;
    let echo = Client::new()
        .get(&gw.url("/j"))
        .header("authorization", &bearer(&t1))
        .send()
        .await
        .echo();
    assert_eq!(echo.header("x-consumer-username").as_deref(), Some("user-42"));
    // A token without `sub` passes, anonymously: no identity header, no consumer in the log.
    let anon = es256(json!({ "aud": "api" }), EC1_PRIVATE, Some("k1"));
    let resp = Client::new()
        .get(&gw.url("/j"))
        .header("authorization", &bearer(&anon))
        .send()
        .await;
    assert_eq!(resp.echo().header("x-consumer-username"), None);
    let line = gw.access_log_for(&resp.header("x-request-id").unwrap()).await;
    assert!(line["consumer"].is_null(), "{line}");

    // Wrong audience, HS256 under a known kid, a key the JWKS does not have: all 401.
    let wrong_aud = es256(json!({ "sub": "u", "aud": "web" }), EC1_PRIVATE, Some("k1"));
    assert_eq!(status_with(&gw, &wrong_aud).await, 401);
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    let hs = encode(
        &h,
        &json!({ "aud": "api" }),
        &EncodingKey::from_secret(EC1_JWK.as_bytes()),
    )
    .unwrap();
    assert_eq!(status_with(&gw, &hs).await, 401);
    let t2 = es256(json!({ "sub": "user-7", "aud": "api" }), EC2_PRIVATE, Some("k2"));
    assert_eq!(status_with(&gw, &t2).await, 401);

    // The issuer rotates in k2: an unknown kid makes the gateway fetch again.
    jwks.set(&format!(r#"{{"keys":[{EC1_JWK},{EC2_JWK}]}}"#));
    eventually_async("a refetch on the unknown kid k2", DEADLINE, || async {
        (status_with(&gw, &t2).await == 200).then_some(())
    })
    .await;
    // Unknown kids are refetched at most every few seconds, not per request.
    let before = jwks.hits();
    let t3 = es256(json!({ "aud": "api" }), EC2_PRIVATE, Some("k3"));
    for _ in 0..20 {
        assert_eq!(status_with(&gw, &t3).await, 401);
    }
    assert!(
        jwks.hits() - before <= 2,
        "{} fetches for 20 unknown kids",
        jwks.hits() - before
    );

    // The endpoint failing keeps the keys already fetched.
    jwks.fail(true);
    assert_eq!(status_with(&gw, &t1).await, 200);
}

#[tokio::test]
async fn an_unreachable_jwks_never_stalls_requests() {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(JWKS_ROUTE)
        .var("up", &up.address())
        .var("jwks", &format!("http://{}/jwks.json", support::refused_addr()))
        .start()
        .await;
    let t1 = es256(json!({ "aud": "api" }), EC1_PRIVATE, Some("k1"));
    for _ in 0..5 {
        let start = Instant::now();
        let resp = Client::new()
            .get(&gw.url("/j"))
            .header("authorization", &bearer(&t1))
            .send()
            .await;
        resp.assert_error(401);
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    }
    assert_eq!(up.requests(), 0);
}
