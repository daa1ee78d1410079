//! The black-box test harness: the real `portico` binary, real upstream servers on loopback,
//! and clients that talk to both over real sockets.
//!
//! Every wait in here polls a condition against a deadline; nothing sleeps to synchronise.
//!
//! ```text
//! mod support;
//! use support::{Client, Gateway, Upstream};
//!
//! let up = Upstream::builder("users").status(200).start().await;     // echoes what it got
//! let gw = Gateway::with(r#"
//! routes: [{ id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{users}}" }] } }]
//! "#).var("users", &up.address()).start().await;                      // waits until listening
//! let echo = Client::new().get(&gw.url("/x")).host("api.test").send().await.echo();
//! assert_eq!(echo.header("x-forwarded-host").as_deref(), Some("api.test"));
//! let line = gw.access_log_for(&id).await;                            // polls the access log
//! ```
//!
//! `Gateway::with` puts [`PREAMBLE`] (one listener, `workers: 1`, access log to a file) in
//! front of the text; `Gateway::builder` takes a whole file. Tests run in parallel: every
//! gateway has its own ports and temporary directory.

#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub mod certs;
pub mod client;
pub mod etcd;
pub mod gateway;
pub mod h2raw;
pub mod jwks;
pub mod ports;
pub mod redis;
pub mod upstream;
pub mod upstream_tls;

pub use client::{Client, RawConn, RawResponse, Resp};
pub use etcd::EtcdServer;
pub use gateway::{Gateway, PREAMBLE, validate};
pub use jwks::JwksServer;
pub use ports::{Blackhole, free_port, refused_addr};
pub use redis::RedisServer;
pub use upstream::{Echo, Upstream};

use std::future::Future;
use std::time::{Duration, Instant};

/// How long any "eventually" condition may take before the test fails. Generous: CI machines
/// are small and busy; a passing run never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(15);

/// Polls `f` until it returns `Some`, failing the test with `what` after `timeout`.
pub async fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] with an async condition.
pub async fn eventually_async<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// True when `s` looks like a UUID (8-4-4-4-12 hex digits).
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks that a response is the gateway's own JSON error: `want` status, `Content-Type:
/// application/json`, a body `{"message": ..., "request_id": ...}` whose id is the response's
/// `X-Request-Id`. Returns the message, or what is wrong.
pub fn check_gateway_error(
    status: u16,
    content_type: Option<&str>,
    request_id: Option<&str>,
    body: &[u8],
    want: u16,
) -> Result<String, String> {
    let text = String::from_utf8_lossy(body);
    if status != want {
        return Err(format!("status {status}, want {want}; body: {text}"));
    }
    let ct = content_type.unwrap_or_default();
    if !ct.starts_with("application/json") {
        return Err(format!("Content-Type {ct:?}, want application/json; body: {text:?}"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("error body is not JSON ({e}): {text:?}"))?;
    let message = v["message"]
        .as_str()
        .ok_or_else(|| format!("no string `message` in {text}"))?;
    let id = v["request_id"]
        .as_str()
        .ok_or_else(|| format!("no string `request_id` in {text}"))?;
    let header = request_id.ok_or_else(|| format!("no X-Request-Id header on the error; body: {text}"))?;
    if id != header {
        return Err(format!("request_id {id:?} in the body, {header:?} in X-Request-Id"));
    }
    Ok(message.to_owned())
}

/// [`check_gateway_error`], failing the test.
pub fn assert_gateway_error(
    status: u16,
    content_type: Option<&str>,
    request_id: Option<&str>,
    body: &[u8],
    want: u16,
) -> String {
    check_gateway_error(status, content_type, request_id, body, want).unwrap_or_else(|e| panic!("{e}"))
}
