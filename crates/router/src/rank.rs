//! Precedence between matching routes, precomputed into one comparable [`Rank`] per entry.

use crate::pattern::{PathKind, Pattern};
use std::cmp::Reverse;

/// How a route's host condition is written; greater is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HostKind {
    /// The route has no hosts: it matches any host, or none.
    Any,
    /// `*.example.com`.
    Wildcard,
    /// `api.example.com`.
    Exact,
}

/// The precedence of one (route, host, path pattern) entry: of two entries that both match a
/// request, the greater rank wins.
///
/// Fields compare in declaration order, which is the order of the rules: priority, then host
/// kind, then path kind, then prefix length (segments, then bytes), then wildcard suffix
/// length, and finally the earlier route. Ranks of different routes never tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rank {
    priority: i32,
    host: HostKind,
    path: PathKind,
    prefix_segments: u32,
    prefix_bytes: u32,
    host_suffix: u32,
    earlier: Reverse<u64>,
}

impl Rank {
    /// The rank of the route with order key `order` (smaller: earlier in the list) reached
    /// through `host` (with a wildcard's suffix length in bytes, else 0) and `pattern`.
    pub(crate) fn new(order: u64, priority: i32, host: HostKind, host_suffix: usize, pattern: &Pattern) -> Self {
        let (prefix_segments, prefix_bytes) = pattern.prefix_len();
        Self {
            priority,
            host,
            path: pattern.kind(),
            prefix_segments,
            prefix_bytes,
            host_suffix: u32::try_from(host_suffix).unwrap_or(u32::MAX),
            earlier: Reverse(order),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(route: usize, priority: i32, host: HostKind, suffix: usize, path: &str) -> Rank {
        Rank::new(route as u64, priority, host, suffix, &Pattern::parse(path).expect(path))
    }

    #[test]
    fn rules_apply_in_order() {
        use HostKind::*;
        // Priority beats everything else.
        assert!(rank(9, 1, Any, 0, "/*") > rank(0, 0, Exact, 0, "/a"));
        // Host kind beats path kind.
        assert!(rank(9, 0, Exact, 0, "/*") > rank(0, 0, Wildcard, 3, "/a"));
        assert!(rank(9, 0, Wildcard, 3, "/*") > rank(0, 0, Any, 0, "/a"));
        // Path kind beats prefix length and suffix length.
        assert!(rank(9, 0, Wildcard, 3, "/a") > rank(0, 0, Wildcard, 9, "/{x}"));
        assert!(rank(9, 0, Any, 0, "/{x}") > rank(0, 0, Any, 0, "/a/b/*"));
        // Longer prefix: segments, then bytes; beats suffix length.
        assert!(rank(9, 0, Wildcard, 3, "/a/b/*") > rank(0, 0, Wildcard, 9, "/abcdef/*"));
        assert!(rank(9, 0, Any, 0, "/ab/*") > rank(0, 0, Any, 0, "/{x}/*"));
        // Longer wildcard suffix.
        assert!(rank(9, 0, Wildcard, 9, "/a") > rank(0, 0, Wildcard, 3, "/a"));
        // Earlier route.
        assert!(rank(0, 0, Any, 0, "/a") > rank(1, 0, Any, 0, "/a"));
    }
}
