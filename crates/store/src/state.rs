//! What a node holds of the store: the last good version of every document, by key.
//!
//! A document that does not decode is logged with its key and skipped; the version before
//! it (if any) stays. So nothing written to etcd can take a resource away by being broken,
//! and nothing can crash a node.

use crate::document::{Resource, decode};
use crate::layout::{Key, Kind};
use portico_config::{Config, Gateway, Loaded};
use serde_json::Value;
use std::collections::BTreeMap;

/// One good document: its JSON (what the cache keeps) and its decoded form.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    pub resource: Resource,
}

#[derive(Debug, Clone, Default)]
pub struct State {
    pub docs: BTreeMap<Key, Entry>,
}

impl State {
    /// Takes a new version of the document at `full_key` (its etcd key, for the logs).
    /// Returns whether anything changed.
    pub fn put(&mut self, key: Key, bytes: &[u8], full_key: &str) -> bool {
        match decode(&key, bytes) {
            Ok((value, resource)) => {
                if self.docs.get(&key).is_some_and(|e| e.value == value) {
                    return false;
                }
                self.docs.insert(key, Entry { value, resource });
                true
            }
            Err(message) => {
                let kept = if self.docs.contains_key(&key) {
                    "its previous version keeps serving"
                } else {
                    "it is not served"
                };
                tracing::error!(target: "portico::store", key = %full_key, "bad document skipped ({kept}): {message}");
                false
            }
        }
    }

    pub fn remove(&mut self, key: &Key) -> bool {
        self.docs.remove(key).is_some()
    }

    /// A whole state read afresh, keeping for each document that no longer decodes the
    /// version `self` had.
    pub fn reloaded(&self, kvs: impl IntoIterator<Item = (Key, Vec<u8>, String)>) -> State {
        let mut next = State::default();
        for (key, bytes, full_key) in kvs {
            if let Some(old) = self.docs.get(&key) {
                next.docs.insert(key.clone(), old.clone());
            }
            next.put(key, &bytes, &full_key);
        }
        next
    }

    /// The config this state and the file's `gateway` section make, ready to validate and
    /// compile, with a hash of both (equal states give equal hashes).
    pub fn to_loaded(&self, gateway: &Gateway) -> Loaded {
        let mut config = Config {
            gateway: gateway.clone(),
            ..Config::default()
        };
        let mut canon = serde_json::to_string(gateway).unwrap_or_default();
        for (key, entry) in &self.docs {
            canon.push('\n');
            canon.push_str(&key.path(""));
            canon.push(' ');
            canon.push_str(&entry.value.to_string());
            match &entry.resource {
                Resource::Upstream(u) => config.upstreams.push(u.clone()),
                Resource::Consumer(c) => config.consumers.push(c.clone()),
                Resource::Route(r) => config.routes.push(r.clone()),
                Resource::GlobalPlugins(p) => config.global_plugins = p.clone(),
            }
        }
        Loaded {
            config,
            hash: portico_config::hash_text(&canon),
        }
    }

    /// Turns a config location (`routes[3].upstream`) into the etcd key it came from
    /// (`/portico/routes/users-api: upstream`).
    pub fn locator(&self, prefix: &str) -> impl Fn(&str) -> String + Send + 'static {
        let mut by_section: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for key in self.docs.keys() {
            by_section.entry(key.kind.section()).or_default().push(key.path(prefix));
        }
        let prefix = prefix.to_owned();
        move |location: &str| {
            if let Some(rest) = location.strip_prefix("global_plugins") {
                return format!("{prefix}/global_plugins{}", sub(rest));
            }
            for kind in [Kind::Route, Kind::Upstream, Kind::Consumer] {
                let Some(rest) = location.strip_prefix(kind.section()).and_then(|r| r.strip_prefix('[')) else {
                    continue;
                };
                let Some((index, rest)) = rest.split_once(']') else {
                    continue;
                };
                let path = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| by_section.get(kind.section())?.get(i));
                if let Some(path) = path {
                    return format!("{path}{}", sub(rest));
                }
            }
            location.to_owned()
        }
    }
}

/// `.upstream` → `: upstream`, for a location after its key.
fn sub(rest: &str) -> String {
    match rest.strip_prefix('.') {
        Some(r) => format!(": {r}"),
        None if rest.is_empty() => String::new(),
        None => format!(": {rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let mut s = State::default();
        assert!(s.put(
            Key::new(Kind::Upstream, "u"),
            br#"{"nodes": [{"address": "h:1"}]}"#,
            "k"
        ));
        assert!(s.put(
            Key::new(Kind::Route, "b"),
            br#"{"paths": ["/b"], "upstream": "u"}"#,
            "k"
        ));
        assert!(s.put(
            Key::new(Kind::Route, "a"),
            br#"{"paths": ["/a"], "upstream": "u"}"#,
            "k"
        ));
        s
    }

    #[test]
    fn a_bad_version_keeps_the_good_one() {
        let mut s = state();
        let before = s.to_loaded(&Gateway::default());
        assert!(!s.put(Key::new(Kind::Route, "a"), b"{oops", "k"));
        assert!(!s.put(Key::new(Kind::Route, "c"), br#"{"paths": ["/c"], "bogus": 1}"#, "k"));
        let after = s.to_loaded(&Gateway::default());
        assert_eq!(before.hash, after.hash);
        assert_eq!(after.config.routes.len(), 2);
        let again = s.reloaded([(Key::new(Kind::Route, "a"), b"{oops".to_vec(), "k".into())]);
        assert_eq!(
            again.docs.len(),
            1,
            "a reload drops what is gone, keeps a broken doc's last version"
        );
    }

    #[test]
    fn locations_point_at_keys() {
        let s = state();
        let locate = s.locator("/p");
        assert_eq!(locate("routes[1].upstream"), "/p/routes/b: upstream");
        assert_eq!(locate("routes[0]"), "/p/routes/a");
        assert_eq!(
            locate("upstreams[0].nodes[0].address"),
            "/p/upstreams/u: nodes[0].address"
        );
        assert_eq!(locate("global_plugins.cors"), "/p/global_plugins: cors");
        assert_eq!(locate("gateway.listeners"), "gateway.listeners");
    }
}
