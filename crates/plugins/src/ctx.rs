//! What the gateway knows about one request while it runs: filled by the proxy, read and
//! extended by plugins.

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
    /// The authenticated consumer's username, once an auth plugin has run.
    pub consumer: Option<Arc<str>>,
}

impl Ctx {
    /// The request's host name without the port (`[::1]` stays bracketed).
    pub fn host_name(&self) -> Option<&str> {
        self.host.as_ref().and_then(|h| h.to_str().ok()).map(strip_port)
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
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
    }
}
