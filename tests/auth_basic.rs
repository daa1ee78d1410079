//! basic-auth through the real binary: plain, bcrypt and argon2 passwords, the challenge on
//! every 401, hidden credentials, and hashing that never stalls other requests.

#![allow(clippy::unwrap_used)]

mod support;

use argon2::password_hash::{PasswordHasher, SaltString};
use base64::Engine;
use std::time::Instant;
use support::{Client, Gateway, Upstream};

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// An argon2id PHC string with the given memory (KiB) and passes.
fn argon2(password: &str, m_kib: u32, t: u32) -> String {
    let params = argon2::Params::new(m_kib, t, 1, None).unwrap();
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
    hasher.hash_password(password.as_bytes(), &salt).unwrap().to_string()
}

async fn setup() -> (Upstream, Gateway) {
    let up = Upstream::start("up").await;
    let gw = Gateway::with(
        r#"
consumers:
  - { username: plain, groups: [g1], credentials: { basic-auth: { password: "p@ss:word" } } }
  - { username: crypt, credentials: { basic-auth: { password: "{{bcrypt}}" } } }
  - { username: argon, credentials: { basic-auth: { password: "{{argon}}" } } }
  - { username: slow, credentials: { basic-auth: { password: "{{slow}}" } } }
  - { username: svc, credentials: { basic-auth: { username: service-login, password: svc-pw } } }
upstreams: [{ id: up, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: b, paths: ["/b/*"], upstream: up, plugins: { basic-auth: {} } }
  - { id: keep, paths: ["/keep"], upstream: up, plugins: { basic-auth: { hide_credentials: false } } }
  - { id: open, paths: ["/open"], upstream: up }
"#,
    )
    .var("up", &up.address())
    .var("bcrypt", &bcrypt::hash("bcrypt-pw", 4).unwrap())
    .var("argon", &argon2("argon-pw", 1024, 1))
    .var("slow", &argon2("slow-pw", 32 * 1024, 3))
    .start()
    .await;
    (up, gw)
}

#[tokio::test]
async fn plain_bcrypt_and_argon2_passwords_authenticate() {
    let (_up, gw) = setup().await;
    let c = Client::new();
    for (user, login, pw) in [
        ("plain", "plain", "p@ss:word"),
        ("crypt", "crypt", "bcrypt-pw"),
        ("argon", "argon", "argon-pw"),
        ("svc", "service-login", "svc-pw"),
    ] {
        for _ in 0..2 {
            let resp = c
                .get(&gw.url("/b/x"))
                .header("authorization", &basic(login, pw))
                .send()
                .await;
            let echo = resp.echo();
            assert_eq!(echo.header("x-consumer-username").as_deref(), Some(user));
            assert_eq!(echo.header("authorization"), None, "hide_credentials is the default");
            let line = gw.access_log_for(&resp.header("x-request-id").unwrap()).await;
            assert_eq!(line["consumer"], user);
        }
    }
    let echo = c
        .get(&gw.url("/keep"))
        .header("authorization", &basic("plain", "p@ss:word"))
        .send()
        .await
        .echo();
    assert_eq!(echo.header("x-consumer-groups").as_deref(), Some("g1"));
    assert_eq!(echo.header("authorization"), Some(basic("plain", "p@ss:word")));
}

#[tokio::test]
async fn every_failure_is_a_401_with_the_challenge() {
    let (up, gw) = setup().await;
    let c = Client::new();
    let cases = [
        None,
        Some(basic("plain", "wrong")),
        Some(basic("crypt", "bcrypt-pw ")),
        Some(basic("argon", "ARGON-PW")),
        Some(basic("nobody", "p@ss:word")),
        Some(basic("svc", "svc-pw")),
        Some("Basic !!!notbase64".to_owned()),
        Some("Basic cGxhaW4=".to_owned()),
        Some("Bearer abc".to_owned()),
        Some(format!("Basic {}", "A".repeat(5000))),
    ];
    for auth in cases {
        let mut req = c.get(&gw.url("/b/x"));
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await;
        resp.assert_error(401);
        assert_eq!(
            resp.header("www-authenticate").as_deref(),
            Some("Basic realm=\"portico\""),
            "{auth:?}"
        );
    }
    assert_eq!(up.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_hash_does_not_stall_other_requests() {
    let (_up, gw) = setup().await;
    let url = gw.url("/b/slow");
    let slow = tokio::spawn(async move {
        let start = Instant::now();
        let resp = Client::fresh_connections()
            .get(&url)
            .header("authorization", &basic("slow", "slow-pw"))
            .send()
            .await;
        (resp.status, start.elapsed())
    });
    // The gateway has one worker: were the hash on it, these would wait behind it.
    let c = Client::fresh_connections();
    for _ in 0..3 {
        let resp = c.get(&gw.url("/open")).send().await;
        assert_eq!(resp.status, 200);
    }
    let was_pending = !slow.is_finished();
    let (status, took) = slow.await.unwrap();
    assert_eq!(status, 200);
    assert!(was_pending, "the open route waited for the hash ({took:?})");
}
