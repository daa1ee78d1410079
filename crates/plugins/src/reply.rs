//! The one shape of every error the gateway answers itself: JSON `{"message", "request_id"}`,
//! or, to a gRPC request, a gRPC status (see [`for_grpc`]).
//!
//! Plugins and the proxy build errors with [`error`] without knowing what the client speaks;
//! the response is marked as the gateway's own, and the request path decides its final shape
//! once, at the end, by the request's `content-type`.

use crate::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const GRPC: HeaderValue = HeaderValue::from_static("application/grpc");
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Marks a response as an error the gateway produced itself, with its message.
#[derive(Debug, Clone)]
pub struct GatewayError(pub Box<str>);

/// A JSON error response: `{"message": ..., "request_id": ...}` with `Content-Type: application/json`.
pub fn error(status: StatusCode, message: &str, request_id: &HeaderValue) -> Response<Body> {
    let body = serde_json::json!({
        "message": message,
        "request_id": request_id.to_str().unwrap_or_default(),
    });
    let mut resp = Response::new(Body::full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
    resp.extensions_mut().insert(GatewayError(message.into()));
    resp
}

/// Whether a request is gRPC: `content-type: application/grpc` or `application/grpc+proto`, ...
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC status code for a gateway error of HTTP `status` (after gRPC's own HTTP mapping,
/// with the gateway's causes made precise: a rate limit or an oversize body is
/// RESOURCE_EXHAUSTED, an upstream timeout DEADLINE_EXCEEDED).
pub fn grpc_code(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 13,       // INTERNAL: the request broke HTTP itself
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 => 12,       // UNIMPLEMENTED: no route for this method
        413 | 429 => 8,  // RESOURCE_EXHAUSTED
        500 => 13,       // INTERNAL
        502 | 503 => 14, // UNAVAILABLE
        504 => 4,        // DEADLINE_EXCEEDED
        _ => 2,          // UNKNOWN
    }
}

/// A gateway error turned into a trailers-only gRPC answer: HTTP 200, `content-type:
/// application/grpc`, `grpc-status` and a percent-encoded `grpc-message`, no body. The other
/// headers stay (`Retry-After`, `WWW-Authenticate`, the rate-limit counters). A response that
/// is not the gateway's own error is returned untouched.
pub fn for_grpc(mut resp: Response<Body>) -> Response<Body> {
    let Some(GatewayError(message)) = resp.extensions_mut().remove::<GatewayError>() else {
        return resp;
    };
    let code = grpc_code(resp.status());
    *resp.status_mut() = StatusCode::OK;
    *resp.body_mut() = Body::Empty;
    let h = resp.headers_mut();
    h.remove(header::CONTENT_LENGTH);
    h.insert(header::CONTENT_TYPE, GRPC);
    h.insert(GRPC_STATUS, HeaderValue::from(u16::from(code)));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(&message)) {
        h.insert(GRPC_MESSAGE, v);
    }
    resp
}

/// gRPC's `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The 413 for a request body over its limit. The connection closes: the rest of the body is
/// still on the wire and cannot be trusted to end where a next request begins.
pub fn too_large(request_id: &HeaderValue) -> Response<Body> {
    let mut resp = error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large", request_id);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn errors_are_json_with_the_request_id() {
        let id = HeaderValue::from_static("abc");
        let resp = error(StatusCode::NOT_FOUND, "no route \"matched\"", &id);
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["message"], "no route \"matched\"");
        assert_eq!(v["request_id"], "abc");
    }

    #[tokio::test]
    async fn grpc_requests_get_a_trailers_only_status() {
        let id = HeaderValue::from_static("abc");
        let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "too many requests", &id);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        let resp = for_grpc(resp);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/grpc");
        assert_eq!(resp.headers()[GRPC_STATUS], "8");
        assert_eq!(resp.headers()[GRPC_MESSAGE], "too many requests");
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let body = resp.into_body();
        assert!(http_body::Body::is_end_stream(&body), "trailers-only: no body");
    }

    #[test]
    fn other_responses_are_left_alone() {
        let mut resp = Response::new(Body::full("upstream says no"));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        let resp = for_grpc(resp);
        assert_eq!(resp.status(), 404);
        assert!(!resp.headers().contains_key(GRPC_STATUS));
    }

    #[test]
    fn the_mapping_follows_the_cause() {
        let code = |s: u16| grpc_code(StatusCode::from_u16(s).unwrap());
        assert_eq!(
            [code(401), code(403), code(404), code(429), code(413)],
            [16, 7, 12, 8, 8]
        );
        assert_eq!(
            [code(502), code(503), code(504), code(500), code(418)],
            [14, 14, 4, 13, 2]
        );
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("100% sure: caf\u{e9}"), "100%25 sure: caf%C3%A9");
        assert!(is_grpc(&HeaderMap::from_iter([(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto")
        )])));
    }
}
