//! RFC 9112 checks hyper does not make on its own, run before anything else looks at a request.
//!
//! hyper parses the request line and headers, but it accepts a few shapes that let a request
//! be read differently by two parsers (request smuggling): `Content-Length` next to
//! `Transfer-Encoding`, several `Content-Length`s, a missing or repeated `Host`. Those are
//! refused here with 400 and the connection is closed, before any upstream sees a byte.

use crate::forward::X_REQUEST_ID;
use crate::head_guard::{MARK_DUP_CL, MARK_TE_WITH_CL};
use http::{HeaderValue, Method, Request, Version, header};

/// What one pass over a request's headers found: the framing verdict, and the headers the
/// request path needs first (one pass is cheaper than a hashed lookup for each).
pub struct Scan<'a> {
    /// `Err(reason)` when the request must be refused with 400.
    pub verdict: Result<(), &'static str>,
    pub host: Option<&'a HeaderValue>,
    pub request_id: Option<&'a HeaderValue>,
    /// `content-type: application/grpc...`: the gateway's own errors become gRPC statuses.
    pub grpc: bool,
}

pub fn scan<B>(req: &Request<B>) -> Scan<'_> {
    let (mut te, mut cl, mut hosts) = (None, None, 0u32);
    let (mut te_count, mut cl_count) = (0u32, 0u32);
    let (mut host, mut request_id, mut content_type) = (None, None, None);
    let mut marked = None;
    // Comparing names (cheap for standard ones) instead of a hashed lookup per rule. Header
    // bytes themselves were checked by httparse (via the head guard).
    for (name, value) in req.headers() {
        if name == header::TRANSFER_ENCODING {
            te = Some(value);
            te_count += 1;
        } else if name == header::CONTENT_LENGTH {
            cl = Some(value);
            cl_count += 1;
        } else if name == header::HOST {
            hosts += 1;
            host = host.or(Some(value));
        } else if name == header::CONTENT_TYPE {
            content_type = content_type.or(Some(value));
        } else if name == X_REQUEST_ID {
            request_id = request_id.or(Some(value));
        } else if name.as_str() == MARK_TE_WITH_CL {
            marked = Some("both Content-Length and Transfer-Encoding");
        } else if name.as_str() == MARK_DUP_CL {
            marked = marked.or(Some("more than one Content-Length"));
        }
    }
    let verdict = match marked {
        Some(why) => Err(why),
        None => check(req, te.map(|v| (v, te_count)), cl.map(|v| (v, cl_count)), hosts, host),
    };
    Scan {
        verdict,
        host,
        request_id,
        grpc: content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc")),
    }
}

/// The framing rules, given the first `Transfer-Encoding`, `Content-Length` and `Host` and
/// how many of each there are.
fn check<B>(
    req: &Request<B>,
    te: Option<(&HeaderValue, u32)>,
    cl: Option<(&HeaderValue, u32)>,
    hosts: u32,
    host: Option<&HeaderValue>,
) -> Result<(), &'static str> {
    if req.method() == Method::CONNECT {
        return Err("CONNECT is not supported");
    }
    if req.version() > Version::HTTP_11 {
        return Ok(());
    }
    match (te, cl) {
        (Some(_), Some(_)) => return Err("both Content-Length and Transfer-Encoding"),
        (Some(_), None) if req.version() == Version::HTTP_10 => return Err("Transfer-Encoding in an HTTP/1.0 request"),
        (Some((v, te_count)), None) if te_count > 1 || !v.as_bytes().eq_ignore_ascii_case(b"chunked") => {
            return Err("unsupported Transfer-Encoding");
        }
        (None, Some((v, cl_count))) => {
            let b = v.as_bytes();
            if cl_count > 1 || b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
                return Err("invalid Content-Length");
            }
        }
        _ => {}
    }
    match hosts {
        0 if req.version() == Version::HTTP_11 && req.uri().authority().is_none() => Err("missing Host header"),
        0 => Ok(()),
        1 => match host {
            Some(h) if valid_host(h.as_bytes()) => Ok(()),
            _ => Err("invalid Host header"),
        },
        _ => Err("more than one Host header"),
    }
}

/// The bytes of a reg-name (RFC 3986: unreserved, sub-delims, and `%` of pct-encoded), as a
/// table: one load per byte.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric();
        i += 1;
    }
    let extra = b"-._~!$&'()*+,;=%";
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
};

/// `host[:port]` where host is a reg-name, an IPv4 address or a bracketed IPv6 literal.
fn valid_host(h: &[u8]) -> bool {
    let (name, port) = if h.first() == Some(&b'[') {
        let Some(end) = h.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal_ok = h[1..end]
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !literal_ok || end == 1 {
            return false;
        }
        match &h[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&h[..0], port),
            _ => return false,
        }
    } else {
        match h.iter().rposition(|&b| b == b':') {
            Some(i) => (&h[..i], &h[i + 1..]),
            None => (h, &h[..0]),
        }
    };
    let port_ok = port.len() <= 5 && port.iter().all(u8::is_ascii_digit);
    let name_ok = name.iter().all(|&b| REG_NAME[usize::from(b)]);
    port_ok && name_ok && !(name.is_empty() && h.first() != Some(&b'['))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri("/x");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn good_requests_pass() {
        let ok = |h: &[(&str, &str)]| scan(&req(h)).verdict;
        assert_eq!(ok(&[("host", "a.example.com:8080")]), Ok(()));
        assert_eq!(ok(&[("host", "[::1]:80"), ("content-length", "12")]), Ok(()));
        assert_eq!(ok(&[("host", "10.0.0.1"), ("transfer-encoding", "Chunked")]), Ok(()));
    }

    #[test]
    fn the_scan_finds_what_the_request_path_needs() {
        let r = req(&[
            ("host", "a"),
            ("content-type", "application/grpc+proto"),
            ("x-request-id", "abc"),
            ("x-request-id", "def"),
        ]);
        let s = scan(&r);
        assert_eq!(s.host.map(|h| h.as_bytes()), Some(&b"a"[..]));
        assert_eq!(s.request_id.map(|h| h.as_bytes()), Some(&b"abc"[..]));
        assert!(s.grpc);
        assert!(!scan(&req(&[("host", "a"), ("content-type", "text/plain")])).grpc);
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let bad = |h: &[(&str, &str)]| scan(&req(h)).verdict.is_err();
        assert!(bad(&[
            ("host", "a"),
            ("content-length", "5"),
            ("transfer-encoding", "chunked")
        ]));
        assert!(bad(&[("host", "a"), ("content-length", "5"), ("content-length", "5")]));
        assert!(bad(&[("host", "a"), ("content-length", "+5")]));
        assert!(bad(&[("host", "a"), ("transfer-encoding", "gzip, chunked")]));
        assert!(bad(&[
            ("host", "a"),
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked")
        ]));
        assert!(bad(&[]));
        assert!(bad(&[("host", "a"), ("host", "b")]));
        assert!(bad(&[("host", "a b")]));
        assert!(bad(&[("host", "a/b")]));
        assert!(bad(&[("host", "")]));
        assert!(bad(&[("host", "a:port")]));
        assert!(bad(&[("host", "[::1")]));
    }
}
