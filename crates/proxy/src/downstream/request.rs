//! Reading one request head for the gateway's own HTTP/1.1 reader: one httparse pass that
//! builds the request and decides whether this reader may take it at all.
//!
//! It takes only the plain, common shape: HTTP/1.1, no body or one `Content-Length` of at most
//! [`MAX_BODY`] bytes that came whole with its head (as clients send small bodies),
//! no `Transfer-Encoding`, no `Upgrade`, no `Expect`, not `CONNECT`. Anything else, and any
//! head httparse refuses or that grows past `MAX_HEAD`, is handed to hyper behind the smuggling guard (see `head_guard`),
//! which already answers every one of those shapes as the spec says (a repeated or invalid
//! `Content-Length` included). Header values are slices of the one head buffer, as in hyper:
//! no copy per header.

use crate::field_bytes;
use crate::head_guard::MAX_HEAD;
use crate::service::Inbound;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};
use smallvec::SmallVec;
use std::mem::MaybeUninit;
use std::ops::Range;

const MAX_HEADERS: usize = 100;
/// The largest body read here; a longer one streams through hyper.
pub const MAX_BODY: u64 = 16 * 1024;

// Returned once per request and matched at once: boxing the request would cost an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// hyper takes the connection from this head on (see the module's doc).
    Handover,
    /// The head is not a request this gateway can read; the message for the 400.
    Invalid(&'static str),
    Request {
        req: Request<Inbound>,
        /// The client did not ask to close the connection after this request.
        keep_alive: bool,
    },
}

/// Parses the head at the start of `buf`; a complete request is split off it.
pub fn parse(buf: &mut BytesMut) -> Parsed {
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        // Too long for a head: the guard answers 431.
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Parsed::Handover,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Handover,
    };
    if req.version != Some(1) {
        return Parsed::Handover;
    }
    let method = match req.method.map(str::as_bytes) {
        Some(b"GET") => Method::GET,
        Some(b"HEAD") => Method::HEAD,
        Some(b"CONNECT") | None => return Parsed::Handover,
        Some(m) => match Method::from_bytes(m) {
            Ok(m) => m,
            Err(_) => return Parsed::Handover,
        },
    };
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| {
        let at = s.as_ptr() as usize - base;
        at..at + s.len()
    };
    let path = span(req.path.unwrap_or("/").as_bytes());
    let mut keep_alive = true;
    let mut length: Option<u64> = None;
    let mut fields: SmallVec<[(HeaderName, Range<usize>); 16]> = SmallVec::new();
    for h in req.headers.iter() {
        let name = match HeaderName::from_bytes(h.name.as_bytes()) {
            Ok(n) => n,
            Err(_) => return Parsed::Handover,
        };
        if name == http::header::CONTENT_LENGTH {
            match (length, field_bytes::content_length(h.value)) {
                (None, Some(n)) if n <= MAX_BODY => length = Some(n),
                _ => return Parsed::Handover,
            }
        } else if name == http::header::TRANSFER_ENCODING
            || name == http::header::UPGRADE
            || name == http::header::EXPECT
        {
            return Parsed::Handover;
        }
        if name == http::header::CONNECTION {
            for token in field_bytes::tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Handover;
                }
            }
        }
        fields.push((name, span(h.value)));
    }

    let body_len = length.unwrap_or(0) as usize;
    if buf.len() < len + body_len {
        // Not all here yet: hyper streams it, so that the request path can answer from the
        // head alone (a 401, a 413 on Content-Length) without waiting for the body.
        return Parsed::Handover;
    }

    let head = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(path)) else {
        return Parsed::Invalid("malformed request: invalid request target");
    };
    let mut map = crate::header_maps::take(fields.len());
    for (name, value) in fields {
        match value_of(&head, value) {
            Some(v) => {
                map.append(name, v);
            }
            None => return Parsed::Invalid("malformed request: invalid header value"),
        }
    }
    let body = match body_len {
        0 => Inbound::Empty,
        n => Inbound::Full(buf.split_to(n).freeze()),
    };
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = map;
    Parsed::Request { req, keep_alive }
}

fn value_of(head: &Bytes, at: Range<usize>) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(head.slice(at)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Parsed {
        parse(&mut BytesMut::from(raw))
    }

    #[test]
    fn a_plain_request_is_read_and_split_off() {
        let mut buf = BytesMut::from("GET /a?b=1 HTTP/1.1\r\nHost: h.test\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next");
        let Parsed::Request { req, keep_alive } = parse(&mut buf) else {
            panic!("not read")
        };
        assert!(keep_alive);
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), "/a");
        assert_eq!(req.uri().query(), Some("b=1"));
        assert_eq!(req.headers()["host"], "h.test");
        let xa: Vec<_> = req.headers().get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        assert_eq!(&buf[..], b"GET /next");
    }

    #[test]
    fn connection_close_is_seen() {
        let Parsed::Request { keep_alive, .. } =
            parsed("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n")
        else {
            panic!("not read")
        };
        assert!(!keep_alive);
    }

    #[test]
    fn bodies_upgrades_and_odd_shapes_go_to_hyper() {
        let big = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        for raw in [
            big.as_str(),
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
            "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert!(matches!(parsed(raw), Parsed::Handover), "{raw:?}");
        }
    }

    #[test]
    fn an_incomplete_head_waits_an_incomplete_body_streams_through_hyper() {
        assert!(matches!(parsed("GET / HTTP/1.1\r\nHost: a\r\n"), Parsed::Partial));
        // One that has grown to the limit is the guard's to answer (431).
        let long = format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(MAX_HEAD));
        assert!(matches!(parsed(&long), Parsed::Handover));
        assert!(matches!(
            parsed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc"),
            Parsed::Handover
        ));
    }

    #[test]
    fn a_small_body_comes_whole_and_the_next_request_stays() {
        let mut buf = BytesMut::from("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n");
        let Parsed::Request { req, .. } = parse(&mut buf) else {
            panic!("not read")
        };
        assert!(matches!(req.body(), Inbound::Full(b) if &b[..] == b"hello"));
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n");
        let Parsed::Request { req, .. } = parsed("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n") else {
            panic!("not read")
        };
        assert!(matches!(req.body(), Inbound::Empty));
    }

    #[test]
    fn a_target_httparse_takes_but_uri_refuses_is_a_400() {
        for target in ["a/b", "/a`b", "http://[::1/"] {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert!(matches!(parsed(&raw), Parsed::Invalid(_)), "{target}");
        }
    }
}
