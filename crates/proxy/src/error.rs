//! The one place where a failure of the gateway or an upstream becomes an HTTP response.

use http::{HeaderValue, Response, StatusCode, header};
use portico_plugins::{Body, reply};

/// Why the gateway answered a request itself instead of relaying an upstream's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The request breaks HTTP/1.1 framing or header rules (RFC 9112); the connection closes.
    Malformed(&'static str),
    /// No route matches.
    NoRoute,
    /// Every node was tried or none is usable.
    NoHealthyNode,
    /// The upstream refused or reset the connection, or answered with garbage.
    UpstreamFailed,
    /// Connecting to, or waiting for, the upstream took longer than its timeout.
    UpstreamTimeout,
    /// The route has neither an upstream nor a plugin that answered.
    NoUpstream,
}

const CLOSE: HeaderValue = HeaderValue::from_static("close");

impl ProxyError {
    pub fn status(self) -> StatusCode {
        match self {
            ProxyError::Malformed(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoHealthyNode => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamFailed => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::NoUpstream => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ProxyError::Malformed(why) => why,
            ProxyError::NoRoute => "no route matched",
            ProxyError::NoHealthyNode => "no healthy upstream node",
            ProxyError::UpstreamFailed => "upstream refused or reset the connection",
            ProxyError::UpstreamTimeout => "upstream timed out",
            ProxyError::NoUpstream => "route has no upstream",
        }
    }

    /// The spec's JSON error; a malformed request also closes its connection, since what
    /// follows it on the wire cannot be trusted to be a request boundary.
    pub fn into_response(self, request_id: &HeaderValue) -> Response<Body> {
        let mut resp = reply::error(self.status(), self.message(), request_id);
        if matches!(self, ProxyError::Malformed(_)) {
            resp.headers_mut().insert(header::CONNECTION, CLOSE);
        }
        resp
    }
}
