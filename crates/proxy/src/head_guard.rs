//! A read-side guard on every downstream HTTP/1 connection that sees each request head as the
//! raw bytes the client sent.
//!
//! hyper quietly repairs two smuggling shapes before the service sees the request: it drops
//! `Content-Length` when `Transfer-Encoding` is present, and merges repeated identical
//! `Content-Length`s. Portico refuses both with 400 (one parser's repair is another parser's
//! smuggled request), so this guard finds them in the raw head and renames the offending
//! header, in place and at the same length, to a marker that [`crate::framing`] turns into a
//! 400 and a closed connection. To know where each head starts it follows the body framing
//! (`Content-Length` bytes, or chunked encoding) of every request.
//!
//! It parses heads with httparse, the parser hyper itself uses, so the two agree on where a
//! head ends. Anything it cannot follow (an upgrade, a head httparse rejects) switches it off
//! for the rest of the connection, and hyper's own checks remain.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `Transfer-Encoding` next to `Content-Length` is renamed to this (same length).
pub const MARK_TE_WITH_CL: &str = "x-portico-smug-te";
/// A second `Content-Length` is renamed to this (same length).
pub const MARK_DUP_CL: &str = "x-portico-dcl2";
const _: () = assert!(MARK_TE_WITH_CL.len() == "transfer-encoding".len());
const _: () = assert!(MARK_DUP_CL.len() == "content-length".len());

const INITIAL: usize = 8 * 1024;
/// Longest request head accepted (nginx's default is 4 × 8k).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a complete request head.
    Head,
    /// Inside a body of this many bytes still to come.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Not following the stream any more (after an upgrade or a head that is not HTTP/1).
    Off,
    /// A malformed head: hyper gets end-of-stream instead, and the guard answers the client
    /// itself with the spec's JSON 400 when hyper closes the connection.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { n: u64, digits: u8 },
    Ext { n: u64 },
    SizeLf { n: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    EndLf,
}

pub struct HeadGuard<T> {
    io: T,
    state: State,
    /// After the current body, stop following (the request asked for an upgrade).
    off_after_body: bool,
    buf: Vec<u8>,
    /// The JSON error to write before closing, and how much of it is written.
    reply: Option<(Vec<u8>, usize)>,
    /// `buf[start..processed]` is checked and waits for hyper; `buf[processed..end]` is not checked yet.
    start: usize,
    processed: usize,
    end: usize,
}

impl<T> HeadGuard<T> {
    /// Guards `io`, whose first bytes, already read from it, are `read`.
    pub fn new(io: T, read: &[u8]) -> Self {
        let mut buf = vec![0; INITIAL.max(read.len().next_power_of_two())];
        buf[..read.len()].copy_from_slice(read);
        Self {
            io,
            state: State::Head,
            off_after_body: false,
            buf,
            reply: None,
            start: 0,
            processed: 0,
            end: read.len(),
        }
    }

    fn after_body(&self) -> State {
        if self.off_after_body { State::Off } else { State::Head }
    }

    /// Follows `buf[processed..end]`; returns how many of those bytes are now checked.
    fn advance(&mut self) -> usize {
        let (from, to) = (self.processed, self.end);
        let avail = to - from;
        match self.state {
            State::Off => avail,
            State::Reject => 0,
            State::Head => match inspect(&mut self.buf[from..to]) {
                Head::Partial => 0,
                Head::NotHttp1 => {
                    self.state = State::Off;
                    avail
                }
                Head::Invalid(why) => {
                    self.reject(StatusLine::BadRequest, why);
                    0
                }
                Head::Complete { len, body, upgrade } => {
                    self.off_after_body = upgrade;
                    self.state = match body {
                        Body::None | Body::Length(0) => self.after_body(),
                        Body::Length(n) => State::Length(n),
                        Body::Chunked => State::Chunked(Chunk::Size { n: 0, digits: 0 }),
                    };
                    len
                }
            },
            State::Length(n) => {
                let c = avail.min(usize::try_from(n).unwrap_or(usize::MAX));
                let left = n - c as u64;
                self.state = if left == 0 {
                    self.after_body()
                } else {
                    State::Length(left)
                };
                c
            }
            State::Chunked(chunk) => {
                let (consumed, next) = follow_chunks(chunk, &self.buf[from..to]);
                self.state = match next {
                    Some(Some(c)) => State::Chunked(c),
                    Some(None) => self.after_body(),
                    None => State::Off,
                };
                if next.is_none() { avail } else { consumed }
            }
        }
    }
}

impl<T> HeadGuard<T> {
    fn reject(&mut self, status: StatusLine, why: &str) {
        self.state = State::Reject;
        self.reply = Some((error_response(status, why), 0));
    }
}

#[derive(Clone, Copy)]
pub(crate) enum StatusLine {
    BadRequest,
    TooLarge,
}

/// The spec's JSON error as raw bytes, for a request hyper will never see.
pub(crate) fn error_response(status: StatusLine, message: &str) -> Vec<u8> {
    let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id);
    let body = serde_json::json!({ "message": message, "request_id": id }).to_string();
    let line = match status {
        StatusLine::BadRequest => "400 Bad Request",
        StatusLine::TooLarge => "431 Request Header Fields Too Large",
    };
    format!(
        "HTTP/1.1 {line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nx-request-id: {id}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadGuard<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, dst: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.start < this.processed {
                let n = dst.remaining().min(this.processed - this.start);
                dst.put_slice(&this.buf[this.start..this.start + n]);
                this.start += n;
                return Poll::Ready(Ok(()));
            }
            if this.processed < this.end {
                let c = this.advance();
                if c > 0 {
                    this.processed += c;
                    continue;
                }
            }
            if this.state == State::Reject {
                // End of stream for hyper: it finishes any response in progress, then shuts down.
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Off && this.processed == this.end {
                // Nothing buffered and nothing to follow: read straight into hyper's buffer.
                (this.start, this.processed, this.end) = (0, 0, 0);
                return Pin::new(&mut this.io).poll_read(cx, dst);
            }
            if this.start > 0 {
                this.buf.copy_within(this.start..this.end, 0);
                (this.end, this.processed, this.start) = (this.end - this.start, this.processed - this.start, 0);
            }
            // Here a head is incomplete (or nothing is buffered): it may not grow past the limit,
            // however much of it came handed over at the start.
            if this.end >= MAX_HEAD {
                this.reject(StatusLine::TooLarge, "request head too large");
                continue;
            }
            if this.end == this.buf.len() {
                this.buf.resize(this.buf.len() * 2, 0);
            }
            let mut rb = ReadBuf::new(&mut this.buf[this.end..]);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                if this.processed < this.end {
                    // EOF inside a head: let hyper see what there is and decide.
                    this.state = State::Off;
                    this.processed = this.end;
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            this.end += n;
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadGuard<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((reply, written)) = this.reply.as_mut() {
            while *written < reply.len() {
                match ready!(Pin::new(&mut this.io).poll_write(cx, &reply[*written..])) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => *written += n,
                }
            }
            *written = reply.len();
            let _ = ready!(Pin::new(&mut this.io).poll_flush(cx));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

enum Body {
    None,
    Length(u64),
    Chunked,
}

enum Head {
    Partial,
    /// Not an HTTP/1 request at all (e.g. an HTTP/2 preface): left to hyper.
    NotHttp1,
    /// A malformed HTTP/1 head, and why.
    Invalid(&'static str),
    Complete {
        len: usize,
        body: Body,
        upgrade: bool,
    },
}

/// Parses one head; renames smuggling headers in place; says how its body is framed.
fn inspect(bytes: &mut [u8]) -> Head {
    let mut cl: Vec<(usize, u64)> = Vec::new();
    let mut te: Vec<usize> = Vec::new();
    let mut chunked = false;
    let mut upgrade;
    let http10;
    let len = {
        let base = bytes.as_ptr() as usize;
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(bytes, &mut headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Head::Partial,
            Err(httparse::Error::Version) if bytes.starts_with(b"PRI * HTTP/2") => return Head::NotHttp1,
            Err(e) => return Head::Invalid(parse_error(e)),
        };
        upgrade = req.method == Some("CONNECT");
        http10 = req.version == Some(0);
        for h in req.headers.iter() {
            let at = h.name.as_ptr() as usize - base;
            if h.name.eq_ignore_ascii_case("content-length") {
                let Some(n) = std::str::from_utf8(h.value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                else {
                    return Head::Invalid("invalid Content-Length");
                };
                cl.push((at, n));
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te.push(at);
                let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
                chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        len
    };
    if http10 && !te.is_empty() {
        // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
        return Head::Invalid("Transfer-Encoding in an HTTP/1.0 request");
    }
    let body = match (cl.first(), te.is_empty()) {
        (Some(&(_, n)), false) => {
            for &at in &te {
                bytes[at..at + MARK_TE_WITH_CL.len()].copy_from_slice(MARK_TE_WITH_CL.as_bytes());
            }
            Body::Length(n)
        }
        (Some(&(_, n)), true) => Body::Length(n),
        (None, false) if chunked => Body::Chunked,
        (None, false) => return Head::Invalid("unsupported Transfer-Encoding"),
        (None, true) => Body::None,
    };
    for &(at, _) in cl.iter().skip(1) {
        bytes[at..at + MARK_DUP_CL.len()].copy_from_slice(MARK_DUP_CL.as_bytes());
    }
    Head::Complete { len, body, upgrade }
}

fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "malformed request: invalid header name",
        httparse::Error::HeaderValue => "malformed request: invalid header value",
        httparse::Error::NewLine => "malformed request: invalid line ending",
        httparse::Error::Status => "malformed request: invalid status",
        httparse::Error::Token => "malformed request: invalid request line",
        httparse::Error::TooManyHeaders => "malformed request: too many headers",
        httparse::Error::Version => "malformed request: invalid request line or HTTP version",
    }
}

/// Follows chunked framing over `bytes`: how many bytes it used, and then
/// `Some(Some(state))` (more to come), `Some(None)` (body done) or `None` (not valid chunking).
fn follow_chunks(mut s: Chunk, bytes: &[u8]) -> (usize, Option<Option<Chunk>>) {
    let mut i = 0;
    while i < bytes.len() {
        if let Chunk::Data(n) = s {
            let take = (bytes.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
            i += take;
            let left = n - take as u64;
            s = if left == 0 { Chunk::DataCr } else { Chunk::Data(left) };
            continue;
        }
        let b = bytes[i];
        i += 1;
        s = match (s, b) {
            (Chunk::Size { n, digits }, _) if b.is_ascii_hexdigit() => {
                if digits >= 16 {
                    return (i, None);
                }
                let v = u64::from((b as char).to_digit(16).unwrap_or(0));
                Chunk::Size {
                    n: n * 16 + v,
                    digits: digits + 1,
                }
            }
            (Chunk::Size { n, digits }, b'\r') if digits > 0 => Chunk::SizeLf { n },
            (Chunk::Size { n, digits }, b';' | b' ' | b'\t') if digits > 0 => Chunk::Ext { n },
            (Chunk::Ext { n }, b'\r') => Chunk::SizeLf { n },
            (Chunk::Ext { .. }, b'\n') => return (i, None),
            (Chunk::Ext { n }, _) => Chunk::Ext { n },
            (Chunk::SizeLf { n: 0 }, b'\n') => Chunk::TrailerStart,
            (Chunk::SizeLf { n }, b'\n') => Chunk::Data(n),
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => Chunk::Size { n: 0, digits: 0 },
            (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
            (Chunk::TrailerStart | Chunk::TrailerLine, b'\n') => Chunk::TrailerStart,
            (Chunk::TrailerStart | Chunk::TrailerLine, _) => Chunk::TrailerLine,
            (Chunk::EndLf, b'\n') => return (i, Some(None)),
            _ => return (i, None),
        };
    }
    (i, Some(Some(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Hands out its bytes `step` at a time, to exercise heads split across reads.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, dst: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            let n = self.step.min(self.data.len() - self.pos).min(dst.remaining());
            let (pos, data) = (self.pos, &self.data);
            dst.put_slice(&data[pos..pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    async fn through_guard(input: &[u8], step: usize) -> String {
        let mut g = HeadGuard::new(
            Trickle {
                data: input.to_vec(),
                pos: 0,
                step,
            },
            &[],
        );
        let mut out = Vec::new();
        g.read_to_end(&mut out).await.expect("read");
        String::from_utf8(out).expect("utf8")
    }

    #[tokio::test]
    async fn te_next_to_cl_is_marked() {
        let req = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello";
        for step in [1, 7, 4096] {
            let out = through_guard(req, step).await;
            assert!(out.contains("x-portico-smug-te: chunked"), "step {step}: {out}");
            assert_eq!(out.len(), req.len());
        }
    }

    #[tokio::test]
    async fn only_heads_are_inspected_across_pipelined_requests() {
        let body = "5\r\nContent-Length: 1\r\n\r\n";
        let fake_in_body = "Content-Length: 1\r\nContent-Length: 1\r\n";
        let input = format!(
            "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{fake_in_body}\r\n0\r\n\r\n\
             POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}\
             GET /c HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\ncontent-length: 0\r\n\r\n",
            fake_in_body.len(),
            body.len()
        );
        for step in [1, 3, 64, 4096] {
            let out = through_guard(input.as_bytes(), step).await;
            assert_eq!(out.matches("x-portico-dcl2").count(), 1, "step {step}: {out}");
            let marked = out.find("x-portico-dcl2").expect("marked");
            assert!(marked > out.find("GET /c").expect("third request"), "{out}");
        }
    }

    #[tokio::test]
    async fn upgrades_and_garbage_switch_the_guard_off() {
        let input = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\
                      Content-Length: 1\r\nContent-Length: 1\r\n\r\n";
        let out = through_guard(input, 5).await;
        assert!(!out.contains("x-portico"), "{out}");
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert_eq!(through_guard(h2, 2).await.as_bytes(), h2);
    }

    #[tokio::test]
    async fn malformed_heads_end_the_stream_before_them() {
        let input = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n";
        for step in [1, 4096] {
            let out = through_guard(input, step).await;
            assert_eq!(out, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n", "step {step}");
        }
    }

    #[test]
    fn chunk_framing_is_followed() {
        let (used, next) = follow_chunks(
            Chunk::Size { n: 0, digits: 0 },
            b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nNEXT",
        );
        assert_eq!(next, Some(None));
        assert_eq!(used, "3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n".len());
        assert_eq!(follow_chunks(Chunk::Size { n: 0, digits: 0 }, b"zz\r\n").1, None);
        assert_eq!(
            follow_chunks(Chunk::Size { n: 0, digits: 0 }, b"11111111111111111\r\n").1,
            None
        );
    }
}
