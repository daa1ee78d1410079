//! `mock`: answers the request itself, without an upstream.

use crate::body::Body;
use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{Flow, Plugin};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header, request};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    /// Default 200.
    #[serde(default = "ok")]
    status: u16,
    /// A string is sent as text; a mapping or list is sent as JSON.
    #[serde(default)]
    body: Option<serde_yaml::Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn ok() -> u16 {
    200
}

#[derive(Debug)]
pub struct Mock {
    status: StatusCode,
    body: Bytes,
    headers: HeaderMap,
}

impl Mock {
    pub fn build(c: MockConfig) -> Result<Self, String> {
        let status = StatusCode::from_u16(c.status)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .ok_or_else(|| format!("status: {} is not a final HTTP status (200-999)", c.status))?;
        let (body, content_type) = match c.body {
            None | Some(serde_yaml::Value::Null) => (Bytes::new(), None),
            Some(serde_yaml::Value::String(s)) => (Bytes::from(s), Some("text/plain; charset=utf-8")),
            Some(v @ (serde_yaml::Value::Mapping(_) | serde_yaml::Value::Sequence(_))) => {
                let json = serde_json::to_vec(&v).map_err(|e| format!("body: cannot be written as JSON: {e}"))?;
                (Bytes::from(json), Some("application/json"))
            }
            Some(other) => {
                let text = serde_yaml::to_string(&other).map_err(|e| format!("body: {e}"))?;
                (
                    Bytes::from(text.trim_end().to_owned()),
                    Some("text/plain; charset=utf-8"),
                )
            }
        };
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        for (name, value) in &c.headers {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("headers: invalid name {name:?}"))?;
            let v = HeaderValue::from_str(value).map_err(|_| format!("headers.{name}: invalid value"))?;
            headers.insert(n, v);
        }
        Ok(Self { status, body, headers })
    }
}

impl Plugin for Mock {
    fn phase(&self) -> Phase {
        Phase::Route
    }

    async fn on_request(&self, _cx: &mut Ctx, _req: &mut request::Parts) -> Flow {
        let mut resp = Response::new(Body::full(self.body.clone()));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        Flow::Respond(resp)
    }
}
