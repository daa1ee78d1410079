//! What a node holds of the store: the last good version of every document, by key.
//!
//! A document that does not decode is logged with its key and skipped; the version before
//! it (if any) stays. So nothing written to etcd can take a resource away by being broken,
//! and nothing can crash a node.

use crate::document::{Resource, decode};
use crate::layout::{Key, Kind};
use portico_config::{Config, Gateway, Loaded};
use sha2::{Digest, Sha256};
use std::cell::OnceCell;
use std::collections::BTreeMap;

/// One good document: its canonical JSON text (what the cache keeps and what is compared),
/// its decoded form, and its share of the state's hash.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The document as compact JSON with sorted keys: equal documents give equal text.
    pub text: String,
    pub resource: Resource,
    digest: Digest256,
}

/// A SHA-256 digest as four words, for the state's order-independent sum.
type Digest256 = [u64; 4];

#[derive(Debug, Clone, Default)]
pub struct State {
    docs: BTreeMap<Key, Entry>,
    /// The word-wise wrapping sum of every document's digest (of its key and text): equal
    /// states give equal sums, and a change updates it in O(1), so hashing a state of 10,000
    /// documents does not read them all.
    sum: Digest256,
}

impl State {
    /// Takes a new version of the document at `full_key` (its etcd key, for the logs).
    /// Returns whether anything changed.
    pub fn put(&mut self, key: Key, bytes: &[u8], full_key: &str) -> bool {
        match decode(&key, bytes) {
            Ok((value, resource)) => {
                let text = value.to_string();
                if self.docs.get(&key).is_some_and(|e| e.text == text) {
                    return false;
                }
                let digest = digest(&key, &text);
                self.insert(key, Entry { text, resource, digest });
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
        match self.docs.remove(key) {
            Some(old) => {
                self.sum = sub(self.sum, old.digest);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: Key, entry: Entry) {
        self.sum = add(self.sum, entry.digest);
        if let Some(old) = self.docs.insert(key, entry) {
            self.sum = sub(self.sum, old.digest);
        }
    }

    /// Every document, in key order.
    pub fn docs(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.docs.iter()
    }

    /// How many documents there are.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// A whole state read afresh, keeping for each document that no longer decodes the
    /// version `self` had.
    pub fn reloaded(&self, kvs: impl IntoIterator<Item = (Key, Vec<u8>, String)>) -> State {
        let mut next = State::default();
        for (key, bytes, full_key) in kvs {
            if let Some(old) = self.docs.get(&key) {
                next.insert(key.clone(), old.clone());
            }
            next.put(key, &bytes, &full_key);
        }
        next
    }

    /// The config this state and the file's `gateway` section make, ready to validate and
    /// compile, with a hash of both (equal states give equal hashes). The resources are
    /// shared with the state, not copied.
    pub fn to_loaded(&self, gateway: &Gateway) -> Loaded {
        let mut config = Config {
            gateway: gateway.clone(),
            ..Config::default()
        };
        for entry in self.docs.values() {
            match &entry.resource {
                Resource::Upstream(u) => config.upstreams.push(u.clone()),
                Resource::Consumer(c) => config.consumers.push(c.clone()),
                Resource::Route(r) => config.routes.push(r.clone()),
                Resource::GlobalPlugins(p) => config.global_plugins = p.clone(),
            }
        }
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_string(gateway).unwrap_or_default());
        for word in self.sum {
            hasher.update(word.to_le_bytes());
        }
        Loaded {
            config,
            hash: hasher.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// Turns a config location (`routes[3].upstream`) into the etcd key it came from
    /// (`/portico/routes/users-api: upstream`). The keys are listed on the first call only:
    /// a valid config costs nothing here.
    pub fn locator<'a>(&'a self, prefix: &'a str) -> impl Fn(&str) -> String + 'a {
        let by_section: OnceCell<BTreeMap<&'static str, Vec<&Key>>> = OnceCell::new();
        move |location: &str| {
            if let Some(rest) = location.strip_prefix("global_plugins") {
                return format!("{prefix}/global_plugins{}", sub_location(rest));
            }
            let by_section = by_section.get_or_init(|| {
                let mut map: BTreeMap<&'static str, Vec<&Key>> = BTreeMap::new();
                for key in self.docs.keys() {
                    map.entry(key.kind.section()).or_default().push(key);
                }
                map
            });
            for kind in [Kind::Route, Kind::Upstream, Kind::Consumer] {
                let Some(rest) = location.strip_prefix(kind.section()).and_then(|r| r.strip_prefix('[')) else {
                    continue;
                };
                let Some((index, rest)) = rest.split_once(']') else {
                    continue;
                };
                let key = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| by_section.get(kind.section())?.get(i));
                if let Some(key) = key {
                    return format!("{}{}", key.path(prefix), sub_location(rest));
                }
            }
            location.to_owned()
        }
    }
}

/// The digest of one document at `key`.
fn digest(key: &Key, text: &str) -> Digest256 {
    let mut hasher = Sha256::new();
    hasher.update(key.path(""));
    hasher.update(b" ");
    hasher.update(text);
    let d = hasher.finalize();
    let mut out = [0u64; 4];
    for (word, bytes) in out.iter_mut().zip(d.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        *word = u64::from_le_bytes(b);
    }
    out
}

fn add(a: Digest256, b: Digest256) -> Digest256 {
    std::array::from_fn(|i| a[i].wrapping_add(b[i]))
}

fn sub(a: Digest256, b: Digest256) -> Digest256 {
    std::array::from_fn(|i| a[i].wrapping_sub(b[i]))
}

/// `.upstream` → `: upstream`, for a location after its key.
fn sub_location(rest: &str) -> String {
    match rest.strip_prefix('.') {
        Some(r) => format!(": {r}"),
        None if rest.is_empty() => String::new(),
        None => format!(": {rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
    fn the_hash_follows_the_documents_not_their_history() {
        let gateway = Gateway::default();
        let s = state();
        let mut other = State::default();
        // Other order, other spelling of the same JSON, a detour through another version.
        other.put(
            Key::new(Kind::Route, "a"),
            br#"{"upstream": "u", "paths": ["/a"]}"#,
            "k",
        );
        other.put(
            Key::new(Kind::Route, "b"),
            br#"{"paths": ["/x"], "upstream": "u"}"#,
            "k",
        );
        other.put(
            Key::new(Kind::Upstream, "u"),
            br#"{"nodes": [{"address": "h:1"}]}"#,
            "k",
        );
        assert_ne!(s.to_loaded(&gateway).hash, other.to_loaded(&gateway).hash);
        assert!(other.put(
            Key::new(Kind::Route, "b"),
            br#"{"paths": ["/b"], "upstream": "u"}"#,
            "k"
        ));
        assert_eq!(s.to_loaded(&gateway).hash, other.to_loaded(&gateway).hash);
        assert!(!other.put(
            Key::new(Kind::Route, "b"),
            br#"{ "upstream":"u", "paths":["/b"] }"#,
            "k"
        ));

        assert!(other.remove(&Key::new(Kind::Route, "a")));
        assert!(!other.remove(&Key::new(Kind::Route, "a")));
        assert_ne!(s.to_loaded(&gateway).hash, other.to_loaded(&gateway).hash);
        other.put(
            Key::new(Kind::Route, "a"),
            br#"{"paths": ["/a"], "upstream": "u"}"#,
            "k",
        );
        assert_eq!(s.to_loaded(&gateway).hash, other.to_loaded(&gateway).hash);

        let listening = Gateway {
            workers: Some(2),
            ..Gateway::default()
        };
        assert_ne!(s.to_loaded(&gateway).hash, s.to_loaded(&listening).hash);
    }

    #[test]
    fn the_config_shares_the_documents() {
        let s = state();
        let (a, b) = (s.to_loaded(&Gateway::default()), s.to_loaded(&Gateway::default()));
        assert!(Arc::ptr_eq(&a.config.routes[0], &b.config.routes[0]));
        assert_eq!(a.config.routes[0].id, "a");
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
