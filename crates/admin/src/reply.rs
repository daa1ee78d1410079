//! The admin API's responses: JSON bodies, and errors in the gateway's one shape
//! `{"message", "request_id"}`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::Value;

pub type Body = Full<Bytes>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response.
pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
    resp
}

/// A JSON error: `{"message": ..., "request_id": ...}`.
pub fn error(status: StatusCode, message: &str, request_id: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "message": message, "request_id": request_id }),
    )
}

/// A 400 with every config error: `{"message", "errors": [{"location", "message"}], "request_id"}`.
pub fn invalid(errors: &portico_config::ConfigErrors, request_id: &str) -> Response<Body> {
    let list: Vec<Value> = errors
        .0
        .iter()
        .map(|e| serde_json::json!({ "location": e.location, "message": e.message }))
        .collect();
    let message = format!(
        "invalid: {}",
        errors.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    );
    json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "message": message, "errors": list, "request_id": request_id }),
    )
}

/// A 405 naming the methods the path takes.
pub fn method_not_allowed(allow: &'static str, request_id: &str) -> Response<Body> {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed; this path takes {allow}"),
        request_id,
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// A plain-text response (the Prometheus exposition).
pub fn text(content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
