//! Writing one response for the gateway's own HTTP/1.1 reader: the head straight from the
//! response's header map, the body framed by its `Content-Length`, its known length, or
//! chunked, and as few writes as the body allows (head and a ready body go out together).

use crate::field_bytes;
use crate::h1::encode::{LAST_CHUNK, chunk_start};
use crate::logged_body::LoggedBody;
use bytes::Buf;
use http::{Response, StatusCode, header};
use http_body::Body as _;
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Body bytes gathered before a write; a larger chunk is written on its own.
const GATHER: usize = 16 * 1024;

enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Writes `resp` to `io` (its head only, for a HEAD request); `out` is the connection's
/// reused write buffer. Returns whether the connection may take another request: not after
/// `Connection: close` (asked by `keep_alive` false or by the response) or a body that ended
/// early. An error means the connection is done.
pub async fn write<I: AsyncWrite + Unpin>(
    io: &mut I,
    out: &mut Vec<u8>,
    resp: Response<LoggedBody>,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    out.clear();
    let mut keep = keep_alive;
    let status = parts.status;
    status_line(out, status);
    let (mut length, mut date) = (None, false);
    for (name, value) in &parts.headers {
        if name == header::TRANSFER_ENCODING {
            continue;
        }
        if name == header::CONNECTION {
            if field_bytes::has_close(value.as_bytes()) {
                keep = false;
            }
            continue;
        }
        if name == header::CONTENT_LENGTH {
            length = field_bytes::content_length(value.as_bytes());
            if length.is_none() {
                // Not a length this side can frame by: leave it out and say the real one.
                continue;
            }
        } else if name == header::DATE {
            date = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !date {
        http_date(out);
    }
    crate::header_maps::give(parts.headers);
    let bodyless = status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let framing = if bodyless {
        Framing::None
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if let Some(n) = body.size_hint().exact() {
        // A HEAD answer says the length a GET would get, as hyper and nginx do.
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
        Framing::Length(n)
    } else if head_only {
        Framing::None
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if head_only || bodyless {
        drop(body);
        io.write_all(out).await?;
        io.flush().await?;
        return Ok(keep);
    }

    let mut sent = 0u64;
    let chunked = matches!(framing, Framing::Chunked);
    loop {
        // A frame that is ready joins the buffer; otherwise what is buffered goes out first.
        let frame = match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
            Poll::Ready(f) => f,
            Poll::Pending => {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    io.flush().await?;
                    out.clear();
                }
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let mut data = match frame {
            None => break,
            Some(Err(e)) => return Err(io::Error::other(e)),
            // Trailers have no place in an HTTP/1.1 response to this client.
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if let Framing::Length(n) = framing
            && sent > n
        {
            return Err(io::Error::other("response body longer than its Content-Length"));
        }
        if chunked {
            chunk_start(out, data.len());
        }
        if data.len() >= GATHER {
            io.write_all(out).await?;
            out.clear();
            while data.has_remaining() {
                let n = io.write(data.chunk()).await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                data.advance(n);
            }
        } else {
            out.extend_from_slice(&data);
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= GATHER {
            io.write_all(out).await?;
            out.clear();
        }
    }
    if chunked {
        out.extend_from_slice(LAST_CHUNK);
    }
    if let Framing::Length(n) = framing
        && sent < n
    {
        // The client would wait for bytes that never come: end the connection instead.
        if !out.is_empty() {
            io.write_all(out).await?;
        }
        return Err(io::Error::other("response body shorter than its Content-Length"));
    }
    io.write_all(out).await?;
    io.flush().await?;
    out.clear();
    Ok(keep)
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// `date: <IMF-fixdate>\r\n`, formatted once per second of the coarse clock.
    static DATE: RefCell<(u32, Vec<u8>)> = const { RefCell::new((u32::MAX, Vec::new())) };
}

fn http_date(out: &mut Vec<u8>) {
    let now = crate::conn_watch::seconds();
    DATE.with_borrow_mut(|(at, line)| {
        if *at != now || line.is_empty() {
            line.clear();
            line.extend_from_slice(b"date: ");
            line.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
            line.extend_from_slice(b"\r\n");
            *at = now;
        }
        out.extend_from_slice(line);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logged_body::LoggedBody;
    use bytes::Bytes;
    use portico_plugins::Body;

    async fn written(resp: Response<Body>, head_only: bool, keep_alive: bool) -> (String, bool) {
        let mut io = Vec::new();
        let mut out = Vec::new();
        let keep = write(&mut io, &mut out, resp.map(LoggedBody::bare), head_only, keep_alive)
            .await
            .expect("written");
        (String::from_utf8(io).expect("utf8"), keep)
    }

    /// The wire text with its `date` line taken out.
    fn without_date(s: &str) -> String {
        let start = s.find("\r\ndate: ").expect("a date line") + 2;
        let end = start + s[start..].find("\r\n").expect("line end") + 2;
        format!("{}{}", &s[..start], &s[end..])
    }

    #[tokio::test]
    async fn a_full_body_goes_out_with_its_length_in_one_piece() {
        let resp = Response::builder()
            .header("content-type", "text/plain")
            .body(Body::Full(Some(Bytes::from_static(b"hello"))))
            .expect("response");
        let (wire, keep) = written(resp, false, true).await;
        assert!(keep);
        assert!(wire.contains("\r\ndate: "), "{wire}");
        assert_eq!(
            without_date(&wire),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
        );
    }

    #[tokio::test]
    async fn a_content_length_that_is_not_digits_is_replaced_by_the_real_one() {
        let resp = Response::builder()
            .header("content-length", "+5")
            .body(Body::Full(Some(Bytes::from_static(b"hello"))))
            .expect("response");
        let (wire, _) = written(resp, false, true).await;
        assert_eq!(without_date(&wire), "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
    }

    #[tokio::test]
    async fn close_is_said_and_kept() {
        let resp = Response::builder()
            .status(400)
            .header("connection", "close")
            .body(Body::Empty)
            .expect("response");
        let (wire, keep) = written(resp, false, true).await;
        assert!(!keep);
        assert_eq!(
            without_date(&wire),
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn head_and_no_content_answers_have_no_body() {
        let resp = Response::builder()
            .header("content-length", "5")
            .body(Body::Full(Some(Bytes::from_static(b"hello"))))
            .expect("response");
        let (wire, _) = written(resp, true, true).await;
        assert_eq!(without_date(&wire), "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        let resp = Response::new(Body::Full(Some(Bytes::from_static(b"hello"))));
        let (wire, _) = written(resp, true, true).await;
        assert_eq!(without_date(&wire), "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        let resp = Response::builder().status(204).body(Body::Empty).expect("response");
        let (wire, _) = written(resp, false, true).await;
        assert_eq!(without_date(&wire), "HTTP/1.1 204 No Content\r\n\r\n");
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_is_chunked() {
        let frames = Chunks([Bytes::from_static(b"abc"), Bytes::from_static(b"de")].into());
        let resp = Response::new(Body::Boxed(Box::pin(frames)));
        let (wire, _) = written(resp, false, true).await;
        assert_eq!(
            without_date(&wire),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        );
    }

    /// A body of unknown length handing out its chunks one poll at a time.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = portico_plugins::BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
        }
    }
}
