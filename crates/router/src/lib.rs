//! Portico's request router: picks the route for a request by host, path, method, headers and
//! priority, without scanning every route.
//!
//! Routes are indexed by host (a map of exact hosts, a map of wildcard suffixes, and a bucket
//! for routes without hosts), and within each host bucket by a trie of path segments. A lookup
//! visits only the buckets the request's host can match, walks their tries along the request's
//! path (into static and `{param}` children alike), and checks method and headers only on the
//! routes found there, keeping the best by a rank precomputed for every (route, host, path
//! pattern) combination. Lookups do not allocate (save for lower-casing a host of more than
//! 255 bytes that has upper-case letters).
//!
//! Precedence among routes whose conditions all hold: the highest `priority`; then an exact
//! host before a wildcard before none; then an exact path before a `{param}` path before a
//! prefix; then the longer prefix (segments, then bytes of static text); then the longer
//! wildcard suffix; then the route defined first.

mod hosts;
mod pattern;
mod rank;
mod trie;

#[cfg(test)]
mod tests;

use hosts::{HostIndex, HostPattern};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use pattern::Pattern;
use rank::Rank;
use std::fmt;
use std::sync::Arc;
use trie::Entry;

/// One route's match conditions, already validated for syntax by the config crate; the router
/// still rejects bad path patterns and hosts with a [`RouteError`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteDef {
    /// Exact hosts (`api.example.com`) or wildcards (`*.example.com`, which matches
    /// `a.example.com` and `a.b.example.com` but not `example.com`). Case-insensitive; a
    /// trailing dot is ignored. Empty: any host, or none.
    pub hosts: Vec<String>,
    /// Path patterns; at least one is required. `/users` matches exactly that path;
    /// `/users/{id}`: `{name}` matches exactly one non-empty segment; `/static/*`: a trailing
    /// `/*` matches the base and everything below it (`/static`, `/static/`, `/static/a/b`,
    /// not `/staticx`); `/*` matches every path. Params may come before a trailing `/*`.
    /// Case-sensitive.
    pub paths: Vec<String>,
    /// Empty: any method.
    pub methods: Vec<Method>,
    /// Each header must be present with exactly this value (any of its values, if repeated).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Higher wins over every other rule; default 0.
    pub priority: i32,
}

/// A route that cannot be built, e.g. `routes[2].paths[1]: invalid path "/a{id}": ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    /// The route's index in the list given to [`Router::new`].
    pub route: usize,
    /// The index of the offending entry in the route's `paths`, when a path is at fault.
    pub path: Option<usize>,
    /// What is wrong, quoting the offending text.
    pub message: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path {
            Some(path) => write!(f, "routes[{}].paths[{path}]: {}", self.route, self.message),
            None => write!(f, "routes[{}]: {}", self.route, self.message),
        }
    }
}

impl std::error::Error for RouteError {}

/// One route whose match conditions [`Router::update`] changes: its definition in the
/// router being updated, and its new one.
#[derive(Debug, Clone)]
pub struct Change {
    /// The route's index (it keeps its place among the routes).
    pub route: usize,
    pub old: RouteDef,
    pub new: RouteDef,
}

/// A route's parsed hosts (`Any` when it lists none) and path patterns.
struct Parsed {
    hosts: Vec<HostPattern>,
    patterns: Vec<Pattern>,
}

impl Parsed {
    /// Parses route number `route`, or says everything that is wrong with it.
    fn of(route: usize, def: &RouteDef) -> Result<Parsed, Vec<RouteError>> {
        let mut errors = Vec::new();
        let mut fail = |path, message| errors.push(RouteError { route, path, message });
        if def.paths.is_empty() {
            fail(None, "a route needs at least one path".to_owned());
        }
        let mut patterns = Vec::with_capacity(def.paths.len());
        for (j, text) in def.paths.iter().enumerate() {
            match Pattern::parse(text) {
                Ok(pattern) => patterns.push(pattern),
                Err(message) => fail(Some(j), message),
            }
        }
        let mut hosts = Vec::with_capacity(def.hosts.len().max(1));
        for (j, text) in def.hosts.iter().enumerate() {
            match HostPattern::parse(text) {
                Ok(host) => hosts.push(host),
                Err(message) => fail(None, format!("hosts[{j}]: {message}")),
            }
        }
        if def.hosts.is_empty() {
            hosts.push(HostPattern::Any);
        }
        if errors.is_empty() {
            Ok(Parsed { hosts, patterns })
        } else {
            Err(errors)
        }
    }

    /// Calls `f` with every (host, pattern) entry of route number `route`.
    fn each(&self, route: usize, priority: i32, mut f: impl FnMut(&HostPattern, &Pattern, Entry)) {
        for host in &self.hosts {
            let (kind, suffix) = host.kind();
            for pattern in &self.patterns {
                let rank = Rank::new(route, priority, kind, suffix, pattern);
                f(host, pattern, Entry { rank, route });
            }
        }
    }
}

/// A compiled route table, mapping requests to the `T` of the best matching route.
///
/// Built once per configuration by the control plane and shared read-only by every request.
/// The matching part (index and conditions) is shared by routers made with
/// [`Router::with_values`]: a config whose routes match as before needs no new index.
#[derive(Debug, Clone)]
pub struct Router<T> {
    table: Arc<Table>,
    /// One per route, in the order given.
    values: Box<[T]>,
}

/// What matching needs, independent of the routes' values.
#[derive(Debug, Default)]
struct Table {
    conditions: Vec<Conditions>,
    index: HostIndex,
}

/// What a lookup checks on a route found by host and path.
#[derive(Debug, Clone)]
struct Conditions {
    methods: Vec<Method>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

// === impl Router ===

impl<T> Router<T> {
    /// Compiles `routes`; their order breaks the last ties (earlier wins).
    ///
    /// # Errors
    ///
    /// Every bad path pattern (not starting with `/`, `*` other than a final `/*` segment,
    /// unbalanced or empty braces, a `{param}` sharing its segment with other text, a repeated
    /// param name), every bad host, and every route without paths, across all routes.
    pub fn new(routes: Vec<(RouteDef, T)>) -> Result<Self, Vec<RouteError>> {
        let mut errors = Vec::new();
        let mut index = HostIndex::default();
        let mut conditions = Vec::with_capacity(routes.len());
        let mut values = Vec::with_capacity(routes.len());
        for (i, (def, value)) in routes.into_iter().enumerate() {
            // Only a fully valid route is indexed; an invalid one fails the whole build below.
            match Parsed::of(i, &def) {
                Ok(parsed) => parsed.each(i, def.priority, |host, pattern, entry| {
                    index.bucket(host).insert(pattern, entry);
                }),
                Err(found) => errors.extend(found),
            }
            conditions.push(Conditions {
                methods: def.methods,
                headers: def.headers,
            });
            values.push(value);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        index.finish();
        Ok(Self {
            table: Arc::new(Table { conditions, index }),
            values: values.into(),
        })
    }

    /// This router with the match conditions of some routes changed and other values, one
    /// per route in the same order. Only the index paths of the changed routes are copied
    /// and changed; the rest of the index is shared with this router.
    ///
    /// # Errors
    ///
    /// Every bad path pattern or host of the changed routes' new definitions (as
    /// [`Router::new`]); or, at route 0, that the values are not one per route or a change
    /// names a route that is not there.
    pub fn update<U>(&self, changes: Vec<Change>, values: Vec<U>) -> Result<Router<U>, Vec<RouteError>> {
        let n = self.values.len();
        if values.len() != n || changes.iter().any(|c| c.route >= n) {
            return Err(vec![RouteError {
                route: 0,
                path: None,
                message: "an update must give one value per route and change only existing routes".into(),
            }]);
        }
        let mut errors = Vec::new();
        let mut parsed = Vec::with_capacity(changes.len());
        for c in &changes {
            match Parsed::of(c.route, &c.new) {
                Ok(p) => parsed.push(p),
                Err(found) => errors.extend(found),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut table = Table {
            conditions: self.table.conditions.clone(),
            index: self.table.index.clone(),
        };
        // Every old entry goes before any new one comes: two changed routes may swap paths.
        for c in &changes {
            if let Ok(old) = Parsed::of(c.route, &c.old) {
                old.each(c.route, c.old.priority, |host, pattern, _| {
                    table.index.remove(host, pattern, c.route);
                });
            }
        }
        for (c, new) in changes.into_iter().zip(parsed) {
            new.each(c.route, c.new.priority, |host, pattern, entry| {
                table.index.bucket(host).add(&pattern.segments, pattern.prefix, entry);
            });
            if let Some(slot) = table.conditions.get_mut(c.route) {
                *slot = Conditions {
                    methods: c.new.methods,
                    headers: c.new.headers,
                };
            }
        }
        Ok(Router {
            table: Arc::new(table),
            values: values.into(),
        })
    }

    /// The same routes with other values, one per route in the same order, sharing this
    /// router's index (nothing is parsed or indexed again).
    ///
    /// # Errors
    ///
    /// The values given back when their number is not the number of routes.
    pub fn with_values<U>(&self, values: Vec<U>) -> Result<Router<U>, Vec<U>> {
        if values.len() != self.values.len() {
            return Err(values);
        }
        Ok(Router {
            table: self.table.clone(),
            values: values.into(),
        })
    }

    /// Every route's value, in the order the routes were given.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// Whether `other` shares this router's index (made by [`Router::with_values`]).
    pub fn shares_index<U>(&self, other: &Router<U>) -> bool {
        Arc::ptr_eq(&self.table, &other.table)
    }

    /// The value of the best route for a request, or `None` when no route matches (a 404).
    ///
    /// `host` is the request's host without its port, in any case (`None` when the request
    /// has none: only routes without hosts match then). `path` is the path alone, without
    /// the query, already normalized by the caller.
    pub fn find(&self, host: Option<&str>, method: &Method, path: &str, headers: &HeaderMap) -> Option<&T> {
        let conditions = &self.table.conditions;
        let accept = |route: usize| conditions.get(route).is_some_and(|r| r.accepts(method, headers));
        let entry = self.table.index.find(host, path, &accept)?;
        self.values.get(entry.route)
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no routes (every lookup then finds nothing).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl<T> Default for Router<T> {
    /// A router without routes.
    fn default() -> Self {
        Self {
            table: Arc::default(),
            values: Box::default(),
        }
    }
}

// === impl Conditions ===

impl Conditions {
    /// Whether the method and header conditions hold.
    fn accepts(&self, method: &Method, headers: &HeaderMap) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self
                .headers
                .iter()
                .all(|(name, want)| headers.get_all(name).iter().any(|got| got == want))
    }
}
