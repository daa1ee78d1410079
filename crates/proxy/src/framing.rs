//! RFC 9112 checks hyper does not make on its own, run before anything else looks at a request.
//!
//! hyper parses the request line and headers, but it accepts a few shapes that let a request
//! be read differently by two parsers (request smuggling): `Content-Length` next to
//! `Transfer-Encoding`, several `Content-Length`s, a missing or repeated `Host`. Those are
//! refused here with 400 and the connection is closed, before any upstream sees a byte.

use crate::head_guard::{MARK_DUP_CL, MARK_TE_WITH_CL};
use http::{HeaderMap, Method, Request, Version, header};

/// `Err(reason)` when the request must be refused with 400.
pub fn check<B>(req: &Request<B>) -> Result<(), &'static str> {
    let headers = req.headers();
    if headers.contains_key(MARK_TE_WITH_CL) {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if headers.contains_key(MARK_DUP_CL) {
        return Err("more than one Content-Length");
    }
    if req.version() <= Version::HTTP_11 {
        body_framing(headers, req.version())?;
        host(headers, req.version(), req.uri().authority().is_some())?;
    }
    if req.method() == Method::CONNECT {
        return Err("CONNECT is not supported");
    }
    for value in headers.values() {
        if value.as_bytes().iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err("invalid header value");
        }
    }
    Ok(())
}

fn body_framing(headers: &HeaderMap, version: Version) -> Result<(), &'static str> {
    let mut te = headers.get_all(header::TRANSFER_ENCODING).iter();
    let mut cl = headers.get_all(header::CONTENT_LENGTH).iter();
    match (te.next(), cl.next()) {
        (Some(_), Some(_)) => return Err("both Content-Length and Transfer-Encoding"),
        (Some(_), None) if version == Version::HTTP_10 => return Err("Transfer-Encoding in an HTTP/1.0 request"),
        (Some(v), None) => {
            if te.next().is_some() || !v.as_bytes().eq_ignore_ascii_case(b"chunked") {
                return Err("unsupported Transfer-Encoding");
            }
        }
        (None, Some(v)) => {
            let b = v.as_bytes();
            if cl.next().is_some() || b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
                return Err("invalid Content-Length");
            }
        }
        (None, None) => {}
    }
    Ok(())
}

fn host(headers: &HeaderMap, version: Version, absolute_form: bool) -> Result<(), &'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err("more than one Host header"),
        (None, _) if version == Version::HTTP_11 && !absolute_form => Err("missing Host header"),
        (None, _) => Ok(()),
        (Some(h), None) if valid_host(h.as_bytes()) => Ok(()),
        (Some(_), None) => Err("invalid Host header"),
    }
}

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
    let name_ok = name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
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
        assert_eq!(check(&req(&[("host", "a.example.com:8080")])), Ok(()));
        assert_eq!(check(&req(&[("host", "[::1]:80"), ("content-length", "12")])), Ok(()));
        assert_eq!(
            check(&req(&[("host", "10.0.0.1"), ("transfer-encoding", "Chunked")])),
            Ok(())
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let bad = |h: &[(&str, &str)]| check(&req(h)).is_err();
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
