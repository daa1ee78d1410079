//! `key-auth`: the caller shows a key that one consumer holds, in a header (default `apikey`)
//! or a query parameter (default `apikey`).
//!
//! Keys are looked up by a keyed hash (SipHash with this index's random keys), then compared
//! in full in constant time: the probing depends on a hash an attacker cannot predict, and no
//! byte-by-byte comparison tells how close a guess was. (SHA-256 did the same job at ten times
//! the cost on every request.)

use crate::consumers::Consumer;
use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{BuildEnv, Flow, Plugin};
use crate::reply;
use http::uri::PathAndQuery;
use http::{HeaderName, StatusCode, Uri, request};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAuthConfig {
    /// Default `apikey`.
    #[serde(default = "apikey")]
    header: String,
    /// Default `apikey`.
    #[serde(default = "apikey")]
    query: String,
    /// Remove the key before the request goes upstream. Default true.
    #[serde(default = "yes")]
    hide_credentials: bool,
}

fn apikey() -> String {
    "apikey".into()
}
fn yes() -> bool {
    true
}

/// A consumer's `credentials.key-auth`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    key: String,
}

/// Every consumer's key, by keyed hash.
#[derive(Debug, Default)]
pub struct Index {
    hasher: RandomState,
    /// Keys whose hashes collide share a list.
    by_hash: FxHashMap<u64, Vec<Entry>>,
}

#[derive(Debug)]
struct Entry {
    key: Box<[u8]>,
    consumer: Arc<Consumer>,
}

impl Index {
    pub fn add(&mut self, c: Credential, consumer: &Arc<Consumer>) -> Result<(), Vec<(String, String)>> {
        let fail = |m: String| Err(vec![("key".to_owned(), m)]);
        if c.key.is_empty() {
            return fail("must not be empty".into());
        }
        let entries = self.by_hash.entry(self.hasher.hash_one(c.key.as_bytes())).or_default();
        if let Some(e) = entries.iter().find(|e| *e.key == *c.key.as_bytes()) {
            return fail(format!(
                "already used by consumer {:?}; keys must be unique",
                e.consumer.username
            ));
        }
        entries.push(Entry {
            key: c.key.into_bytes().into(),
            consumer: consumer.clone(),
        });
        Ok(())
    }

    /// The consumer holding exactly `key`.
    pub fn find(&self, key: &[u8]) -> Option<&Arc<Consumer>> {
        let entries = self.by_hash.get(&self.hasher.hash_one(key))?;
        let e = entries.iter().find(|e| bool::from(e.key.ct_eq(key)))?;
        Some(&e.consumer)
    }
}

#[derive(Debug)]
pub struct KeyAuth {
    header: HeaderName,
    query: String,
    hide: bool,
    env: BuildEnv,
}

impl KeyAuth {
    pub fn build(c: KeyAuthConfig, env: &BuildEnv) -> Result<Self, String> {
        let header = HeaderName::from_bytes(c.header.as_bytes())
            .map_err(|_| format!("header: invalid header name {:?}", c.header))?;
        if c.query.is_empty() || c.query.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'&') {
            return Err(format!("query: invalid parameter name {:?}", c.query));
        }
        Ok(Self {
            header,
            query: c.query,
            hide: c.hide_credentials,
            env: env.clone(),
        })
    }
}

impl Plugin for KeyAuth {
    fn phase(&self) -> Phase {
        Phase::Auth
    }

    async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        let index = &self.env.consumers.key_auth;
        let (consumer, in_header) = if let Some(v) = req.headers.get(&self.header) {
            (index.find(v.as_bytes()), true)
        } else if let Some(k) = req.uri.query().and_then(|q| query_value(q, &self.query)) {
            (index.find(k.as_bytes()), false)
        } else {
            return Flow::Respond(reply::error(
                StatusCode::UNAUTHORIZED,
                "missing API key",
                &cx.request_id,
            ));
        };
        let Some(consumer) = consumer else {
            return Flow::Respond(reply::error(
                StatusCode::UNAUTHORIZED,
                "invalid API key",
                &cx.request_id,
            ));
        };
        cx.consumer = Some(consumer.clone());
        if self.hide {
            if in_header {
                req.headers.remove(&self.header);
            } else if let Some(uri) = without_query_param(&req.uri, &self.query) {
                req.uri = uri;
            }
        }
        Flow::Continue
    }
}

/// The first value of the query parameter `name`, percent-decoded.
fn query_value<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| (k == name).then_some(v))
}

/// `uri` without any `name=...` in its query; the other parameters are kept byte for byte.
fn without_query_param(uri: &Uri, name: &str) -> Option<Uri> {
    let query = uri.query()?;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let raw_name = pair.split('=').next().unwrap_or_default();
            form_urlencoded::parse(raw_name.as_bytes())
                .next()
                .is_none_or(|(k, _)| k != name)
        })
        .collect();
    let pq = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::Consumer;

    #[test]
    fn keys_are_found_only_when_equal() {
        let mut index = Index::default();
        let alice = Arc::new(Consumer::new("alice", &[], Arc::from([])));
        index.add(Credential { key: "k-1".into() }, &alice).expect("adds");
        assert_eq!(index.find(b"k-1").map(|c| &*c.username), Some("alice"));
        assert!(index.find(b"k-2").is_none());
        assert!(index.find(b"k-1 ").is_none());
        assert!(index.add(Credential { key: "k-1".into() }, &alice).is_err());
        assert!(index.add(Credential { key: String::new() }, &alice).is_err());
    }

    #[test]
    fn the_key_leaves_the_query_and_nothing_else_does() {
        let uri: Uri = "/a?x=1&apikey=secret&y=a%20b&apikey=again".parse().expect("uri");
        assert_eq!(without_query_param(&uri, "apikey").expect("uri"), "/a?x=1&y=a%20b");
        let uri: Uri = "/a?api%6Bey=secret".parse().expect("uri");
        assert_eq!(without_query_param(&uri, "apikey").expect("uri"), "/a");
        assert_eq!(query_value("a=1&apikey=s%2Bt", "apikey").as_deref(), Some("s+t"));
    }
}
