//! The host index: one path trie per exact host, one per wildcard suffix, and one for routes
//! without hosts; a request visits only the tries its host can match.

use crate::pattern::Pattern;
use crate::rank::HostKind;
use crate::trie::{Entry, Node};
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// A parsed host condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// A lower-case host name without a trailing dot.
    Exact(Arc<str>),
    /// `*.example.com`, stored as its lower-case suffix `example.com`.
    Wildcard(Arc<str>),
    /// The route lists no hosts.
    Any,
}

impl HostPattern {
    /// Parses one entry of a route's `hosts`, or says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (name, wildcard) = match text.strip_prefix("*.") {
            Some(suffix) => (suffix, true),
            None => (text, false),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() || name.starts_with('.') || name.contains("..") || name.contains('*') {
            return Err(format!(
                "invalid host {text:?}: write a name like api.example.com or *.example.com"
            ));
        }
        let name: Arc<str> = name.to_ascii_lowercase().into();
        Ok(if wildcard {
            Self::Wildcard(name)
        } else {
            Self::Exact(name)
        })
    }

    /// The kind used for precedence, and for a wildcard its suffix length in bytes.
    pub(crate) fn kind(&self) -> (HostKind, usize) {
        match self {
            Self::Exact(_) => (HostKind::Exact, 0),
            Self::Wildcard(suffix) => (HostKind::Wildcard, suffix.len()),
            Self::Any => (HostKind::Any, 0),
        }
    }
}

/// Every route's path trie, grouped by host condition. Cloning it shares every trie.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostIndex {
    exact: FxHashMap<Arc<str>, Arc<Node>>,
    wildcard: FxHashMap<Arc<str>, Arc<Node>>,
    any: Arc<Node>,
}

// === impl HostIndex ===

impl HostIndex {
    /// The trie that holds routes with this host condition.
    pub(crate) fn bucket(&mut self, host: &HostPattern) -> &mut Node {
        Arc::make_mut(match host {
            HostPattern::Exact(name) => self.exact.entry(name.clone()).or_default(),
            HostPattern::Wildcard(suffix) => self.wildcard.entry(suffix.clone()).or_default(),
            HostPattern::Any => &mut self.any,
        })
    }

    /// Removes route `route`'s entries under `pattern` in the trie of `host` (finished
    /// tries stay finished; a host's trie left empty goes).
    pub(crate) fn remove(&mut self, host: &HostPattern, pattern: &Pattern, route: usize) {
        let (map, name) = match host {
            HostPattern::Exact(name) => (&mut self.exact, name),
            HostPattern::Wildcard(suffix) => (&mut self.wildcard, suffix),
            HostPattern::Any => {
                Arc::make_mut(&mut self.any).remove(&pattern.segments, pattern.prefix, route);
                return;
            }
        };
        if let Some(node) = map.get_mut(name)
            && Arc::make_mut(node).remove(&pattern.segments, pattern.prefix, route)
        {
            map.remove(name);
        }
    }

    /// Prepares every trie for lookups.
    pub(crate) fn finish(&mut self) {
        self.exact
            .values_mut()
            .chain(self.wildcard.values_mut())
            .chain(std::iter::once(&mut self.any))
            .for_each(|n| Arc::make_mut(n).finish());
    }

    /// Looks `path` up in every trie that `host` can match, keeping the best accepted entry.
    pub(crate) fn find<F: Fn(usize) -> bool>(&self, host: Option<&str>, path: &str, accept: &F) -> Option<Entry> {
        let mut found = None;
        if let Some(host) = host {
            let mut buf = [0u8; 255];
            let owned;
            let host = match lower(host, &mut buf) {
                Some(host) => host,
                None => {
                    owned = host.to_ascii_lowercase();
                    owned.as_str()
                }
            };
            let host = host.strip_suffix('.').unwrap_or(host);
            // Most specific host first: its entries tend to rank highest and so let the
            // later tries be skipped at their root.
            if let Some(node) = self.exact.get(host) {
                node.find(path, accept, &mut found);
            }
            if !self.wildcard.is_empty() {
                // `*.example.com` matches `a.example.com` and `a.b.example.com`: look up the
                // suffix after each dot that follows a non-empty label, longest first.
                for (i, _) in host.match_indices('.').filter(|&(i, _)| i > 0) {
                    if let Some(node) = self.wildcard.get(&host[i + 1..]) {
                        node.find(path, accept, &mut found);
                    }
                }
            }
        }
        self.any.find(path, accept, &mut found);
        found
    }
}

/// `host` in lower case without allocating: borrowed when it already is, else copied into
/// `buf`; `None` when it does not fit there.
fn lower<'a>(host: &'a str, buf: &'a mut [u8]) -> Option<&'a str> {
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(host);
    }
    let copy = buf.get_mut(..host.len())?;
    copy.copy_from_slice(host.as_bytes());
    let copy = std::str::from_utf8_mut(copy).ok()?;
    copy.make_ascii_lowercase();
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!(
            HostPattern::parse("API.Example.com"),
            Ok(HostPattern::Exact("api.example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("example.com."),
            Ok(HostPattern::Exact("example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("*.Example.com"),
            Ok(HostPattern::Wildcard("example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("localhost"),
            Ok(HostPattern::Exact("localhost".into()))
        );
        for bad in [
            "",
            "*",
            "*.",
            ".",
            "*.*.example.com",
            "a.*.com",
            "api*.com",
            ".example.com",
            "a..b",
        ] {
            let err = HostPattern::parse(bad).expect_err(bad);
            assert!(err.contains("invalid host"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(HostPattern::Any.kind(), (HostKind::Any, 0));
        assert_eq!(HostPattern::Exact("a.b".into()).kind(), (HostKind::Exact, 0));
        assert_eq!(HostPattern::Wildcard("b.c".into()).kind(), (HostKind::Wildcard, 3));
    }

    #[test]
    fn lowers_without_allocating_when_it_can() {
        let mut buf = [0u8; 8];
        let host = "api.com";
        let same = lower(host, &mut buf).expect("fits");
        assert!(std::ptr::eq(same, host));
        assert_eq!(lower("API.com", &mut buf), Some("api.com"));
        assert_eq!(lower("API.example.com", &mut buf), None);
        assert_eq!(lower("longer.but.lower.case", &mut buf), Some("longer.but.lower.case"));
    }
}
