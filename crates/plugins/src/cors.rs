//! `cors`: answers preflight `OPTIONS` requests itself (204) and adds `Access-Control-*`
//! headers to the responses of allowed origins.
//!
//! Every header value is made once, when the config is compiled; a request only compares its
//! `Origin` and copies values.

use crate::body::Body;
use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{Flow, Plugin};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode, request, response};
use portico_config::Duration;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Origins {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// `*` or a list of origins (`https://app.example.com`). Default `*`.
    #[serde(default)]
    allow_origins: Option<Origins>,
    /// Default: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS.
    #[serde(default)]
    allow_methods: Option<Vec<String>>,
    /// Default: whatever the preflight's `Access-Control-Request-Headers` asks for.
    #[serde(default)]
    allow_headers: Option<Vec<String>>,
    #[serde(default)]
    expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer. Default: not sent.
    #[serde(default)]
    max_age: Option<Duration>,
    /// Default false. Needs a list of origins: `*` with credentials is refused by browsers.
    #[serde(default)]
    allow_credentials: bool,
}

#[derive(Debug)]
pub struct Cors {
    /// `None`: any origin.
    origins: Option<Box<[Box<str>]>>,
    methods: HeaderValue,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    credentials: bool,
}

const ANY: HeaderValue = HeaderValue::from_static("*");
const TRUE: HeaderValue = HeaderValue::from_static("true");
const ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

fn joined(field: &str, list: &[String]) -> Result<HeaderValue, String> {
    HeaderValue::from_str(&list.join(", ")).map_err(|_| format!("{field}: invalid header value"))
}

impl Cors {
    pub fn build(c: CorsConfig) -> Result<Self, String> {
        let origins = match c.allow_origins {
            None => None,
            Some(Origins::One(o)) if o == "*" => None,
            Some(Origins::One(o)) => Some(vec![o]),
            Some(Origins::Many(list)) if list.iter().any(|o| o == "*") => None,
            Some(Origins::Many(list)) => Some(list),
        };
        if let Some(list) = &origins {
            if list.is_empty() {
                return Err("allow_origins: list at least one origin, or write \"*\"".into());
            }
            if let Some(o) = list.iter().find(|o| !o.contains("://") || o.ends_with('/')) {
                return Err(format!(
                    "allow_origins: {o:?} is not an origin; write scheme://host[:port]"
                ));
            }
        }
        if c.allow_credentials && origins.is_none() {
            return Err("allow_credentials: true needs a list of allow_origins, not \"*\"".into());
        }
        let methods = match c.allow_methods {
            Some(m) if m.is_empty() => return Err("allow_methods: list at least one method".into()),
            Some(m) => joined("allow_methods", &m)?,
            None => HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        };
        Ok(Self {
            origins: origins.map(|l| l.into_iter().map(String::into_boxed_str).collect()),
            methods,
            headers: c.allow_headers.map(|h| joined("allow_headers", &h)).transpose()?,
            expose: (!c.expose_headers.is_empty())
                .then(|| joined("expose_headers", &c.expose_headers))
                .transpose()?,
            max_age: c.max_age.map(|d| HeaderValue::from(d.get().as_secs())),
            credentials: c.allow_credentials,
        })
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin`, if it is allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match &self.origins {
            None => Some(ANY),
            Some(list) => {
                let o = origin.to_str().ok()?;
                list.iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(o))
                    .then(|| origin.clone())
            }
        }
    }

    /// The headers every response to an allowed origin carries.
    fn decorate(&self, headers: &mut HeaderMap, allow: &HeaderValue) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow.clone());
        if self.credentials {
            headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        if let Some(e) = &self.expose {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
    }

    /// `Vary: Origin` when the answer depends on the origin, once.
    fn vary(&self, headers: &mut HeaderMap) {
        if self.origins.is_none() {
            return;
        }
        let already = headers
            .get_all(header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("origin"));
        if !already {
            headers.append(header::VARY, ORIGIN);
        }
    }
}

impl Plugin for Cors {
    fn phase(&self) -> Phase {
        Phase::Access
    }

    async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        let Some(origin) = req.headers.get(header::ORIGIN) else {
            return Flow::Continue;
        };
        let allow = self.allow_origin(origin);
        cx.cors_origin = allow.clone();
        let preflight =
            req.method == Method::OPTIONS && req.headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if !preflight {
            return Flow::Continue;
        }
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        self.vary(h);
        // A disallowed origin gets no Access-Control-Allow-*: the browser then refuses the call.
        if let Some(allow) = allow {
            self.decorate(h, &allow);
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
            let asked = req.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS);
            if let Some(v) = self.headers.as_ref().or(asked) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
            }
            if let Some(m) = &self.max_age {
                h.insert(header::ACCESS_CONTROL_MAX_AGE, m.clone());
            }
        }
        Flow::Respond(resp)
    }

    fn has_response_hook(&self) -> bool {
        true
    }

    fn on_response(&self, cx: &mut Ctx, resp: &mut response::Parts) {
        if let Some(allow) = &cx.cors_origin {
            self.decorate(&mut resp.headers, allow);
        }
        self.vary(&mut resp.headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str) -> Result<Cors, String> {
        Cors::build(serde_yaml::from_str(yaml).expect("yaml"))
    }

    #[test]
    fn origins_match_exactly() {
        let c = build("{ allow_origins: [https://app.example.com] }").expect("builds");
        let o = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            c.allow_origin(&o("https://app.example.com")),
            Some(o("https://app.example.com"))
        );
        assert_eq!(c.allow_origin(&o("https://evil.example.com")), None);
        assert_eq!(c.allow_origin(&o("https://app.example.com.evil")), None);
        let any = build("{ allow_origins: '*' }").expect("builds");
        assert_eq!(any.allow_origin(&o("https://x")), Some(ANY));
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(build("{ allow_credentials: true }").is_err());
        assert!(build("{ allow_origins: [app.example.com] }").is_err());
        assert!(build("{ allow_origins: [] }").is_err());
        assert!(build("{ allow_methods: [] }").is_err());
        assert!(build("{ max_age: 10s, expose_headers: [x-a], allow_origins: [http://a] }").is_ok());
    }

    #[test]
    fn vary_is_added_once() {
        let c = build("{ allow_origins: [https://a.example] }").expect("builds");
        let mut h = HeaderMap::new();
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding, origin"));
        c.vary(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
    }
}
