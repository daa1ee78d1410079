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
    /// The request's host without port, lower-case as the client sent it, if any.
    pub host: Option<HeaderValue>,
    /// The matched route's id.
    pub route_id: Arc<str>,
    /// A Host header for the upstream request chosen by a plugin (overrides `pass_host`).
    pub upstream_host: Option<HeaderValue>,
    /// The authenticated consumer's username, once an auth plugin has run.
    pub consumer: Option<Arc<str>>,
}
