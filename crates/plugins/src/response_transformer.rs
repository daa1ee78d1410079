//! `response-transformer`: changes the response's status and headers before the client sees it.

use crate::ctx::Ctx;
use crate::headers::HeaderOps;
use crate::phase::Phase;
use crate::plugin::Plugin;
use http::{StatusCode, response};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseTransformerConfig {
    #[serde(default)]
    add_headers: BTreeMap<String, String>,
    #[serde(default)]
    set_headers: BTreeMap<String, String>,
    #[serde(default)]
    remove_headers: Vec<String>,
    #[serde(default)]
    status: Option<u16>,
}

#[derive(Debug)]
pub struct ResponseTransformer {
    headers: HeaderOps,
    status: Option<StatusCode>,
}

impl ResponseTransformer {
    pub fn build(c: ResponseTransformerConfig) -> Result<Self, String> {
        let status = c
            .status
            .map(|s| {
                StatusCode::from_u16(s)
                    .ok()
                    .filter(|st| st.as_u16() >= 200)
                    .ok_or_else(|| format!("status: {s} is not a final HTTP status"))
            })
            .transpose()?;
        Ok(Self {
            headers: HeaderOps::compile(&c.add_headers, &c.set_headers, &c.remove_headers)?,
            status,
        })
    }
}

impl Plugin for ResponseTransformer {
    fn phase(&self) -> Phase {
        Phase::Response
    }

    fn has_response_hook(&self) -> bool {
        true
    }

    fn on_response(&self, _cx: &mut Ctx, resp: &mut response::Parts) {
        // A 101 is a protocol switch already agreed with the upstream: changing it would break the tunnel.
        if resp.status == StatusCode::SWITCHING_PROTOCOLS {
            return;
        }
        if let Some(s) = self.status {
            resp.status = s;
        }
        self.headers.apply(&mut resp.headers);
    }
}
