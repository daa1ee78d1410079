//! Header work at the gateway's two edges: what the upstream receives (forwarded-for, request
//! id, Host, no hop-by-hop headers, no spoofed consumer identity) and what the client receives.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use portico_config::PassHost;
use portico_plugins::Ctx;
use portico_upstream::{Node, Upstream};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// Identity headers only the gateway may set, after authentication.
pub const CONSUMER_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-consumer-username"),
    HeaderName::from_static("x-consumer-groups"),
];

/// Hop-by-hop headers (RFC 9110 7.6.1) plus the ones a `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if let Some(conn) = headers.get(header::CONNECTION).and_then(|v| v.to_str().ok()) {
        let named: Vec<HeaderName> = conn
            .split(',')
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !(keep_upgrade && n == header::UPGRADE))
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for n in [
        header::CONNECTION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(n);
    }
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    }
}

/// Whether the request asks to switch protocols (WebSocket) on HTTP/1.1.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Turns the client's headers into the upstream's, in place (all but Host: see [`upstream_host`]).
pub fn request_headers(headers: &mut HeaderMap, cx: &Ctx, upgrade: bool) {
    strip_hop_by_hop(headers, upgrade);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    headers.remove(header::EXPECT);
    for n in &CONSUMER_HEADERS {
        headers.remove(n);
    }

    let client = cx.client_ip.to_string();
    let xff = match headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .fold(String::new(), |mut acc, v| {
            if !acc.is_empty() {
                acc.push_str(", ");
            }
            acc.push_str(v);
            acc
        }) {
        prior if prior.is_empty() => client,
        prior => format!("{prior}, {client}"),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(cx.scheme));
    match &cx.host {
        Some(h) => headers.insert(X_FORWARDED_HOST, h.clone()),
        None => headers.remove(X_FORWARDED_HOST),
    };
    headers.insert(X_REQUEST_ID, cx.request_id.clone());
}

/// Sets the Host header for one node: a plugin's choice, else the upstream's `pass_host`.
pub fn upstream_host(headers: &mut HeaderMap, cx: &Ctx, upstream: &Upstream, node: &Node) {
    let host = match (&cx.upstream_host, upstream.pass_host) {
        (Some(h), _) => Some(h.clone()),
        (None, PassHost::Pass) => cx.host.clone(),
        (None, PassHost::Node) => Some(node.host_header.clone()),
        (None, PassHost::Rewrite) => upstream.upstream_host.clone(),
    };
    match host {
        Some(h) => headers.insert(header::HOST, h),
        None => headers.insert(header::HOST, node.host_header.clone()),
    };
}

/// Drops hop-by-hop headers from an upstream's response (kept on a 101, which needs them).
pub fn response_headers(headers: &mut HeaderMap, switching: bool) {
    if !switching {
        strip_hop_by_hop(headers, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_go_too() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn upgrades_are_detected_by_token() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(is_upgrade(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert!(!is_upgrade(&h));
    }
}
