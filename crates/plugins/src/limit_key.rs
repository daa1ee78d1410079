//! What the limit plugins count by: `ip` (default), `consumer`, `route`, or `header:NAME`.
//!
//! A key that cannot be had (no consumer authenticated, the header missing or not text) falls
//! back to the client IP, so a caller cannot escape a limit by leaving a header out. Every key
//! carries its kind as a prefix: a header whose value looks like an IP never shares a counter
//! with that IP.

use crate::ctx::Ctx;
use http::{HeaderName, request};
use serde::Deserialize;
use std::fmt::Write as _;
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LimitKey {
    #[default]
    Ip,
    Consumer,
    Route,
    Header(HeaderName),
}

impl<'de> Deserialize<'de> for LimitKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for LimitKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ip" => Ok(LimitKey::Ip),
            "consumer" => Ok(LimitKey::Consumer),
            "route" => Ok(LimitKey::Route),
            _ => match s.strip_prefix("header:") {
                Some(name) => HeaderName::from_bytes(name.trim().as_bytes())
                    .map(LimitKey::Header)
                    .map_err(|_| format!("invalid header name {name:?} in key {s:?}")),
                None => Err(format!("unknown key {s:?}; use ip, consumer, route or header:NAME")),
            },
        }
    }
}

impl LimitKey {
    /// This request's key.
    pub fn of(&self, cx: &Ctx, req: &request::Parts) -> String {
        match self {
            LimitKey::Ip => ip(cx),
            LimitKey::Consumer => match &cx.consumer {
                Some(c) => format!("c:{}", c.username),
                None => ip(cx),
            },
            LimitKey::Route => format!("r:{}", cx.route_id),
            LimitKey::Header(name) => match req.headers.get(name).and_then(|v| v.to_str().ok()) {
                Some(v) => format!("h:{v}"),
                None => ip(cx),
            },
        }
    }
}

/// `ip:<address>`, written without the formatting machinery (ten times the cost, per request).
fn ip(cx: &Ctx) -> String {
    let mut key = String::with_capacity(3 + 39);
    key.push_str("ip:");
    match cx.client_ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    key.push('.');
                }
                key.push_str(itoa::Buffer::new().format(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(key, "{v6}");
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Request};

    #[test]
    fn keys_parse_and_fall_back_to_the_ip() {
        let cx = Ctx::new(HeaderValue::from_static("id"), [10, 0, 0, 1].into(), "r1".into());
        let (req, ()) = Request::builder()
            .header("x-tenant", "acme")
            .body(())
            .expect("request")
            .into_parts();
        let key = |s: &str| s.parse::<LimitKey>().expect("key").of(&cx, &req);
        assert_eq!(key("ip"), "ip:10.0.0.1");
        assert_eq!(key("route"), "r:r1");
        assert_eq!(key("consumer"), "ip:10.0.0.1");
        assert_eq!(key("header:X-Tenant"), "h:acme");
        assert_eq!(key("header:x-missing"), "ip:10.0.0.1");
        assert!("host".parse::<LimitKey>().is_err());
        assert!("header:bad name".parse::<LimitKey>().is_err());
        let v6 = Ctx::new(
            HeaderValue::from_static("id"),
            "2001:db8::1".parse().expect("ip"),
            "r1".into(),
        );
        assert_eq!(LimitKey::Ip.of(&v6, &req), "ip:2001:db8::1");
    }
}
