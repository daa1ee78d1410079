//! The one shape of every error the gateway answers itself: JSON `{"message", "request_id"}`.

use crate::body::Body;
use http::{HeaderValue, Response, StatusCode, header};

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON error response: `{"message": ..., "request_id": ...}` with `Content-Type: application/json`.
pub fn error(status: StatusCode, message: &str, request_id: &HeaderValue) -> Response<Body> {
    let body = serde_json::json!({
        "message": message,
        "request_id": request_id.to_str().unwrap_or_default(),
    });
    let mut resp = Response::new(Body::full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
    resp
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
}
