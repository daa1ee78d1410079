//! Parsing an upstream's response head (httparse, as hyper does) and deciding how its body is
//! framed (RFC 9112 section 6.3).
//!
//! Header values are slices of the one buffer the head was read into: no copy per header.

use crate::{field_bytes, forward};
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode, Version, response};
use smallvec::SmallVec;
use std::mem::MaybeUninit;

/// More headers than this in one response is an upstream error.
const MAX_HEADERS: usize = 128;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (HEAD, 1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

#[derive(Debug)]
pub struct Head {
    pub parts: response::Parts,
    pub framing: BodyFraming,
    /// Whether the connection may carry another request once this body is read.
    pub keep_alive: bool,
}

/// Parses one response head from the front of `buf`, removing it. `Ok(None)`: not complete yet.
pub fn parse(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, &'static str> {
    // Uninitialised: zeroing 128 headers would cost more than parsing the usual five.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err("too many response headers"),
        Err(_) => return Err("invalid response head"),
    };
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| "invalid response status")?;
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };

    // Where each name and value sits in the head, so values can share its bytes.
    let base = buf.as_ptr() as usize;
    let mut spans: SmallVec<[(u32, u32, u32, u32); 16]> = SmallVec::new();
    let count = resp.headers.len();
    let mut length: Option<u64> = None;
    let (mut chunked, mut te, mut close, mut keep_alive) = (false, false, false, false);
    // `Connection` names a header besides its usual tokens: that header is hop-by-hop too.
    let mut names_others = false;
    for h in resp.headers.iter() {
        let name_at = h.name.as_ptr() as usize - base;
        let value_at = h.value.as_ptr() as usize - base;
        spans.push((
            name_at as u32,
            h.name.len() as u32,
            value_at as u32,
            h.value.len() as u32,
        ));
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = field_bytes::content_length(h.value).ok_or("invalid Content-Length in response")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length in response");
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            // Only a final `chunked` frames the body; anything else reads until close.
            chunked = field_bytes::tokens(h.value)
                .next_back()
                .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in field_bytes::tokens(h.value) {
                let (c, k) = (t.eq_ignore_ascii_case(b"close"), t.eq_ignore_ascii_case(b"keep-alive"));
                close |= c;
                keep_alive |= k;
                names_others |= !(c || k || t.is_empty() || t.eq_ignore_ascii_case(b"upgrade"));
            }
        }
    }

    let head = buf.split_to(len).freeze();
    // Hop-by-hop headers stay here (but on a 101, whose tunnel needs them); so does what
    // `Connection` names, in the rare head where it names something.
    let relay_all = code == 101;
    // Room for what the gateway adds (X-Request-Id, rate-limit headers) without a regrowth.
    let mut map = crate::header_maps::take(count + 4);
    for &(na, nl, va, vl) in &spans {
        let name = HeaderName::from_bytes(&head[na as usize..(na + nl) as usize])
            .map_err(|_| "invalid response header name")?;
        if te && name == http::header::CONTENT_LENGTH {
            // Transfer-Encoding overrides it (RFC 9112 6.3); a relayed copy would lie.
            continue;
        }
        if !relay_all && forward::is_hop_by_hop(&name) && !(names_others && name == http::header::CONNECTION) {
            continue;
        }
        let value = value(&head, va as usize, vl as usize)?;
        map.append(name, value);
    }

    if names_others && !relay_all {
        forward::response_headers(&mut map);
    }

    let framing = if head_request || code / 100 == 1 || code == 204 || code == 304 {
        BodyFraming::Empty
    } else if te {
        if chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::Close
        }
    } else {
        match length {
            Some(0) => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::Close,
        }
    };
    let persistent = match version {
        Version::HTTP_10 => keep_alive && !close,
        _ => !close,
    };
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = map;
    Ok(Some(Head {
        parts,
        framing,
        keep_alive: persistent && framing != BodyFraming::Close && !(te && length.is_some()),
    }))
}

fn value(head: &Bytes, at: usize, len: usize) -> Result<HeaderValue, &'static str> {
    HeaderValue::from_maybe_shared(head.slice(at..at + len)).map_err(|_| "invalid response header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str, head_request: bool) -> (Head, BytesMut) {
        let mut buf = BytesMut::from(raw);
        let head = parse(&mut buf, head_request).expect("valid").expect("complete");
        (head, buf)
    }

    #[test]
    fn a_content_length_response_keeps_its_body_bytes_in_the_buffer() {
        let (h, rest) = parsed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello", false);
        assert_eq!(h.parts.status, 200);
        assert_eq!(h.framing, BodyFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.parts.headers["x-a"], "b");
        assert_eq!(&rest[..], b"hello");
    }

    #[test]
    fn partial_heads_wait_for_more() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Le");
        assert!(parse(&mut buf, false).expect("valid").is_none());
        assert_eq!(buf.len(), 27, "nothing consumed");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                BodyFraming::Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                BodyFraming::Close,
                false,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, BodyFraming::Close, false),
            ("HTTP/1.1 204 No Content\r\n\r\n", false, BodyFraming::Empty, true),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false,
                BodyFraming::Empty,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
                true,
                BodyFraming::Empty,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                false,
                BodyFraming::Empty,
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                false,
                BodyFraming::Length(1),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n",
                false,
                BodyFraming::Length(1),
                true,
            ),
        ];
        for (raw, head_request, framing, keep_alive) in cases {
            let (h, _) = parsed(raw, head_request);
            assert_eq!((h.framing, h.keep_alive), (framing, keep_alive), "{raw:?}");
        }
    }

    #[test]
    fn transfer_encoding_drops_content_length_and_the_connection() {
        let (h, _) = parsed(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(!h.parts.headers.contains_key("content-length"));
        assert!(!h.keep_alive);
    }

    #[test]
    fn bad_heads_are_errors() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(raw);
            assert!(parse(&mut buf, false).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn repeated_headers_are_all_kept() {
        let (h, _) = parsed(
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        let cookies: Vec<_> = h.parts.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }
}
