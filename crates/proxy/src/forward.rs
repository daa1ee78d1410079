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

/// Hop-by-hop headers (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::UPGRADE,
];

/// Bit `i` set: `HOP_BY_HOP[i]` is present.
fn hop_by_hop_present(headers: &HeaderMap) -> u16 {
    let mut present = 0u16;
    for name in headers.keys() {
        // A string match compiles to a switch on the length and one compare: far cheaper
        // than comparing every name with each of the nine constants.
        let i = match name.as_str() {
            "connection" => 0,
            "keep-alive" => 1,
            "proxy-connection" => 2,
            "te" => 3,
            "trailer" => 4,
            "transfer-encoding" => 5,
            "proxy-authenticate" => 6,
            "proxy-authorization" => 7,
            "upgrade" => 8,
            _ => continue,
        };
        present |= 1 << i;
    }
    present
}

/// Hop-by-hop headers plus the ones a `Connection` header names. One pass over the (few)
/// headers finds which are there, so only those pay for a hashed removal.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let present = hop_by_hop_present(headers);
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                !["close", "keep-alive", "upgrade"]
                    .iter()
                    .any(|k| t.eq_ignore_ascii_case(k))
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 && !(keep_upgrade && n == header::UPGRADE) {
            headers.remove(n);
        }
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
///
/// `client_ip` is the peer address as a header value, made once per connection.
pub fn request_headers(headers: &mut HeaderMap, cx: &Ctx, client_ip: &HeaderValue, upgrade: bool) {
    strip_hop_by_hop(headers, upgrade);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // The gateway answers `Expect` itself; identity headers are the gateway's alone to set.
    let mut spoofable = [false; 3];
    for name in headers.keys() {
        if name == header::EXPECT {
            spoofable[0] = true;
        } else if let Some(i) = CONSUMER_HEADERS.iter().position(|c| c == name) {
            spoofable[i + 1] = true;
        }
    }
    if spoofable[0] {
        headers.remove(header::EXPECT);
    }
    for (i, n) in CONSUMER_HEADERS.iter().enumerate() {
        if spoofable[i + 1] {
            headers.remove(n);
        }
    }
    if let Some(c) = &cx.consumer {
        let [username, groups] = &CONSUMER_HEADERS;
        if let Some(v) = &c.username_header {
            headers.insert(username.clone(), v.clone());
        }
        if let Some(v) = &c.groups_header {
            headers.insert(groups.clone(), v.clone());
        }
    }

    append_forwarded_for(headers, client_ip);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(cx.scheme));
    match &cx.host {
        Some(h) => headers.insert(X_FORWARDED_HOST, h.clone()),
        None => headers.remove(X_FORWARDED_HOST),
    };
    headers.insert(X_REQUEST_ID, cx.request_id.clone());
}

/// `X-Forwarded-For: <what the client sent>, <client ip>`, all values folded into one.
fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    let mut prior = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    if prior.peek().is_none() {
        headers.insert(X_FORWARDED_FOR, client_ip.clone());
        return;
    }
    let mut value = String::with_capacity(64);
    for v in prior {
        value.push_str(v);
        value.push_str(", ");
    }
    value.push_str(client_ip.to_str().unwrap_or_default());
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
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
    fn every_hop_by_hop_header_is_found() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            let mut h = HeaderMap::new();
            h.insert(name.clone(), HeaderValue::from_static("x"));
            assert_eq!(hop_by_hop_present(&h), 1 << i, "{name}");
        }
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
