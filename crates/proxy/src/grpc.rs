//! gRPC upstreams (`scheme: grpc | grpcs`): HTTP/2 to the node (h2c with prior knowledge, or
//! TLS with ALPN `h2`), one connection per node and worker carrying every request's stream.
//!
//! The request and response bodies pass through as they are, trailers included: hyper's
//! `Incoming` yields the trailers frame last, and the other side's connection sends it on.

use crate::h2::LocalExec;
use crate::pool::ConnectError;
use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Request, Uri, Version};
use hyper::client::conn::http2;
use hyper_util::rt::TokioIo;
use portico_plugins::Body;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

/// HTTP/2 over `io`, the connection driven by a task on this worker; its streams' request
/// bodies are sent by tasks on this worker too.
pub async fn handshake<T>(io: T, addr: SocketAddr) -> Result<http2::SendRequest<Body>, ConnectError>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (sender, conn) = http2::Builder::new(LocalExec)
        // Streaming calls move many messages: let the windows follow the connection's
        // bandwidth-delay product rather than stall at 64 KiB.
        .adaptive_window(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| {
            tracing::debug!(target: "portico::grpc", %addr, error = %e, "HTTP/2 handshake failed");
            ConnectError::Refused
        })?;
    tokio::task::spawn_local(async move {
        if let Err(e) = conn.await {
            tracing::debug!(target: "portico::grpc", %addr, error = %e, "upstream HTTP/2 connection ended");
        }
    });
    Ok(sender)
}

/// Makes an HTTP/1-shaped upstream request an HTTP/2 one: the Host header (as `pass_host`
/// chose it) becomes `:authority`, `:scheme` is the upstream's, and `te: trailers` (which
/// gRPC requires and which, as a hop-by-hop header, was dropped) is set.
pub fn prepare(req: &mut Request<Body>, tls: bool, node: &str) {
    let host = req.headers_mut().remove(header::HOST);
    let authority = host
        .as_ref()
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .or_else(|| Authority::try_from(node).ok());
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(if tls { Scheme::HTTPS } else { Scheme::HTTP });
    parts.authority = authority;
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"));
    *req.version_mut() = Version::HTTP_2;
    req.headers_mut()
        .insert(header::TE, HeaderValue::from_static("trailers"));
}

/// `grpc-status` of a response head (trailers-only) or of trailers, if any.
pub fn status(headers: &HeaderMap) -> Option<u16> {
    let v = headers.get(portico_plugins::reply::GRPC_STATUS)?;
    std::str::from_utf8(v.as_bytes()).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_becomes_the_authority() {
        let mut req = Request::new(Body::Empty);
        *req.uri_mut() = Uri::from_static("/pkg.Svc/Call?x=1");
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("api.internal:50051"));
        prepare(&mut req, true, "10.0.0.1:50051");
        assert_eq!(req.uri().to_string(), "https://api.internal:50051/pkg.Svc/Call?x=1");
        assert!(!req.headers().contains_key(header::HOST));
        assert_eq!(req.headers()[header::TE], "trailers");
        assert_eq!(req.version(), Version::HTTP_2);

        let mut req = Request::new(Body::Empty);
        *req.uri_mut() = Uri::from_static("/a");
        prepare(&mut req, false, "127.0.0.1:9000");
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:9000/a");
    }
}
