//! A raw HTTP/2 client for conformance tests: it writes any frame, well-formed or not, and
//! reads frames back, the way h2spec drives a server. Header blocks are HPACK literals
//! without Huffman coding (any decoder must accept them); of the server's header blocks only
//! an indexed `:status` is decoded.

use rustls::ClientConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub mod ty {
    pub const DATA: u8 = 0;
    pub const HEADERS: u8 = 1;
    pub const PRIORITY: u8 = 2;
    pub const RST_STREAM: u8 = 3;
    pub const SETTINGS: u8 = 4;
    pub const PUSH_PROMISE: u8 = 5;
    pub const PING: u8 = 6;
    pub const GOAWAY: u8 = 7;
    pub const WINDOW_UPDATE: u8 = 8;
    pub const CONTINUATION: u8 = 9;
}

pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

pub mod code {
    pub const NO_ERROR: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const FLOW_CONTROL_ERROR: u32 = 3;
    pub const STREAM_CLOSED: u32 = 5;
    pub const FRAME_SIZE_ERROR: u32 = 6;
    pub const REFUSED_STREAM: u32 = 7;
    pub const CANCEL: u32 = 8;
    pub const COMPRESSION_ERROR: u32 = 9;
    pub const ENHANCE_YOUR_CALM: u32 = 11;
}

pub fn code_name(c: u32) -> &'static str {
    [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ]
    .get(c as usize)
    .copied()
    .unwrap_or("UNKNOWN")
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub ty: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> u32 {
        let at = if self.ty == ty::GOAWAY { 4 } else { 0 };
        self.payload
            .get(at..at + 4)
            .map_or(u32::MAX, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// What the server did next.
#[derive(Debug)]
pub enum Event {
    Frame(Frame),
    /// End of stream or a reset.
    Closed,
    /// Nothing within the wait.
    Silent,
}

/// One frame's bytes: a 24-bit length (of `payload`), type, flags, 31-bit stream id.
pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(ty);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(ty::SETTINGS, 0, 0, &p)
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(ty::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(ty::RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of "literal without indexing, new name" fields, as given (no checks).
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The pseudo-headers of a GET for `path`, on `authority`.
pub fn get(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "GET".into()),
        (":scheme", "https".into()),
        (":authority", "conformance.test".into()),
        (":path", path.into()),
    ]
}

pub fn block_of(fields: &[(&str, String)]) -> Vec<u8> {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    block(&pairs)
}

/// `:status` of a response header block when the server sent it indexed (as hyper does for
/// 200, 204, 206, 304, 400, 404, 500); `None` otherwise.
pub fn indexed_status(block: &[u8]) -> Option<u16> {
    let statuses = [
        (0x88, 200),
        (0x89, 204),
        (0x8a, 206),
        (0x8b, 304),
        (0x8c, 400),
        (0x8d, 404),
        (0x8e, 500),
    ];
    statuses.iter().find(|(b, _)| block.first() == Some(b)).map(|(_, s)| *s)
}

pub struct RawH2 {
    io: TlsStream<TcpStream>,
    buf: Vec<u8>,
    /// The server's SETTINGS, as (id, value) pairs.
    pub server_settings: Vec<(u16, u32)>,
    pub wait: Duration,
}

impl RawH2 {
    /// TLS with ALPN h2, nothing sent yet.
    pub async fn tls(addr: SocketAddr, sni: &str, config: Arc<ClientConfig>) -> RawH2 {
        let io = crate::support::certs::tls_connect(addr, Some(sni), config).await;
        assert_eq!(crate::support::certs::alpn(&io).as_deref(), Some("h2"));
        RawH2 {
            io,
            buf: Vec::new(),
            server_settings: Vec::new(),
            wait: crate::support::DEADLINE,
        }
    }

    /// [`RawH2::tls`], then the preface, an empty SETTINGS, the server's SETTINGS read and
    /// acknowledged (and ours acknowledged in return, frames before it skipped).
    pub async fn ready(addr: SocketAddr, sni: &str, config: Arc<ClientConfig>, ours: &[(u16, u32)]) -> RawH2 {
        let mut c = Self::tls(addr, sni, config).await;
        let mut first = PREFACE.to_vec();
        first.extend(settings(ours));
        c.write(&first).await;
        let mut acked = false;
        let mut got = false;
        while !(acked && got) {
            match c.next().await {
                Event::Frame(f) if f.ty == ty::SETTINGS && f.flags & flag::ACK == 0 => {
                    c.server_settings = f
                        .payload
                        .chunks_exact(6)
                        .map(|s| {
                            (
                                u16::from_be_bytes([s[0], s[1]]),
                                u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                            )
                        })
                        .collect();
                    c.write(&frame(ty::SETTINGS, flag::ACK, 0, &[])).await;
                    got = true;
                }
                Event::Frame(f) if f.ty == ty::SETTINGS => acked = true,
                Event::Frame(_) => {}
                other => panic!("no SETTINGS exchange: {other:?}"),
            }
        }
        c
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        // The server may already have closed: what it did is read by `next`.
        let _ = self.io.write_all(bytes).await;
        let _ = self.io.flush().await;
    }

    /// Writes, reporting a failure (the server closed).
    pub async fn try_write(&mut self, bytes: &[u8]) -> bool {
        self.io.write_all(bytes).await.is_ok() && self.io.flush().await.is_ok()
    }

    /// The next frame, or the close, or silence after `self.wait`.
    pub async fn next(&mut self) -> Event {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        ty: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]) & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Event::Frame(f);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout(self.wait, self.io.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Event::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return Event::Silent,
            }
        }
    }

    /// A connection error: a GOAWAY with `want`, or the connection closed.
    pub async fn expect_conn_error(&mut self, want: u32) -> Result<(), String> {
        loop {
            match self.next().await {
                Event::Frame(f) if f.ty == ty::GOAWAY => return check_code("GOAWAY", f.error_code(), want),
                Event::Frame(_) => {}
                Event::Closed => return Ok(()),
                Event::Silent => return Err(format!("no GOAWAY {} and no close", code_name(want))),
            }
        }
    }

    /// A stream error on `stream`: RST_STREAM with `want` (a connection error with it, or a
    /// close, also does, as in h2spec).
    pub async fn expect_stream_error(&mut self, stream: u32, want: u32) -> Result<(), String> {
        loop {
            match self.next().await {
                Event::Frame(f) if f.ty == ty::RST_STREAM && f.stream == stream => {
                    return check_code("RST_STREAM", f.error_code(), want);
                }
                Event::Frame(f) if f.ty == ty::GOAWAY => return check_code("GOAWAY", f.error_code(), want),
                Event::Frame(f) if f.ty == ty::HEADERS && f.stream == stream => {
                    return Err(format!(
                        "a response (status {:?}) instead of RST_STREAM {}",
                        indexed_status(&f.payload),
                        code_name(want)
                    ));
                }
                Event::Frame(_) => {}
                Event::Closed => return Ok(()),
                Event::Silent => return Err(format!("no RST_STREAM {} and no close", code_name(want))),
            }
        }
    }

    /// A response on `stream` (its HEADERS); returns `:status` when indexed.
    pub async fn expect_response(&mut self, stream: u32) -> Result<Option<u16>, String> {
        loop {
            match self.next().await {
                Event::Frame(f) if f.ty == ty::HEADERS && f.stream == stream => return Ok(indexed_status(&f.payload)),
                Event::Frame(f) if f.ty == ty::RST_STREAM && f.stream == stream => {
                    return Err(format!(
                        "RST_STREAM {} instead of a response",
                        code_name(f.error_code())
                    ));
                }
                Event::Frame(f) if f.ty == ty::GOAWAY => {
                    return Err(format!("GOAWAY {} instead of a response", code_name(f.error_code())));
                }
                Event::Frame(_) => {}
                Event::Closed => return Err("connection closed instead of a response".into()),
                Event::Silent => return Err("no response".into()),
            }
        }
    }

    /// The next frame of type `t` (others skipped).
    pub async fn expect_frame(&mut self, t: u8) -> Result<Frame, String> {
        loop {
            match self.next().await {
                Event::Frame(f) if f.ty == t => return Ok(f),
                Event::Frame(f) if f.ty == ty::GOAWAY => {
                    return Err(format!(
                        "GOAWAY {} instead of frame type {t}",
                        code_name(f.error_code())
                    ));
                }
                Event::Frame(_) => {}
                Event::Closed => return Err(format!("connection closed instead of frame type {t}")),
                Event::Silent => return Err(format!("no frame of type {t}")),
            }
        }
    }
}

fn check_code(what: &str, got: u32, want: u32) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what} {}, want {}", code_name(got), code_name(want)))
    }
}
