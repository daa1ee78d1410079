//! A segment trie of path patterns: static children, one `{param}` child, and at each node the
//! routes that end there exactly and the routes whose `/*` prefix ends there.

use crate::pattern::{Pattern, Segment};
use crate::rank::Rank;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::sync::Arc;

/// A route reachable through one node, with its precomputed precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) rank: Rank,
    /// The route's index in the router's table.
    pub(crate) route: usize,
}

/// One node of the trie; the root stands for the empty path before the first segment.
///
/// Children are shared (`Arc`): a trie changed for a new config copies only the nodes on the
/// changed paths, the rest stays shared with the trie it came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    statics: FxHashMap<Arc<str>, Arc<Node>>,
    param: Option<Arc<Node>>,
    /// Routes whose pattern ends here (exact or `{param}` patterns), best first.
    exact: Vec<Entry>,
    /// Routes whose `/*` pattern has its base here, best first.
    prefix: Vec<Entry>,
    /// The best rank anywhere in this subtree, so a lookup can skip what cannot win.
    best: Option<Rank>,
}

// === impl Node ===

impl Node {
    /// Adds `entry` under `pattern`. Call [`Node::finish`] once everything is inserted.
    pub(crate) fn insert(&mut self, pattern: &Pattern, entry: Entry) {
        let mut node = self;
        for segment in &pattern.segments {
            node = match segment {
                Segment::Static(text) => Arc::make_mut(node.statics.entry(text.clone()).or_default()),
                Segment::Param => Arc::make_mut(node.param.get_or_insert_with(Arc::default)),
            };
        }
        if pattern.prefix {
            node.prefix.push(entry);
        } else {
            node.exact.push(entry);
        }
    }

    /// Sorts every entry list best first and records each subtree's best rank.
    pub(crate) fn finish(&mut self) {
        // Best first, so a lookup takes the first entry whose method and headers match.
        self.exact.sort_unstable_by_key(|e| Reverse(e.rank));
        self.prefix.sort_unstable_by_key(|e| Reverse(e.rank));
        let mut best = self
            .exact
            .first()
            .map(|e| e.rank)
            .max(self.prefix.first().map(|e| e.rank));
        for child in self.statics.values_mut().chain(self.param.as_mut()) {
            let child = Arc::make_mut(child);
            child.finish();
            best = best.max(child.best);
        }
        self.best = best;
    }

    /// Adds `entry` under a pattern's `segments` (a `/*` pattern when `prefix`) to a finished
    /// trie, keeping it finished.
    pub(crate) fn add(&mut self, segments: &[Segment], prefix: bool, entry: Entry) {
        self.best = self.best.max(Some(entry.rank));
        match segments.split_first() {
            None => {
                let list = if prefix { &mut self.prefix } else { &mut self.exact };
                let at = list.partition_point(|e| e.rank > entry.rank);
                list.insert(at, entry);
            }
            Some((Segment::Static(text), rest)) => {
                Arc::make_mut(self.statics.entry(text.clone()).or_default()).add(rest, prefix, entry);
            }
            Some((Segment::Param, rest)) => {
                Arc::make_mut(self.param.get_or_insert_with(Arc::default)).add(rest, prefix, entry);
            }
        }
    }

    /// Removes route `route`'s entries under a pattern's `segments` from a finished trie,
    /// keeping it finished and dropping the nodes left empty. Returns whether this node is
    /// now empty.
    pub(crate) fn remove(&mut self, segments: &[Segment], prefix: bool, route: usize) -> bool {
        match segments.split_first() {
            None => {
                let list = if prefix { &mut self.prefix } else { &mut self.exact };
                list.retain(|e| e.route != route);
            }
            Some((Segment::Static(text), rest)) => {
                if let Some(child) = self.statics.get_mut(&**text)
                    && Arc::make_mut(child).remove(rest, prefix, route)
                {
                    self.statics.remove(&**text);
                }
            }
            Some((Segment::Param, rest)) => {
                if let Some(child) = self.param.as_mut()
                    && Arc::make_mut(child).remove(rest, prefix, route)
                {
                    self.param = None;
                }
            }
        }
        let children = self.statics.values().chain(self.param.as_ref());
        self.best = children.fold(
            self.exact
                .first()
                .map(|e| e.rank)
                .max(self.prefix.first().map(|e| e.rank)),
            |best, child| best.max(child.best),
        );
        self.is_empty()
    }

    /// Whether nothing is reachable through this node.
    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefix.is_empty() && self.statics.is_empty() && self.param.is_none()
    }

    /// Looks up `path` (starting with `/`, no query) and replaces `found` with any entry that
    /// matches, passes `accept`, and outranks it.
    ///
    /// Every matching entry is a candidate, not only the most specific: a less specific one
    /// may have a higher priority, or be the only one whose method and headers match.
    pub(crate) fn find<F: Fn(usize) -> bool>(&self, path: &str, accept: &F, found: &mut Option<Entry>) {
        // The text after the leading '/' is the first segment onwards, as in `Pattern::parse`.
        let rest = path.strip_prefix('/').unwrap_or(path);
        self.walk(Some(rest), accept, found);
    }

    /// `rest` is what follows this node's segment: `None` at the end of the path, else the
    /// remaining segments joined by '/'. Recursion depth is bounded by the deepest pattern.
    fn walk<F: Fn(usize) -> bool>(&self, rest: Option<&str>, accept: &F, found: &mut Option<Entry>) {
        if found.map(|e| e.rank) >= self.best {
            return;
        }
        match rest {
            None => consider(&self.exact, accept, found),
            Some(rest) => {
                let (segment, next) = match rest.split_once('/') {
                    Some((segment, next)) => (segment, Some(next)),
                    None => (rest, None),
                };
                if let Some(child) = self.statics.get(segment) {
                    child.walk(next, accept, found);
                }
                if let Some(child) = self.param.as_deref().filter(|_| !segment.is_empty()) {
                    child.walk(next, accept, found);
                }
            }
        }
        // A prefix's base ends here, so it matches whatever remains.
        consider(&self.prefix, accept, found);
    }
}

/// Takes the first entry of a best-first list that outranks `found` and passes `accept`.
fn consider<F: Fn(usize) -> bool>(entries: &[Entry], accept: &F, found: &mut Option<Entry>) {
    for entry in entries {
        if found.is_some_and(|f| f.rank >= entry.rank) {
            return;
        }
        if accept(entry.route) {
            *found = Some(*entry);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rank::HostKind;

    fn trie(patterns: &[&str]) -> Node {
        let mut root = Node::default();
        for (i, p) in patterns.iter().enumerate() {
            let pattern = Pattern::parse(p).expect(p);
            let rank = Rank::new(i as u64, 0, HostKind::Any, 0, &pattern);
            root.insert(&pattern, Entry { rank, route: i });
        }
        root.finish();
        root
    }

    fn find(root: &Node, path: &str) -> Option<usize> {
        let mut found = None;
        root.find(path, &|_| true, &mut found);
        found.map(|e| e.route)
    }

    #[test]
    fn walks_statics_params_and_prefixes() {
        let root = trie(&["/", "/a", "/a/{x}", "/a/*", "/{y}/b", "/c/*"]);
        assert_eq!(find(&root, "/"), Some(0));
        assert_eq!(find(&root, "/a"), Some(1));
        assert_eq!(find(&root, "/a/1"), Some(2));
        assert_eq!(find(&root, "/a/"), Some(3));
        assert_eq!(find(&root, "/a/1/2"), Some(3));
        assert_eq!(find(&root, "/z/b"), Some(4));
        assert_eq!(find(&root, "/c"), Some(5));
        assert_eq!(find(&root, "/z"), None);
        assert_eq!(find(&root, "/z/b/c"), None);
    }

    #[test]
    fn backtracks_from_static_into_param() {
        let root = trie(&["/a/{x}/c", "/{y}/b/d"]);
        assert_eq!(find(&root, "/a/b/c"), Some(0));
        assert_eq!(find(&root, "/a/b/d"), Some(1));
        assert_eq!(find(&root, "/a/b/e"), None);
    }

    #[test]
    fn records_subtree_best() {
        let empty = trie(&[]);
        assert_eq!(empty.best, None);
        let root = trie(&["/a/b/c"]);
        assert!(root.best.is_some());
    }

    #[test]
    fn accept_filters_candidates() {
        let root = trie(&["/a", "/{x}", "/*"]);
        let mut found = None;
        root.find("/a", &|route| route != 0, &mut found);
        assert_eq!(found.map(|e| e.route), Some(1));
        let mut found = None;
        root.find("/a", &|route| route == 2, &mut found);
        assert_eq!(found.map(|e| e.route), Some(2));
        let mut found = None;
        root.find("/a", &|_| false, &mut found);
        assert_eq!(found, None);
    }
}
