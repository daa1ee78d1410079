//! What the gateway knows about one request while it runs: filled by the proxy, read and
//! extended by plugins.

use crate::consumers::Consumer;
use crate::limit_conn::Slot;
use http::HeaderValue;
use std::net::IpAddr;
use std::sync::Arc;

/// Per-request state shared by the proxy and the plugins.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The request id echoed to the client and sent upstream.
    pub request_id: HeaderValue,
    /// The peer address of the downstream connection.
    pub client_ip: IpAddr,
    /// `http` or `https`: how the client reached the gateway.
    pub scheme: &'static str,
    /// The request's Host (with port, if the client sent one).
    pub host: Option<HeaderValue>,
    /// The matched route's id.
    pub route_id: Arc<str>,
    /// A Host header for the upstream request chosen by a plugin (overrides `pass_host`).
    pub upstream_host: Option<HeaderValue>,
    /// The authenticated consumer, once an auth plugin has run: its username and groups for
    /// the upstream's `X-Consumer-*` headers and the log, and its own plugin settings.
    pub consumer: Option<Arc<Consumer>>,
    /// The most request-body bytes the upstream may be sent (request-size-limit); the proxy
    /// wraps a body of unknown length to enforce it.
    pub body_limit: Option<u64>,
    /// The request's `Origin` when cors allowed it, for the response's `Access-Control-*`.
    pub cors_origin: Option<HeaderValue>,
    /// An upstream chosen by a plugin (traffic-split) instead of the route's.
    pub upstream: Option<Arc<portico_upstream::Upstream>>,
    /// rate-limit's verdict, for the `X-RateLimit-*` headers of the response.
    pub rate_limit: Option<RateLimitInfo>,
    /// limit-conn's places taken by this request: the proxy keeps them until the response
    /// body is done, and dropping them frees the places.
    pub conn_slots: Vec<Arc<Slot>>,
}

/// What the `X-RateLimit-*` headers of a response say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the limit is whole again.
    pub reset_secs: u64,
}

impl Ctx {
    /// A context for a request from `client_ip` on route `route_id`, nothing else known yet.
    pub fn new(request_id: HeaderValue, client_ip: IpAddr, route_id: Arc<str>) -> Self {
        Self {
            request_id,
            client_ip,
            scheme: "http",
            host: None,
            route_id,
            upstream_host: None,
            consumer: None,
            body_limit: None,
            cors_origin: None,
            upstream: None,
            rate_limit: None,
            conn_slots: Vec::new(),
        }
    }

    /// The request's host name without the port (`[::1]` stays bracketed).
    pub fn host_name(&self) -> Option<&str> {
        self.host.as_ref().and_then(|h| h.to_str().ok()).map(strip_port)
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`. On bytes: it runs for every
/// request (routing, tracing), and a `char` search costs several times a byte scan.
pub fn strip_port(host: &str) -> &str {
    let b = host.as_bytes();
    let end = if b.first() == Some(&b'[') {
        b.iter().position(|&c| c == b']').map_or(b.len(), |i| i + 1)
    } else {
        b.iter().rposition(|&c| c == b':').unwrap_or(b.len())
    };
    host.get(..end).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("[::1"), "[::1");
        assert_eq!(strip_port("a:b:c"), "a:b");
        assert_eq!(strip_port(""), "");
    }
}
