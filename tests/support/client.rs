//! Clients: a pooled hyper client for ordinary requests, and a raw TCP connection for bytes no
//! well-behaved client would send.

use crate::support::upstream::Echo;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as Legacy;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Any single request or read that takes longer than this is a failure, never a hang.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// An HTTP/1.1 client with a keep-alive pool (or a fresh connection per request).
#[derive(Clone)]
pub struct Client {
    inner: Legacy<HttpConnector, Full<Bytes>>,
}

/// A request being built; see [`Client::get`].
pub struct Req {
    client: Client,
    builder: hyper::http::request::Builder,
    body: Bytes,
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

// === impl Client ===

impl Client {
    /// Keep-alive connections, reused between requests.
    pub fn new() -> Client {
        Client {
            inner: Legacy::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Keep-alive connections, and a request on a connection the server closed is an error
    /// (the client does not quietly retry it): for tests where a dropped connection must show.
    pub fn strict() -> Client {
        Client {
            inner: Legacy::builder(TokioExecutor::new())
                .retry_canceled_requests(false)
                .build_http(),
        }
    }

    /// A new connection for every request.
    pub fn fresh_connections() -> Client {
        Client {
            inner: Legacy::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
        }
    }

    pub fn get(&self, url: &str) -> Req {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Req {
        self.request(Method::POST, url)
    }

    pub fn request(&self, method: Method, url: &str) -> Req {
        Req {
            client: self.clone(),
            builder: Request::builder().method(method).uri(url),
            body: Bytes::new(),
        }
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Req ===

impl Req {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// The `Host` header (else the URL's authority, `127.0.0.1:PORT`).
    pub fn host(self, host: &str) -> Self {
        self.header("host", host)
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request and reads the whole response; `Err` on any transport error.
    pub async fn try_send(self) -> Result<Resp, String> {
        let req = self.builder.body(Full::new(self.body)).map_err(|e| e.to_string())?;
        let fut = async {
            let resp = self.client.inner.request(req).await.map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| format!("body: {e:?}"))?.to_bytes();
            Ok(Resp {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(IO_TIMEOUT, fut)
            .await
            .map_err(|_| format!("no response within {IO_TIMEOUT:?}"))?
    }

    /// Sends the request; a transport error fails the test.
    pub async fn send(self) -> Resp {
        self.try_send().await.unwrap_or_else(|e| panic!("request failed: {e}"))
    }
}

// === impl Resp ===

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn headers_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The upstream's echo of the request; fails the test when the body is not one.
    pub fn echo(&self) -> Echo {
        assert_eq!(self.status, 200, "expected an upstream echo; got: {}", self.text());
        let v = self.json();
        assert!(v["server"].is_string(), "not an upstream echo: {}", self.text());
        Echo(v)
    }

    /// The name of the upstream that answered (its `X-Upstream` header).
    pub fn upstream(&self) -> Option<String> {
        self.header("x-upstream")
    }

    /// Asserts this is the gateway's JSON error with `status`; returns its message.
    pub fn assert_error(&self, status: u16) -> String {
        crate::support::assert_gateway_error(
            self.status,
            self.header("content-type").as_deref(),
            self.header("x-request-id").as_deref(),
            &self.body,
            status,
        )
    }
}

/// A raw TCP connection: write any bytes, read responses back by hand.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response as read off a raw connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

// === impl RawConn ===

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes, ignoring errors (the peer may already have closed).
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Reads more bytes into the buffer; 0 at end of stream (or on a reset).
    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(IO_TIMEOUT, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Ok(Err(_)) => 0,
            Err(_) => panic!(
                "no bytes and no close within {IO_TIMEOUT:?}; have {:?}",
                self.buffered()
            ),
        }
    }

    fn buffered(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Reads exactly `n` bytes (after whatever is buffered).
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "closed after {:?}", self.buffered());
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one response; `None` when the connection closed before a whole head arrived.
    pub async fn read_response(&mut self) -> Option<RawResponse> {
        self.read_answer(true).await
    }

    /// Reads the head of the answer to a HEAD request (which has no body, whatever its
    /// `Content-Length` says).
    pub async fn read_head_answer(&mut self) -> Option<RawResponse> {
        self.read_answer(false).await
    }

    async fn read_answer(&mut self, with_body: bool) -> Option<RawResponse> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = parsed.code.unwrap_or_default();
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    self.buf.drain(..len);
                    let mut resp = RawResponse {
                        status,
                        headers,
                        body: Vec::new(),
                    };
                    if with_body {
                        resp.body = self.read_body(&resp).await;
                    }
                    return Some(resp);
                }
                Ok(httparse::Status::Partial) => {
                    if self.fill().await == 0 {
                        return None;
                    }
                }
                Err(e) => panic!("unparsable response ({e}): {:?}", self.buffered()),
            }
        }
    }

    async fn read_body(&mut self, resp: &RawResponse) -> Vec<u8> {
        if resp.status / 100 == 1 || resp.status == 204 || resp.status == 304 {
            return Vec::new();
        }
        if let Some(len) = resp.header("content-length") {
            let len: usize = len.trim().parse().expect("content-length");
            return self.read_exact(len).await;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            let mut body = Vec::new();
            loop {
                let line = self.read_line().await;
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).expect("chunk size");
                if size == 0 {
                    while !self.read_line().await.is_empty() {}
                    return body;
                }
                body.extend(self.read_exact(size).await);
                self.read_exact(2).await;
            }
        }
        while self.fill().await > 0 {}
        std::mem::take(&mut self.buf)
    }

    async fn read_line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return String::from_utf8_lossy(&line[..i]).into_owned();
            }
            assert!(self.fill().await > 0, "closed inside a chunked body");
        }
    }

    /// True when the peer closes the connection (reads reach end of stream) within `timeout`;
    /// bytes arriving before the close are discarded.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

// === impl RawResponse ===

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts this is the gateway's JSON error with `status`; returns its message.
    pub fn assert_error(&self, status: u16) -> String {
        self.check_error(status).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Whether this is the gateway's JSON error with `status`: its message, or what is wrong.
    pub fn check_error(&self, status: u16) -> Result<String, String> {
        crate::support::check_gateway_error(
            self.status,
            self.header("content-type"),
            self.header("x-request-id"),
            &self.body,
            status,
        )
    }
}
