//! The black-box test harness: the real `portico` binary, real upstream servers on loopback,
//! and clients that talk to both over real sockets.
//!
//! Every wait in here polls a condition against a deadline; nothing sleeps to synchronise.

#![allow(dead_code, clippy::unwrap_used)]

pub mod client;
pub mod gateway;
pub mod ports;
pub mod upstream;

pub use client::{Client, RawConn, RawResponse, Resp};
pub use gateway::{Gateway, validate};
pub use ports::{free_port, refused_addr};
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
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
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
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
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

/// Asserts that a response is the gateway's own JSON error: `status`, `Content-Type:
/// application/json`, a body `{"message": ..., "request_id": ...}` whose id is the response's
/// `X-Request-Id`. Returns the message.
pub fn assert_gateway_error(status: u16, content_type: Option<&str>, request_id: Option<&str>, body: &[u8], want: u16) -> String {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, want, "status; body: {text}");
    let ct = content_type.unwrap_or_default();
    assert!(ct.starts_with("application/json"), "Content-Type {ct:?}; body: {text}");
    let v: serde_json::Value =
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    let message = v["message"].as_str().unwrap_or_else(|| panic!("no string `message` in {text}"));
    let id = v["request_id"].as_str().unwrap_or_else(|| panic!("no string `request_id` in {text}"));
    let header = request_id.unwrap_or_else(|| panic!("no X-Request-Id header on the error; body: {text}"));
    assert_eq!(id, header, "request_id in the body vs the X-Request-Id header");
    message.to_owned()
}
