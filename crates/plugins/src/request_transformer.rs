//! `request-transformer`: changes the request before it goes upstream: path (`strip_prefix`,
//! `uri`, `regex_uri`), Host, headers and query.

use crate::ctx::Ctx;
use crate::headers::HeaderOps;
use crate::phase::Phase;
use crate::plugin::{Flow, Plugin};
use http::{HeaderValue, Uri, request};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestTransformerConfig {
    #[serde(default)]
    strip_prefix: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    /// `[pattern, replacement]`; the replacement may use `$1`, `${name}`.
    #[serde(default)]
    regex_uri: Option<Vec<String>>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    add_headers: BTreeMap<String, String>,
    #[serde(default)]
    set_headers: BTreeMap<String, String>,
    #[serde(default)]
    remove_headers: Vec<String>,
    #[serde(default)]
    add_query: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct RequestTransformer {
    strip_prefix: Option<String>,
    uri: Option<String>,
    regex_uri: Option<(Regex, String)>,
    host: Option<HeaderValue>,
    headers: HeaderOps,
    /// `k=v&k2=v2`, encoded once here.
    add_query: String,
}

impl RequestTransformer {
    pub fn build(c: RequestTransformerConfig) -> Result<Self, String> {
        if c.uri.is_some() && c.regex_uri.is_some() {
            return Err("set uri or regex_uri, not both".into());
        }
        for (name, p) in [("strip_prefix", &c.strip_prefix), ("uri", &c.uri)] {
            if let Some(p) = p
                && (!p.starts_with('/') || p.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'?'))
            {
                return Err(format!("{name}: {p:?} must be a path starting with /"));
            }
        }
        let regex_uri = match c.regex_uri {
            None => None,
            Some(v) if v.len() == 2 => {
                let re = Regex::new(&v[0]).map_err(|e| format!("regex_uri[0]: {e}"))?;
                Some((re, v[1].clone()))
            }
            Some(_) => return Err("regex_uri: write [pattern, replacement]".into()),
        };
        let host = c
            .host
            .map(|h| HeaderValue::from_str(&h).map_err(|_| format!("host: invalid host {h:?}")))
            .transpose()?;
        let headers = HeaderOps::compile(&c.add_headers, &c.set_headers, &c.remove_headers)?;
        let add_query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&c.add_query)
            .finish();
        Ok(Self {
            strip_prefix: c.strip_prefix,
            uri: c.uri,
            regex_uri,
            host,
            headers,
            add_query,
        })
    }

    /// The new path, or `None` when the path stays as it is.
    fn new_path(&self, path: &str) -> Option<String> {
        let mut changed: Option<String> = None;
        if let Some(prefix) = &self.strip_prefix {
            let prefix = prefix.trim_end_matches('/');
            if let Some(rest) = path.strip_prefix(prefix)
                && (rest.is_empty() || rest.starts_with('/'))
            {
                changed = Some(if rest.is_empty() { "/".into() } else { rest.into() });
            }
        }
        if let Some(uri) = &self.uri {
            changed = Some(uri.clone());
        }
        if let Some((re, replacement)) = &self.regex_uri {
            let current = changed.as_deref().unwrap_or(path);
            if re.is_match(current) {
                let out = re.replace(current, replacement.as_str()).into_owned();
                changed = Some(if out.starts_with('/') { out } else { format!("/{out}") });
            }
        }
        changed
    }
}

impl Plugin for RequestTransformer {
    fn phase(&self) -> Phase {
        Phase::Rewrite
    }

    async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        let new_path = self.new_path(req.uri.path());
        if new_path.is_some() || !self.add_query.is_empty() {
            let path = new_path.as_deref().unwrap_or(req.uri.path());
            let query = match (req.uri.query(), self.add_query.as_str()) {
                (None | Some(""), "") => String::new(),
                (None | Some(""), add) => format!("?{add}"),
                (Some(q), "") => format!("?{q}"),
                (Some(q), add) => format!("?{q}&{add}"),
            };
            // The path came from a valid URI or a validated config; a replacement that made it
            // unparsable (a regex writing spaces, say) leaves the URI as it was.
            if let Ok(uri) = format!("{path}{query}").parse::<Uri>() {
                req.uri = uri;
            }
        }
        if let Some(h) = &self.host {
            cx.upstream_host = Some(h.clone());
        }
        self.headers.apply(&mut req.headers);
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str) -> RequestTransformer {
        let c: RequestTransformerConfig = serde_yaml::from_str(yaml).expect("yaml");
        RequestTransformer::build(c).expect("builds")
    }

    #[test]
    fn strip_prefix_on_segment_boundaries() {
        let t = build("strip_prefix: /api");
        assert_eq!(t.new_path("/api/users").as_deref(), Some("/users"));
        assert_eq!(t.new_path("/api").as_deref(), Some("/"));
        assert_eq!(t.new_path("/apix/users"), None);
    }

    #[test]
    fn regex_uri_rewrites_with_groups() {
        let t = build(r#"regex_uri: ["^/v1/(.*)", "/v2/$1"]"#);
        assert_eq!(t.new_path("/v1/users/7").as_deref(), Some("/v2/users/7"));
        assert_eq!(t.new_path("/other"), None);
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad = |y: &str| RequestTransformer::build(serde_yaml::from_str(y).expect("yaml")).is_err();
        assert!(bad("{ uri: /a, regex_uri: [a, b] }"));
        assert!(bad("{ regex_uri: ['(', b] }"));
        assert!(bad("{ regex_uri: [a] }"));
        assert!(bad("{ uri: relative }"));
        assert!(serde_yaml::from_str::<RequestTransformerConfig>("{ nope: 1 }").is_err());
    }
}
