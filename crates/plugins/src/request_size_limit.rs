//! `request-size-limit`: refuses request bodies larger than `max_body` (default 1mb) with 413.
//!
//! A declared `Content-Length` is judged here, before anything goes upstream. A body of unknown
//! length (chunked) is counted as it streams: the plugin records the limit in the context and
//! the proxy wraps the body ([`crate::Body::limited`]) so the read that crosses it fails and the
//! client gets 413, with nothing past the limit forwarded.

use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{Flow, Plugin};
use crate::reply;
use http::{header, request};
use portico_config::Size;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSizeLimitConfig {
    /// Default 1mb.
    #[serde(default = "one_mb")]
    max_body: Size,
}

fn one_mb() -> Size {
    Size(1024 * 1024)
}

#[derive(Debug)]
pub struct RequestSizeLimit {
    max: u64,
}

impl RequestSizeLimit {
    pub fn build(c: RequestSizeLimitConfig) -> Result<Self, String> {
        Ok(Self { max: c.max_body.0 })
    }
}

impl Plugin for RequestSizeLimit {
    fn phase(&self) -> Phase {
        Phase::Limit
    }

    async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        let declared = req
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(n) if n > self.max => Flow::Respond(reply::too_large(&cx.request_id)),
            Some(_) => Flow::Continue,
            None => {
                cx.body_limit = Some(cx.body_limit.map_or(self.max, |l| l.min(self.max)));
                Flow::Continue
            }
        }
    }
}
