//! Header work at the gateway's two edges: what the upstream receives (forwarded-for, request
//! id, Host, no hop-by-hop headers, no spoofed consumer identity) and what the client receives.

use crate::otel::TRACEPARENT;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use portico_config::PassHost;
use portico_plugins::Ctx;
use portico_upstream::{Node, Upstream};
use std::borrow::Cow;

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
        if let Role::HopByHop(i) = role(name.as_str()) {
            present |= 1 << i;
        }
    }
    present
}

/// Whether `name` is a hop-by-hop header (RFC 9110 7.6.1).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(role(name.as_str()), Role::HopByHop(_))
}

/// Hop-by-hop headers plus the ones a `Connection` header names. One pass over the (few)
/// headers finds which are there, so only those pay for a hashed removal.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let present = hop_by_hop_present(headers);
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        for n in connection_named(headers) {
            headers.remove(n);
        }
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
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

/// What the gateway adds to every upstream request besides the route's work: the client's
/// address (as a header value, made once per connection) and the trace context it continues.
pub struct Forwarded<'a> {
    pub client_ip: &'a HeaderValue,
    /// The request span's W3C `traceparent` when tracing is on.
    pub traceparent: Option<[u8; 55]>,
}

/// The gateway's changes to the client's headers on their way upstream (all of them: Host,
/// forwarded-for, request id, consumer identity, no hop-by-hop headers), described once per
/// request. An HTTP/1.1 upstream gets them as the head is written ([`Outgoing::drops`] and
/// [`Outgoing::write`]): the client's header map is never edited, which costs a hashed
/// insert or removal per header. An HTTP/2 upstream gets them applied to the map
/// ([`Outgoing::apply`]).
pub struct Outgoing<'a> {
    /// Headers the client's `Connection` header names (rarely any).
    named: Vec<HeaderName>,
    /// A WebSocket upgrade keeps `Upgrade` and says `Connection: upgrade`.
    upgrade: bool,
    host: Option<&'a HeaderValue>,
    /// The client's `X-Forwarded-For` (if any) with its address appended.
    forwarded_for: Cow<'a, HeaderValue>,
    proto: &'static str,
    forwarded_host: Option<&'a HeaderValue>,
    request_id: &'a HeaderValue,
    consumer: [Option<&'a HeaderValue>; 2],
    traceparent: Option<[u8; 55]>,
}

/// What a header named `name` is to the gateway on the way upstream.
enum Role {
    /// Hop-by-hop (RFC 9110 7.6.1): `HOP_BY_HOP[i]`.
    HopByHop(usize),
    /// Set by the gateway alone; the client's copy is dropped.
    Replaced,
    /// `traceparent`: replaced when the gateway traces the request.
    Trace,
    Passed,
}

fn role(name: &str) -> Role {
    // A string match compiles to a switch on the length and one compare: far cheaper than
    // comparing with each constant, or hashing.
    match name {
        "connection" => Role::HopByHop(0),
        "keep-alive" => Role::HopByHop(1),
        "proxy-connection" => Role::HopByHop(2),
        "te" => Role::HopByHop(3),
        "trailer" => Role::HopByHop(4),
        "transfer-encoding" => Role::HopByHop(5),
        "proxy-authenticate" => Role::HopByHop(6),
        "proxy-authorization" => Role::HopByHop(7),
        "upgrade" => Role::HopByHop(8),
        // The gateway answers `Expect` itself; identity headers are the gateway's alone to set.
        "host"
        | "expect"
        | "x-consumer-username"
        | "x-consumer-groups"
        | "x-forwarded-for"
        | "x-forwarded-proto"
        | "x-forwarded-host"
        | "x-request-id" => Role::Replaced,
        "traceparent" => Role::Trace,
        _ => Role::Passed,
    }
}

impl<'a> Outgoing<'a> {
    pub fn new(headers: &'a HeaderMap, cx: &'a Ctx, fwd: &Forwarded<'a>, upgrade: bool) -> Self {
        let client_ip = fwd.client_ip;
        let named = if headers.contains_key(header::CONNECTION) {
            connection_named(headers)
        } else {
            Vec::new()
        };
        let forwarded_for = if named.contains(&X_FORWARDED_FOR) {
            Cow::Borrowed(client_ip)
        } else {
            forwarded_for(headers, client_ip)
        };
        let consumer = match &cx.consumer {
            Some(c) => [c.username_header.as_ref(), c.groups_header.as_ref()],
            None => [None, None],
        };
        Self {
            named,
            upgrade,
            host: None,
            forwarded_for,
            proto: cx.scheme,
            forwarded_host: cx.host.as_ref(),
            request_id: &cx.request_id,
            consumer,
            traceparent: fwd.traceparent,
        }
    }

    /// The Host header for one node: a plugin's choice, else the upstream's `pass_host`.
    pub fn set_host(&mut self, cx: &'a Ctx, upstream: &'a Upstream, node: &'a Node) {
        let host = match (&cx.upstream_host, upstream.pass_host) {
            (Some(h), _) => Some(h),
            (None, PassHost::Pass) => cx.host.as_ref(),
            (None, PassHost::Node) => Some(&node.host_header),
            (None, PassHost::Rewrite) => upstream.upstream_host.as_ref(),
        };
        self.host = Some(host.unwrap_or(&node.host_header));
    }

    /// Whether the client's header `name` stays behind.
    pub fn drops(&self, name: &HeaderName) -> bool {
        match role(name.as_str()) {
            Role::HopByHop(8) => !self.upgrade,
            Role::HopByHop(_) | Role::Replaced => true,
            Role::Trace => self.traceparent.is_some(),
            Role::Passed => !self.named.is_empty() && self.named.contains(name),
        }
    }

    /// The headers the gateway sets, in wire form.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut line = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        if let Some(h) = self.host {
            line("host", h.as_bytes());
        }
        if self.upgrade {
            line("connection", b"upgrade");
        }
        for (name, value) in CONSUMER_HEADERS.iter().zip(self.consumer) {
            if let Some(v) = value {
                line(name.as_str(), v.as_bytes());
            }
        }
        line(X_FORWARDED_FOR.as_str(), self.forwarded_for.as_bytes());
        line(X_FORWARDED_PROTO.as_str(), self.proto.as_bytes());
        if let Some(h) = self.forwarded_host {
            line(X_FORWARDED_HOST.as_str(), h.as_bytes());
        }
        line(X_REQUEST_ID.as_str(), self.request_id.as_bytes());
        if let Some(t) = &self.traceparent {
            line(TRACEPARENT.as_str(), t);
        }
    }

    /// The same changes made to a header map (for HTTP/2 upstreams).
    pub fn apply(&self, headers: &mut HeaderMap) {
        let dropped: Vec<HeaderName> = headers.keys().filter(|n| self.drops(n)).cloned().collect();
        for n in dropped {
            headers.remove(n);
        }
        if let Some(h) = self.host {
            headers.insert(header::HOST, h.clone());
        }
        if self.upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        for (name, value) in CONSUMER_HEADERS.iter().zip(self.consumer) {
            if let Some(v) = value {
                headers.insert(name.clone(), v.clone());
            }
        }
        headers.insert(X_FORWARDED_FOR, self.forwarded_for.clone().into_owned());
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(self.proto));
        if let Some(h) = self.forwarded_host {
            headers.insert(X_FORWARDED_HOST, h.clone());
        }
        headers.insert(X_REQUEST_ID, self.request_id.clone());
        if let Some(v) = self.traceparent.and_then(|t| HeaderValue::from_bytes(&t).ok()) {
            headers.insert(TRACEPARENT, v);
        }
    }
}

/// The headers a `Connection` header names, but for the tokens that are not header names
/// to drop (`close`, `keep-alive`, `upgrade`).
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
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
        .collect()
}

/// `<what the client sent>, <client ip>`, all the client's values folded into one.
fn forwarded_for<'a>(headers: &HeaderMap, client_ip: &'a HeaderValue) -> Cow<'a, HeaderValue> {
    let mut prior = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    if prior.peek().is_none() {
        return Cow::Borrowed(client_ip);
    }
    let mut value = String::with_capacity(64);
    for v in prior {
        value.push_str(v);
        value.push_str(", ");
    }
    value.push_str(client_ip.to_str().unwrap_or_default());
    HeaderValue::from_str(&value).map_or(Cow::Borrowed(client_ip), Cow::Owned)
}

/// Drops hop-by-hop headers from an upstream's response (kept on a 101, which needs them).
pub fn response_headers(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
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
        strip_hop_by_hop(&mut h);
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
    fn the_gateway_headers_replace_the_clients_copies() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static("00-client"));
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.9"));
        h.insert(header::CONNECTION, HeaderValue::from_static("x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        let cx = Ctx::new(HeaderValue::from_static("rid"), [10, 0, 0, 1].into(), "r".into());
        let ip = HeaderValue::from_static("10.0.0.1");
        let untraced = Forwarded {
            client_ip: &ip,
            traceparent: None,
        };
        let o = Outgoing::new(&h, &cx, &untraced, false);
        let traceparent = HeaderName::from_static("traceparent");
        assert!(!o.drops(&traceparent), "no span: the client's context passes on");
        assert!(o.drops(&X_FORWARDED_FOR) && o.drops(&HeaderName::from_static("x-secret")));
        let traced = Forwarded {
            client_ip: &ip,
            traceparent: Some([b'7'; 55]),
        };
        let o = Outgoing::new(&h, &cx, &traced, false);
        assert!(o.drops(&traceparent));
        let mut out = Vec::new();
        o.write(&mut out);
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.contains("x-forwarded-for: 10.0.0.9, 10.0.0.1\r\n"), "{text}");
        assert!(text.contains(&format!("traceparent: {}\r\n", "7".repeat(55))), "{text}");
        assert!(text.contains("x-request-id: rid\r\n"), "{text}");
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
