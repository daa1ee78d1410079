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

/// Where a route of [`Router::derive`] takes its match conditions from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The route at this index of the router derived from, unchanged.
    Kept(usize),
    /// These.
    New(RouteDef),
}

/// A route's parsed hosts (`Any` when it lists none) and path patterns, its priority and its
/// order key: routes earlier in the list have smaller keys (the last tie-break). Keys leave
/// gaps, so a route can come between two others without renumbering them.
#[derive(Debug, Clone)]
struct Placed {
    hosts: Vec<HostPattern>,
    patterns: Vec<Pattern>,
    priority: i32,
    order: u64,
}

/// The gap between the order keys of two neighbouring routes of a fresh build.
const ORDER_GAP: u64 = 1 << 32;

impl Placed {
    /// Parses route number `route`, or says everything that is wrong with it.
    fn of(route: usize, def: &RouteDef) -> Result<Placed, Vec<RouteError>> {
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
            Ok(Placed {
                hosts,
                patterns,
                priority: def.priority,
                order: 0,
            })
        } else {
            Err(errors)
        }
    }

    /// Calls `f` with every (host, pattern) entry of this route in table slot `slot`.
    fn each(&self, slot: usize, mut f: impl FnMut(&HostPattern, &Pattern, Entry)) {
        for host in &self.hosts {
            let (kind, suffix) = host.kind();
            for pattern in &self.patterns {
                let rank = Rank::new(self.order, self.priority, kind, suffix, pattern);
                f(host, pattern, Entry { rank, route: slot });
            }
        }
    }
}

/// A compiled route table, mapping requests to the `T` of the best matching route.
///
/// Built once per configuration by the control plane and shared read-only by every request.
/// A router for the next configuration is derived from this one ([`Router::with_values`],
/// [`Router::derive`]): the index nodes of unchanged routes are shared, not rebuilt.
#[derive(Debug, Clone)]
pub struct Router<T> {
    table: Arc<Table>,
    /// One per table slot (`None`: a slot whose route is gone).
    values: Box<[Option<T>]>,
}

/// What matching needs, independent of the routes' values. Routes live in slots: a derived
/// table keeps the slots of the routes it keeps and appends new ones.
#[derive(Debug, Default, Clone)]
struct Table {
    /// By slot.
    conditions: Vec<Conditions>,
    /// By slot; `None` for a slot whose route is gone.
    placed: Vec<Option<Arc<Placed>>>,
    /// Each route's slot, in the routes' order.
    slots: Vec<usize>,
    index: HostIndex,
}

/// What a lookup checks on a route found by host and path.
#[derive(Debug, Clone, Default)]
struct Conditions {
    methods: Vec<Method>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Conditions {
    fn of(def: RouteDef) -> Self {
        Self {
            methods: def.methods,
            headers: def.headers,
        }
    }
}

/// One route of a table being built: where it is defined, its conditions, its value, and
/// its slot in the table derived from (if kept).
struct Item<U> {
    placed: Arc<Placed>,
    conditions: Conditions,
    value: U,
    kept_slot: Option<usize>,
}

// === impl Router ===

/// Every error [`Router::new`] would report for `routes`, without building the index: for a
/// config that is only checked, never served.
pub fn check<'a>(routes: impl IntoIterator<Item = &'a RouteDef>) -> Vec<RouteError> {
    let mut errors = Vec::new();
    for (i, def) in routes.into_iter().enumerate() {
        if let Err(found) = Placed::of(i, def) {
            errors.extend(found);
        }
    }
    errors
}

impl<T> Router<T> {
    /// Compiles `routes`; their order breaks the last ties (earlier wins).
    ///
    /// # Errors
    ///
    /// Every bad path pattern (not starting with `/`, `*` other than a final `/*` segment,
    /// unbalanced or empty braces, a `{param}` sharing its segment with other text, a repeated
    /// param name), every bad host, and every route without paths, across all routes.
    pub fn new(routes: Vec<(RouteDef, T)>) -> Result<Self, Vec<RouteError>> {
        let routes = routes
            .into_iter()
            .map(|(def, value)| (Source::New(def), value))
            .collect();
        Router::<T>::default().derive(routes)
    }

    /// A router for `routes`, in order, each with its value and its match conditions: kept
    /// from a route of this router, or new. Only the index paths of routes that are new or
    /// gone are copied and changed; the rest stays shared with this router. (When kept routes
    /// change their order, the order keys run out, or gone routes left too many slots, the
    /// index is built afresh from what is already parsed.)
    ///
    /// # Errors
    ///
    /// Every bad path pattern or host of the new routes, as [`Router::new`]; a kept index
    /// that is not a route of this router, or kept twice.
    pub fn derive<U>(&self, routes: Vec<(Source, U)>) -> Result<Router<U>, Vec<RouteError>> {
        let old = &*self.table;
        let mut errors = Vec::new();
        let mut kept = vec![false; old.slots.len()];
        let mut in_order = true;
        let mut last_kept = None;
        let mut items = Vec::with_capacity(routes.len());
        for (i, (source, value)) in routes.into_iter().enumerate() {
            match source {
                Source::Kept(p) => {
                    let found = old.slots.get(p).and_then(|&s| Some((s, old.placed.get(s)?.clone()?)));
                    let Some((slot, placed)) = found.filter(|_| !kept[p]) else {
                        errors.push(RouteError {
                            route: i,
                            path: None,
                            message: format!("kept route {p} is not in the router, or kept twice"),
                        });
                        continue;
                    };
                    kept[p] = true;
                    in_order &= last_kept.is_none_or(|l| l < p);
                    last_kept = Some(p);
                    items.push(Item {
                        placed,
                        conditions: old.conditions.get(slot).cloned().unwrap_or_default(),
                        value,
                        kept_slot: Some(slot),
                    });
                }
                Source::New(def) => match Placed::of(i, &def) {
                    Ok(placed) => items.push(Item {
                        placed: Arc::new(placed),
                        conditions: Conditions::of(def),
                        value,
                        kept_slot: None,
                    }),
                    Err(found) => errors.extend(found),
                },
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let crowded = old.placed.len() > 2 * items.len() + 64;
        match in_order && !crowded && !old.slots.is_empty() {
            true => match orders_between_kept(&items) {
                Some(orders) => Ok(self.changed(items, &kept, orders)),
                None => Ok(fresh(items)),
            },
            false => Ok(fresh(items)),
        }
    }

    /// This router's table with the routes not `kept` taken out and the new `items` put in
    /// (at `orders`).
    fn changed<U>(&self, items: Vec<Item<U>>, kept: &[bool], orders: Vec<u64>) -> Router<U> {
        let old = &*self.table;
        let mut table = Table {
            conditions: old.conditions.clone(),
            placed: old.placed.clone(),
            slots: Vec::with_capacity(items.len()),
            index: old.index.clone(),
        };
        for (p, _) in kept.iter().enumerate().filter(|(_, k)| !**k) {
            let Some(&slot) = old.slots.get(p) else { continue };
            if let Some(gone) = table.placed.get_mut(slot).and_then(Option::take) {
                gone.each(slot, |host, pattern, _| table.index.remove(host, pattern, slot));
            }
            if let Some(c) = table.conditions.get_mut(slot) {
                *c = Conditions::default();
            }
        }
        let mut values: Vec<Option<U>> = Vec::new();
        values.resize_with(table.placed.len(), || None);
        for (item, order) in items.into_iter().zip(orders) {
            let slot = match item.kept_slot {
                Some(slot) => slot,
                None => {
                    let mut placed = item.placed;
                    Arc::make_mut(&mut placed).order = order;
                    let slot = table.placed.len();
                    placed.each(slot, |host, pattern, entry| {
                        table.index.bucket(host).add(&pattern.segments, pattern.prefix, entry);
                    });
                    table.placed.push(Some(placed));
                    table.conditions.push(item.conditions);
                    values.push(None);
                    slot
                }
            };
            table.slots.push(slot);
            if let Some(v) = values.get_mut(slot) {
                *v = Some(item.value);
            }
        }
        Router {
            table: Arc::new(table),
            values: values.into(),
        }
    }

    /// The same routes with other values, one per route in the same order, sharing this
    /// router's index (nothing is parsed or indexed again).
    ///
    /// # Errors
    ///
    /// The values given back when their number is not the number of routes.
    pub fn with_values<U>(&self, values: Vec<U>) -> Result<Router<U>, Vec<U>> {
        if values.len() != self.table.slots.len() {
            return Err(values);
        }
        let mut by_slot: Vec<Option<U>> = Vec::new();
        by_slot.resize_with(self.values.len(), || None);
        for (&slot, value) in self.table.slots.iter().zip(values) {
            if let Some(v) = by_slot.get_mut(slot) {
                *v = Some(value);
            }
        }
        Ok(Router {
            table: self.table.clone(),
            values: by_slot.into(),
        })
    }

    /// Every route's value, in the order the routes were given.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.table.slots.iter().filter_map(|&s| self.values.get(s)?.as_ref())
    }

    /// The value of route number `i`.
    pub fn value(&self, i: usize) -> Option<&T> {
        self.values.get(*self.table.slots.get(i)?)?.as_ref()
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
        self.values.get(entry.route)?.as_ref()
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.table.slots.len()
    }

    /// Whether there are no routes (every lookup then finds nothing).
    pub fn is_empty(&self) -> bool {
        self.table.slots.is_empty()
    }
}

/// The order keys of `items` when the new ones fit between the kept ones (whose keys stay);
/// `None` when a run of new routes has no room.
fn orders_between_kept<U>(items: &[Item<U>]) -> Option<Vec<u64>> {
    let mut orders = Vec::with_capacity(items.len());
    let mut i = 0;
    let mut below: Option<u64> = None;
    while i < items.len() {
        if items[i].kept_slot.is_some() {
            let order = items[i].placed.order;
            if below.is_some_and(|b| b >= order) {
                return None;
            }
            orders.push(order);
            below = Some(order);
            i += 1;
            continue;
        }
        // A run of new routes up to the next kept one (or the end).
        let run = items[i..].iter().take_while(|it| it.kept_slot.is_none()).count() as u64;
        let low = below.map_or(0, |b| b + 1);
        let high = match items.get(i + run as usize) {
            Some(next) => next.placed.order,
            None => low.checked_add((run + 1) * ORDER_GAP)?,
        };
        let step = high.checked_sub(low)? / (run + 1);
        if step == 0 {
            return None;
        }
        for k in 1..=run {
            let order = low + step * k;
            orders.push(order);
            below = Some(order);
        }
        i += run as usize;
    }
    Some(orders)
}

/// A table built afresh for `items` (already parsed): slots in order, keys renumbered.
fn fresh<U>(items: Vec<Item<U>>) -> Router<U> {
    let mut table = Table {
        conditions: Vec::with_capacity(items.len()),
        placed: Vec::with_capacity(items.len()),
        slots: (0..items.len()).collect(),
        index: HostIndex::default(),
    };
    let mut values = Vec::with_capacity(items.len());
    for (slot, item) in items.into_iter().enumerate() {
        let order = (slot as u64 + 1) * ORDER_GAP;
        let mut placed = item.placed;
        if placed.order != order {
            Arc::make_mut(&mut placed).order = order;
        }
        placed.each(slot, |host, pattern, entry| {
            table.index.bucket(host).insert(pattern, entry)
        });
        table.placed.push(Some(placed));
        table.conditions.push(item.conditions);
        values.push(Some(item.value));
    }
    table.index.finish();
    Router {
        table: Arc::new(table),
        values: values.into(),
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
