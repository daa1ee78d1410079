//! TLS listeners: the certificate picked by SNI (exact, wildcard, default), ALPN choosing
//! HTTP/2 or HTTP/1.1, TLS 1.2 and 1.3, a renewed certificate served without a restart, and
//! bad certificate files refused with their location.

#![allow(clippy::unwrap_used)]

mod support;

use support::certs::{
    TestCa, alpn, client_any_cert, get, h1_send, h2_handshake, h2_send, served_cert, tls_connect, try_tls_connect,
};
use support::{DEADLINE, Gateway, Upstream, eventually_async, validate};
use tokio::io::AsyncWriteExt;

const TLS_ROUTES: &str = r#"
gateway:
  listeners:
    - address: "{{listen}}"
    - address: "{{listen1}}"
      tls:
        certificates:
          - { cert: "{{api_cert}}", key: "{{api_key}}" }
          - { cert: "{{wild_cert}}", key: "{{wild_key}}" }
  workers: 1
  access_log: { path: "{{access_log}}" }
routes: [{ id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{up}}" }] } }]
"#;

struct Setup {
    ca: TestCa,
    certs: tempfile::TempDir,
    api: rustls_pki_types::CertificateDer<'static>,
    wild: rustls_pki_types::CertificateDer<'static>,
}

/// Two certificates: `api.test` (and 127.0.0.1, listed first: the default) and
/// `*.wild.test` + `other.test`.
fn setup() -> Setup {
    let ca = TestCa::new();
    let certs = tempfile::tempdir().unwrap();
    let api = ca.leaf(&["api.test", "127.0.0.1"]);
    let wild = ca.leaf(&["*.wild.test", "other.test"]);
    api.write(certs.path(), "api");
    wild.write(certs.path(), "wild");
    Setup {
        ca,
        api: api.der.clone(),
        wild: wild.der.clone(),
        certs,
    }
}

async fn start(s: &Setup, up: &Upstream) -> Gateway {
    let p = |f: &str| s.certs.path().join(f).display().to_string();
    Gateway::builder(TLS_ROUTES)
        .var("api_cert", &p("api.pem"))
        .var("api_key", &p("api.key"))
        .var("wild_cert", &p("wild.pem"))
        .var("wild_key", &p("wild.key"))
        .var("up", &up.address())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_by_name_wildcard_or_default() {
    let s = setup();
    let up = Upstream::start("u").await;
    let gw = start(&s, &up).await;
    let tls = gw.listeners()[1];
    let any = || client_any_cert(&["http/1.1"], rustls::ALL_VERSIONS);

    for (sni, want, which) in [
        (Some("api.test"), &s.api, "exact name"),
        (Some("API.Test"), &s.api, "exact name, other case"),
        (Some("other.test"), &s.wild, "exact name of the second certificate"),
        (Some("x.wild.test"), &s.wild, "wildcard"),
        (Some("a.b.wild.test"), &s.api, "wildcard covers one label only: default"),
        (Some("unknown.test"), &s.api, "unknown name: default"),
        (None, &s.api, "no SNI: default"),
    ] {
        let conn = tls_connect(tls, sni, any()).await;
        assert!(
            served_cert(&conn) == *want,
            "{which}: {sni:?} got the wrong certificate"
        );
    }

    // A verifying client (trusting the test CA) gets through and is proxied, as https.
    let conn = tls_connect(tls, Some("x.wild.test"), s.ca.client(&["http/1.1"])).await;
    let resp = h1_send(conn, "x.wild.test", "/hello").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, http::Version::HTTP_11);
    let echo = resp.json();
    assert_eq!(echo["path"], "/hello");
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(echo["headers"]["host"][0], "x.wild.test");
    let line = gw.access_log_for(&resp.header("x-request-id").unwrap()).await;
    assert_eq!(line["host"], "x.wild.test");
    assert_eq!(line["status"], 200);

    // The plain listener is still plain.
    let echo = support::Client::new().get(&gw.url("/plain")).send().await.echo();
    assert_eq!(echo.header("x-forwarded-proto").as_deref(), Some("http"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_chooses_http2_or_http11() {
    let s = setup();
    let up = Upstream::start("u").await;
    let gw = start(&s, &up).await;
    let tls = gw.listeners()[1];

    // Offering both: h2 wins.
    let conn = tls_connect(tls, Some("api.test"), s.ca.client(&["h2", "http/1.1"])).await;
    assert_eq!(alpn(&conn).as_deref(), Some("h2"));
    let mut h2 = h2_handshake(conn).await;
    let resp = h2_send(&mut h2, get("https://api.test/over/h2?q=1")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, http::Version::HTTP_2);
    let echo = resp.json();
    assert_eq!(echo["path"], "/over/h2");
    assert_eq!(echo["query"], "q=1");
    // The upstream side stays HTTP/1.1, with Host from :authority.
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["headers"]["host"][0], "api.test");
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
    let line = gw.access_log_for(&resp.header("x-request-id").unwrap()).await;
    assert_eq!(line["host"], "api.test");
    assert_eq!(line["path"], "/over/h2");
    assert_eq!(line["route_id"], "r");

    // Offering only http/1.1, or nothing: HTTP/1.1.
    for offer in [&["http/1.1"][..], &[]] {
        let conn = tls_connect(tls, Some("api.test"), s.ca.client(offer)).await;
        let want = if offer.is_empty() { None } else { Some("http/1.1") };
        assert_eq!(alpn(&conn).as_deref(), want);
        let resp = h1_send(conn, "api.test", "/over/h1").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["path"], "/over/h1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_and_tls13_only() {
    let s = setup();
    let up = Upstream::start("u").await;
    let gw = start(&s, &up).await;
    let tls = gw.listeners()[1];
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let conn = tls_connect(tls, Some("api.test"), client_any_cert(&[], &[version])).await;
        assert_eq!(conn.get_ref().1.protocol_version(), Some(version.version));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_garbage_does_not_hurt_the_listener() {
    let s = setup();
    let up = Upstream::start("u").await;
    let gw = start(&s, &up).await;
    let tls = gw.listeners()[1];

    // Plain HTTP to the TLS port, random bytes, a half-finished handshake left open.
    let mut plain = tokio::net::TcpStream::connect(tls).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut junk = tokio::net::TcpStream::connect(tls).await.unwrap();
    junk.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3]).await.unwrap();
    let _silent = tokio::net::TcpStream::connect(tls).await.unwrap();

    // The one worker still serves real clients at once.
    let conn = tls_connect(tls, Some("api.test"), s.ca.client(&["h2"])).await;
    let mut h2 = h2_handshake(conn).await;
    assert_eq!(h2_send(&mut h2, get("https://api.test/ok")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let s = setup();
    let up = Upstream::start("u").await;
    let gw = start(&s, &up).await;
    let tls = gw.listeners()[1];
    let pid = gw.pid();

    // A new key and certificate replace the files; the config file is not touched.
    let renewed = s.ca.leaf(&["api.test", "127.0.0.1"]);
    renewed.write(s.certs.path(), "api");
    let want = renewed.der.clone();
    let ca = &s.ca;
    eventually_async("the renewed certificate to be served", DEADLINE, || {
        let want = want.clone();
        async move {
            let conn = try_tls_connect(tls, Some("api.test"), ca.client(&["http/1.1"]))
                .await
                .ok()?;
            (served_cert(&conn) == want).then_some(())
        }
    })
    .await;
    gw.wait_stderr("config applied").await;
    assert_eq!(gw.pid(), pid);

    // A broken renewal (a key that does not match) is refused; the last good pair keeps serving.
    let refusals = || gw.stderr().matches("does not match the certificate").count();
    let before = refusals();
    let other = s.ca.leaf(&["api.test"]);
    std::fs::write(s.certs.path().join("api.key"), &other.key_pem).unwrap();
    support::eventually("the mismatched key to be refused", DEADLINE, || {
        (refusals() > before).then_some(())
    })
    .await;
    let conn = tls_connect(tls, Some("api.test"), s.ca.client(&["http/1.1"])).await;
    assert!(served_cert(&conn) == renewed.der);
    assert_eq!(h1_send(conn, "api.test", "/still").await.status, 200);
}

#[test]
fn bad_certificates_and_keys_are_located_errors() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let good = ca.leaf(&["good.test"]);
    let (cert, key) = good.write(dir.path(), "good");
    let stranger = ca.leaf(&["good.test"]);
    let (_, other_key) = stranger.write(dir.path(), "stranger");
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (cert, key, other_key, junk) = (
        cert.display().to_string(),
        key.display().to_string(),
        other_key.display().to_string(),
        junk.display().to_string(),
    );
    let missing = dir.path().join("missing.pem").display().to_string();

    let (code, out) = validate(&format!(
        r#"
gateway:
  listeners:
    - address: "127.0.0.1:18080"
    - address: "127.0.0.1:18443"
      tls:
        certificates:
          - {{ cert: "{cert}", key: "{key}" }}
          - {{ cert: "{missing}", key: "{key}" }}
          - {{ cert: "{cert}", key: "{other_key}" }}
          - {{ cert: "{junk}", key: "{key}" }}
          - {{ cert: "{cert}", key: "{cert}" }}
    - address: "127.0.0.1:18444"
      tls: {{ certificates: [] }}
routes: [{{ id: r, paths: [/a], plugins: {{ mock: {{}} }} }}]
"#
    ));
    assert_eq!(code, 1, "{out}");
    let at = "gateway.listeners[1].tls.certificates";
    for (location, says) in [
        (format!("{at}[1].cert"), "cannot read"),
        (format!("{at}[2].key"), "does not match the certificate"),
        (format!("{at}[3].cert"), "not a PEM certificate file"),
        (format!("{at}[4].key"), "no private key found"),
        (
            "gateway.listeners[2].tls.certificates".to_owned(),
            "at least one certificate",
        ),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{location}:")))
            .unwrap_or_else(|| panic!("no error at {location} in:\n{out}"));
        assert!(line.contains(says), "{location} should say {says:?}: {line}");
    }
    assert!(!out.contains(&format!("{at}[0]")), "the good pair is fine:\n{out}");
    assert!(!out.contains("BEGIN"), "no key material in errors:\n{out}");

    let (code, out) = validate(&format!(
        r#"
gateway:
  listeners:
    - address: "127.0.0.1:18443"
      tls: {{ certificates: [{{ cert: "{cert}", key: "{key}" }}] }}
routes: [{{ id: r, paths: [/a], plugins: {{ mock: {{}} }} }}]
"#
    ));
    assert_eq!((code, out.trim()), (0, "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_https_and_https_is_served() {
    let s = setup();
    let up = Upstream::start("u").await;
    let p = |f: &str| s.certs.path().join(f).display().to_string();
    let gw = Gateway::builder(
        r#"
gateway:
  listeners:
    - address: "{{listen}}"
    - address: "{{listen1}}"
      tls: { certificates: [{ cert: "{{api_cert}}", key: "{{api_key}}" }] }
  workers: 1
  access_log: { path: "{{access_log}}" }
routes: [{ id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{up}}" }] } }]
global_plugins:
  redirect: { https: true, status: 308 }
"#,
    )
    .var("api_cert", &p("api.pem"))
    .var("api_key", &p("api.key"))
    .var("up", &up.address())
    .start()
    .await;

    let resp = support::Client::new()
        .get(&gw.url("/shop/cart?item=3"))
        .host("api.test")
        .send()
        .await;
    assert_eq!(resp.status, 308);
    assert_eq!(
        resp.header("location").as_deref(),
        Some("https://api.test/shop/cart?item=3")
    );
    assert_eq!(up.requests(), 0);

    // The same route over TLS is not redirected again: it is proxied.
    let conn = tls_connect(gw.listeners()[1], Some("api.test"), s.ca.client(&["h2"])).await;
    let mut h2 = h2_handshake(conn).await;
    let resp = h2_send(&mut h2, get("https://api.test/shop/cart?item=3")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["path"], "/shop/cart");
}
