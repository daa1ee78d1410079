//! `scheme: https` upstreams: the gateway verifies the node's certificate against the
//! configured CA, sends the right SNI, presents a client certificate for mTLS, and never
//! shares a pooled connection between different TLS settings.

#![allow(clippy::unwrap_used)]

mod support;

use support::upstream_tls::{Ca, TlsUpstream};
use support::{Client, Gateway, validate};

struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
            ca: Ca::new("upstream test CA"),
        }
    }

    fn ca_file(&self) -> String {
        self.ca.write(self.dir.path(), "ca").display().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_with_its_own_ca_is_verified_and_reused() {
    let pki = Pki::new();
    let up = TlsUpstream::start(&pki.ca.issue("upstream", &["127.0.0.1"]), None).await;
    let gw = Gateway::with(
        r#"
routes:
  - id: r
    paths: ["/*"]
    upstream:
      scheme: https
      nodes: [{ address: "{{up}}" }]
      tls: { ca: "{{ca}}" }
"#,
    )
    .var("up", &up.address())
    .var("ca", &pki.ca_file())
    .start()
    .await;
    let c = Client::new();
    let first = c.get(&gw.url("/hello")).host("api.test").send().await;
    assert_eq!(first.status, 200, "{}", first.text());
    let echo = first.json();
    assert_eq!(echo["path"], "/hello");
    assert_eq!(
        echo["host"], "api.test",
        "pass_host: pass keeps the client's Host over TLS"
    );
    assert_eq!(
        echo["sni"],
        serde_json::Value::Null,
        "an IP address is verified, never sent as SNI"
    );
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");

    let second = c.get(&gw.url("/again")).send().await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(
        second.json()["connection"],
        echo["connection"],
        "the TLS connection is pooled and reused"
    );
    assert_eq!(up.handshakes(), 1);
    let id = first.header("x-request-id").unwrap();
    let line = gw.access_log_for(&id).await;
    assert_eq!(line["upstream_addr"], up.address().as_str());
    assert_eq!(line["upstream_status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_502_and_a_clear_log_line() {
    let pki = Pki::new();
    let stranger = Ca::new("someone else's CA");
    let up = TlsUpstream::start(&stranger.issue("upstream", &["127.0.0.1"]), None).await;
    let gw = Gateway::with(
        r#"
routes:
  - id: r
    paths: ["/*"]
    upstream: { scheme: https, nodes: [{ address: "{{up}}" }], tls: { ca: "{{ca}}" }, retries: 0 }
"#,
    )
    .var("up", &up.address())
    .var("ca", &pki.ca_file())
    .start()
    .await;
    let resp = Client::new().get(&gw.url("/x")).send().await;
    resp.assert_error(502);
    gw.wait_stderr("upstream TLS handshake failed").await;
    let log = gw.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("upstream TLS handshake failed"))
        .unwrap();
    assert!(line.contains(&up.address()), "the node is named: {line}");
    assert!(line.contains("UnknownIssuer"), "the reason is given: {line}");
    assert_eq!(up.handshakes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_must_name_the_sni_host() {
    let pki = Pki::new();
    let up = TlsUpstream::start(&pki.ca.issue("users", &["users.internal"]), None).await;
    let gw = Gateway::with(
        r#"
routes:
  - id: by-sni
    paths: ["/sni"]
    upstream: { scheme: https, nodes: [{ address: "{{up}}" }], tls: { ca: "{{ca}}", sni: users.internal } }
  - id: by-host
    paths: ["/host"]
    upstream:
      scheme: https
      nodes: [{ address: "{{up}}" }]
      pass_host: rewrite
      upstream_host: "users.internal:8443"
      tls: { ca: "{{ca}}" }
  - id: wrong
    paths: ["/wrong"]
    upstream: { scheme: https, nodes: [{ address: "{{up}}" }], tls: { ca: "{{ca}}", sni: orders.internal }, retries: 0 }
"#,
    )
    .var("up", &up.address())
    .var("ca", &pki.ca_file())
    .start()
    .await;
    let c = Client::new();
    let resp = c.get(&gw.url("/sni")).send().await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["sni"], "users.internal");

    let resp = c.get(&gw.url("/host")).send().await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json()["sni"],
        "users.internal",
        "SNI defaults to upstream_host, port dropped"
    );
    assert_eq!(resp.json()["host"], "users.internal:8443");

    c.get(&gw.url("/wrong")).send().await.assert_error(502);
    gw.wait_stderr("certificate not valid for name \"orders.internal\"")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_presents_the_configured_client_certificate() {
    let pki = Pki::new();
    let clients = Ca::new("client CA");
    let (cert, key) = clients
        .issue("portico-gateway", &["portico.internal"])
        .write(pki.dir.path(), "client");
    let up = TlsUpstream::start(&pki.ca.issue("upstream", &["127.0.0.1"]), Some(&clients)).await;
    let gw = Gateway::with(
        r#"
routes:
  - id: with-cert
    paths: ["/with"]
    upstream: { scheme: https, nodes: [{ address: "{{up}}" }], tls: { ca: "{{ca}}", cert: "{{cert}}", key: "{{key}}" } }
  - id: without
    paths: ["/without"]
    upstream: { scheme: https, nodes: [{ address: "{{up}}" }], tls: { ca: "{{ca}}" }, retries: 0 }
"#,
    )
    .var("up", &up.address())
    .var("ca", &pki.ca_file())
    .var("cert", &cert.display().to_string())
    .var("key", &key.display().to_string())
    .start()
    .await;
    let c = Client::new();
    for _ in 0..3 {
        let resp = c.get(&gw.url("/with")).send().await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["client_cn"], "portico-gateway");
        // Same node, other TLS settings: never handed the client-certificate connection.
        let resp = c.get(&gw.url("/without")).send().await;
        assert_eq!(resp.status, 502, "{}", resp.text());
    }
    assert_eq!(up.handshakes(), 1, "one pooled mTLS connection served every /with");
    assert!(
        !up.failures().is_empty(),
        "the upstream refused the handshake without a certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_settings_are_located_validation_errors() {
    let pki = Pki::new();
    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM").unwrap();
    let yaml = format!(
        r#"
gateway: {{ listeners: [{{ address: "127.0.0.1:1" }}] }}
upstreams:
  - {{ id: a, scheme: https, nodes: [{{ address: "127.0.0.1:1" }}], tls: {{ ca: /nonexistent/ca.pem }} }}
  - {{ id: b, scheme: https, nodes: [{{ address: "127.0.0.1:1" }}], tls: {{ ca: "{garbage}" }} }}
  - {{ id: c, scheme: http, nodes: [{{ address: "127.0.0.1:1" }}], tls: {{ ca: "{ca}" }} }}
  - {{ id: d, scheme: https, nodes: [{{ address: "127.0.0.1:1" }}], tls: {{ cert: "{ca}" }} }}
routes: [{{ id: r, paths: [/], upstream: a }}]
"#,
        garbage = garbage.display(),
        ca = pki.ca_file(),
    );
    let (code, out) = validate(&yaml);
    assert_eq!(code, 1, "{out}");
    for want in [
        "upstreams[0].tls.ca: cannot read \"/nonexistent/ca.pem\"",
        "upstreams[1].tls.ca: no PEM certificate",
        "upstreams[2].tls: only applies to scheme: https or grpcs",
        "upstreams[3].tls.key: required with cert",
    ] {
        assert!(out.contains(want), "missing {want:?} in {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_speak_tls_to_a_tls_node() {
    let pki = Pki::new();
    let up = TlsUpstream::start(&pki.ca.issue("upstream", &["127.0.0.1"]), None).await;
    let gw = Gateway::with(
        r#"
routes:
  - id: r
    paths: ["/*"]
    upstream:
      scheme: https
      nodes: [{ address: "{{up}}" }]
      tls: { ca: "{{ca}}" }
      health_check: { active: { path: /healthz, interval: 50ms, timeout: 2s, healthy: 1, unhealthy: 1 } }
"#,
    )
    .var("up", &up.address())
    .var("ca", &pki.ca_file())
    .start()
    .await;
    // Each probe is a TLS connection of its own: a few of them have come and gone.
    support::eventually("three TLS health probes", support::DEADLINE, || {
        (up.handshakes() >= 3).then_some(())
    })
    .await;
    assert!(up.failures().is_empty(), "{:?}", up.failures());
    let resp = Client::new().get(&gw.url("/x")).send().await;
    assert_eq!(resp.status, 200, "the probed node is healthy: {}", resp.text());
    assert!(!gw.stderr().contains("node unhealthy"), "{}", gw.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_is_fetched_over_https_verified_against_the_system_roots() {
    use base64::Engine as _;
    let pki = Pki::new();
    // The identity provider's signing key, published as a JWK (P-256: 0x04 || x || y).
    let signing = rcgen::KeyPair::generate().unwrap();
    let point = signing.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = serde_json::json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    }]});
    let idp = TlsUpstream::serving(&pki.ca.issue("idp", &["127.0.0.1"]), &jwks.to_string()).await;
    let up = support::Upstream::start("up").await;
    // The system's trust store is the test CA alone: SSL_CERT_FILE, as rustls-native-certs reads it.
    let gw = Gateway::with(
        r#"
routes:
  - id: j
    paths: ["/j"]
    upstream: { nodes: [{ address: "{{up}}" }] }
    plugins: { jwt-auth: { jwks_uri: "https://{{idp}}/jwks.json" } }
"#,
    )
    .var("up", &up.address())
    .var("idp", &idp.address())
    .env("SSL_CERT_FILE", &pki.ca_file())
    .start()
    .await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &header,
        &serde_json::json!({ "sub": "user-7", "exp": exp }),
        &jsonwebtoken::EncodingKey::from_ec_pem(signing.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let c = Client::new();
    support::eventually_async(
        "a token verified by the JWKS fetched over https",
        support::DEADLINE,
        || async {
            let resp = c
                .get(&gw.url("/j"))
                .header("authorization", &format!("Bearer {token}"))
                .send()
                .await;
            (resp.status == 200).then_some(())
        },
    )
    .await;
    assert!(idp.handshakes() >= 1);
    assert!(idp.failures().is_empty(), "{:?}", idp.failures());
}
