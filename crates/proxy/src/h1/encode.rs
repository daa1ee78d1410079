//! The request head as it goes on the wire, and chunked framing for bodies of unknown length.

use crate::forward::Outgoing;
use http::{HeaderMap, Method, Uri, header};

/// How the request body is framed towards the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body and no framing header (a GET, say).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`: the body's length is not known up front.
    Chunked,
}

/// The framing for a body whose exact length is `exact` (if known), as hyper's client picks it:
/// an empty body on a method that usually carries one still says `Content-Length: 0`.
pub fn framing(method: &Method, headers: &HeaderMap, exact: Option<u64>) -> Framing {
    match exact {
        Some(0) if !(headers.contains_key(header::CONTENT_LENGTH) || expects_body(method)) => Framing::None,
        Some(n) => Framing::Length(n),
        None => Framing::Chunked,
    }
}

fn expects_body(m: &Method) -> bool {
    matches!(*m, Method::POST | Method::PUT | Method::PATCH)
}

/// Appends `METHOD origin-form HTTP/1.1`, the headers (the gateway's changes applied if
/// `outgoing` has them, framing headers replaced by `framing`'s) and the blank line to `out`.
pub fn head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    outgoing: Option<&Outgoing>,
    framing: Framing,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(if target.is_empty() { b"/" } else { target.as_bytes() });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(o) = outgoing {
        o.write(out);
    }
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || outgoing.is_some_and(|o| o.drops(name))
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk's size line; the data and its closing CRLF follow.
pub fn chunk_start(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn head_replaces_framing_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("api.test"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        let mut out = Vec::new();
        let uri: Uri = "/a?b=1".parse().expect("uri");
        head(&mut out, &Method::POST, &uri, &h, None, Framing::Length(3));
        assert_eq!(
            out,
            b"POST /a?b=1 HTTP/1.1\r\nhost: api.test\r\ncontent-length: 3\r\n\r\n"
        );
    }

    #[test]
    fn empty_bodies_say_zero_only_where_a_body_is_expected() {
        let h = HeaderMap::new();
        assert_eq!(framing(&Method::GET, &h, Some(0)), Framing::None);
        assert_eq!(framing(&Method::POST, &h, Some(0)), Framing::Length(0));
        assert_eq!(framing(&Method::GET, &h, None), Framing::Chunked);
    }

    #[test]
    fn chunk_sizes_are_hex() {
        for (n, want) in [(0usize, "0\r\n"), (10, "a\r\n"), (4096, "1000\r\n"), (255, "ff\r\n")] {
            let mut out = Vec::new();
            chunk_start(&mut out, n);
            assert_eq!(out, want.as_bytes());
        }
    }
}
