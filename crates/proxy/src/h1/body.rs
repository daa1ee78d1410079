//! A response body read straight from the upstream connection, in the request's own task.
//!
//! When the body ends where its framing says and the connection may be reused, the
//! connection goes back to this worker's idle list; a body dropped halfway closes it.

use super::Conn;
use super::head::BodyFraming;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// Trailers longer than this end the connection with an error.
const MAX_TRAILERS: usize = 16 * 1024;

pub struct UpstreamBody {
    conn: Option<Box<Conn>>,
    state: State,
    keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bytes still to come.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Bytes left in the current chunk.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// After the last chunk: optional trailer fields and a blank line.
    Trailers,
    /// Until the upstream closes.
    Close,
    Done,
}

impl UpstreamBody {
    pub fn new(conn: Box<Conn>, framing: BodyFraming, keep_alive: bool) -> Self {
        let state = match framing {
            BodyFraming::Empty => State::Done,
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::ChunkSize,
            BodyFraming::Close => State::Close,
        };
        Self {
            conn: Some(conn),
            state,
            keep_alive,
        }
    }

    /// The body is over: a clean connection goes back to the pool.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            super::idle::put(conn);
        }
    }
}

fn broken(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = portico_plugins::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // Take what the buffer already holds before reading more.
            match this.state {
                State::Done | State::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                State::Length(n) if !conn.buf.is_empty() => {
                    let take = conn.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let data = conn.buf.split_to(take).freeze();
                    let left = n - take as u64;
                    this.state = State::Length(left);
                    if left == 0 {
                        // hyper stops polling a body whose length is met: pool the connection now.
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::ChunkData(n) if !conn.buf.is_empty() => {
                    let take = conn.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let data = conn.buf.split_to(take).freeze();
                    let left = n - take as u64;
                    this.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::ChunkSize => match httparse::parse_chunk_size(&conn.buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        let _ = conn.buf.split_to(used);
                        this.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                        continue;
                    }
                    Ok(httparse::Status::Partial) if conn.buf.len() < 1024 => {}
                    _ => return Poll::Ready(Some(Err(broken("invalid chunk size from upstream").into()))),
                },
                State::ChunkEnd if conn.buf.len() >= 2 => {
                    if &conn.buf[..2] != b"\r\n" {
                        return Poll::Ready(Some(Err(broken("invalid chunk end from upstream").into())));
                    }
                    let _ = conn.buf.split_to(2);
                    this.state = State::ChunkSize;
                    continue;
                }
                State::Trailers if conn.buf.len() >= 2 => {
                    // Trailer fields are not relayed over HTTP/1.1; skip to the blank line.
                    let end = if conn.buf.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        conn.buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
                    };
                    match end {
                        Some(end) => {
                            let _ = conn.buf.split_to(end);
                            this.finish();
                            return Poll::Ready(None);
                        }
                        None if conn.buf.len() > MAX_TRAILERS => {
                            return Poll::Ready(Some(Err(broken("upstream trailers too large").into())));
                        }
                        None => {}
                    }
                }
                State::Close if !conn.buf.is_empty() => {
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                _ => {}
            }
            let read = ready!(conn.poll_fill(cx));
            match read {
                Ok(0) if this.state == State::Close => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(io::Error::from(io::ErrorKind::UnexpectedEof).into())));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
