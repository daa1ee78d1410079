//! Finding, in the snapshot being replaced, the compiled form of a resource that did not change.

use super::{RouteEntry, Snapshot};
use portico_config::{Route, Upstream as UpstreamDef};
use portico_upstream::Upstream;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The snapshot a config is compiled against, with its resources found by id.
pub(super) struct Previous<'a> {
    pub(super) snapshot: &'a Snapshot,
    /// Built on the first lookup whose resource moved (a config that only changes resources
    /// in place never needs them).
    routes: OnceCell<HashMap<&'a str, usize>>,
    upstreams: OnceCell<HashMap<&'a str, usize>>,
}

/// A route of the previous snapshot: where it was, its definition and its compiled entry.
pub(super) struct OldRoute<'a> {
    pub(super) index: usize,
    pub(super) def: &'a Arc<Route>,
    pub(super) entry: &'a RouteEntry,
}

impl<'a> Previous<'a> {
    pub(super) fn new(snapshot: &'a Snapshot) -> Self {
        Self {
            snapshot,
            routes: OnceCell::new(),
            upstreams: OnceCell::new(),
        }
    }

    /// The previous route of this id (looked for at index `i` first).
    pub(super) fn route(&self, i: usize, id: &str) -> Option<OldRoute<'a>> {
        let routes = &self.snapshot.config.routes;
        let index = match routes.get(i) {
            Some(r) if r.id == id => i,
            _ => *self
                .routes
                .get_or_init(|| by_id(routes.iter().map(|r| r.id.as_str())))
                .get(id)?,
        };
        Some(OldRoute {
            index,
            def: routes.get(index)?,
            entry: self.snapshot.router.value(index)?,
        })
    }

    /// The previous compiled upstream for `def` (named, at index `i` of the new config's
    /// upstreams), if its definition is equal and it may be kept.
    pub(super) fn upstream(&self, i: usize, def: &Arc<UpstreamDef>) -> Option<Arc<Upstream>> {
        if !upstream_reusable(def) {
            return None;
        }
        let upstreams = &self.snapshot.config.upstreams;
        let index = match upstreams.get(i) {
            Some(u) if u.id == def.id => i,
            _ => *self
                .upstreams
                .get_or_init(|| by_id(upstreams.iter().map(|u| u.id.as_str())))
                .get(def.id.as_str())?,
        };
        let old = upstreams.get(index)?;
        if !same(old, def) {
            return None;
        }
        self.snapshot.parts.named.get(index).cloned()
    }
}

fn by_id<'a>(ids: impl Iterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    ids.enumerate().map(|(i, id)| (id, i)).collect()
}

/// Whether a compiled upstream may serve a config with an equal definition: not when it
/// names files (certificates and keys are read again) or host names (resolved again).
pub(super) fn upstream_reusable(def: &UpstreamDef) -> bool {
    def.nodes.iter().all(|n| n.address.parse::<SocketAddr>().is_ok())
        && def
            .tls
            .as_ref()
            .is_none_or(|t| t.ca.is_none() && t.cert.is_none() && t.key.is_none())
}

/// The same definition: the same `Arc` (a config built from the last one), or equal values
/// (a file read again).
pub(super) fn same<T: PartialEq>(a: &Arc<T>, b: &Arc<T>) -> bool {
    Arc::ptr_eq(a, b) || **a == **b
}

/// Every definition the same, in the same order.
pub(super) fn same_all<T: PartialEq>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
}

/// Whether two routes match the same requests: what the route index is built from.
pub(super) fn same_routing(a: &Arc<Route>, b: &Arc<Route>) -> bool {
    Arc::ptr_eq(a, b)
        || (a.hosts == b.hosts
            && a.paths == b.paths
            && a.methods == b.methods
            && a.headers == b.headers
            && a.priority == b.priority)
}

#[cfg(test)]
mod tests {
    use crate::snapshot::{Snapshot, compile, compile_next, validate_and_compile_next};
    use http::Method;
    use portico_config::Config;
    use std::sync::Arc;

    const BASE: &str = r#"
gateway: { listeners: [{ address: "127.0.0.1:1" }] }
upstreams:
  - { id: u, nodes: [{ address: "127.0.0.1:9" }] }
  - { id: v, nodes: [{ address: "127.0.0.1:10" }] }
consumers:
  - { username: alice, credentials: { key-auth: { key: k-alice } } }
routes:
  - { id: a, paths: [/a], plugins: { mock: { body: a } } }
  - { id: b, paths: [/b], upstream: u }
  - { id: c, paths: [/c], upstream: u, plugins: { key-auth: {} } }
  - { id: d, paths: [/d], upstream: v, plugins: { traffic-split: { weighted: [{ upstream: v, weight: 1 }] } } }
  - { id: e, paths: [/e], upstream: { nodes: [{ address: "127.0.0.1:11" }] } }
"#;

    fn config(yaml: &str) -> Config {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn entry<'a>(s: &'a Snapshot, id: &str) -> &'a crate::RouteEntry {
        s.router.values().find(|e| &*e.id == id).unwrap()
    }

    /// Which routes kept their compiled chain from `old` to `new`.
    fn kept(old: &Snapshot, new: &Snapshot) -> Vec<String> {
        let mut ids = Vec::new();
        for e in new.router.values() {
            if old.router.values().any(|o| o.id == e.id && o.chain.same(&e.chain)) {
                ids.push(e.id.to_string());
            }
        }
        ids
    }

    fn next(old: &Snapshot, yaml: &str) -> Snapshot {
        compile_next(&config(yaml), "h", Some(old)).unwrap()
    }

    #[test]
    fn an_unchanged_config_reuses_everything() {
        let old = compile(&config(BASE), "h").unwrap();
        // Read again from the text: equal values, other Arcs.
        let new = next(&old, BASE);
        assert_eq!(kept(&old, &new), ["a", "b", "c", "d", "e"]);
        assert!(new.router.shares_index(&old.router));
        for id in ["a", "b", "c", "d", "e"] {
            assert!(Arc::ptr_eq(&entry(&old, id).metrics, &entry(&new, id).metrics), "{id}");
            assert!(Arc::ptr_eq(&entry(&old, id).id, &entry(&new, id).id), "{id}");
        }
        let upstream = |s: &Snapshot, id: &str| entry(s, id).upstream.clone().unwrap();
        assert!(Arc::ptr_eq(&upstream(&old, "b"), &upstream(&new, "b")));
        assert!(
            Arc::ptr_eq(&upstream(&old, "e"), &upstream(&new, "e")),
            "inline upstream kept"
        );
        assert!(Arc::ptr_eq(&old.parts.consumers, &new.parts.consumers));
        assert_eq!(new.upstreams.len(), 3);
    }

    #[test]
    fn a_changed_route_is_compiled_again_and_the_others_kept() {
        let old = compile(&config(BASE), "h").unwrap();
        let new = next(&old, &BASE.replace("body: a", "body: a2"));
        assert_eq!(kept(&old, &new), ["b", "c", "d", "e"]);
        assert!(new.router.shares_index(&old.router), "nothing matches differently");
        assert!(
            Arc::ptr_eq(&entry(&old, "a").metrics, &entry(&new, "a").metrics),
            "same series"
        );

        // A new path: the index is built again; chains are still kept.
        let moved = next(
            &new,
            &BASE
                .replace("body: a", "body: a2")
                .replace("paths: [/b]", "paths: [/b, /b2]"),
        );
        assert!(!moved.router.shares_index(&new.router));
        assert_eq!(kept(&new, &moved), ["a", "c", "d", "e"]);
        let found = moved
            .router
            .find(None, &Method::GET, "/b2", &Default::default())
            .unwrap();
        assert_eq!(&*found.id, "b");

        // Two routes hand each other their paths in one change; the index is updated.
        let swapped = next(
            &moved,
            &BASE
                .replace("body: a", "body: a2")
                .replace("paths: [/b]", "paths: [/x]")
                .replace("paths: [/c]", "paths: [/b]")
                .replace("paths: [/x]", "paths: [/c]"),
        );
        let find = |s: &Snapshot, path: &str| {
            let found = s.router.find(None, &Method::GET, path, &Default::default());
            found.map(|e| e.id.to_string())
        };
        for (path, id) in [("/a", "a"), ("/b", "c"), ("/c", "b"), ("/d", "d"), ("/e", "e")] {
            assert_eq!(find(&swapped, path).as_deref(), Some(id), "{path}");
        }
        assert_eq!(find(&swapped, "/b2"), None);
        assert_eq!(
            find(&moved, "/b2").as_deref(),
            Some("b"),
            "the snapshot updated from is as it was"
        );
    }

    #[test]
    fn routes_found_by_id_when_others_come_and_go() {
        let old = compile(&config(BASE), "h").unwrap();
        let inserted = BASE.replace(
            "  - { id: b,",
            "  - { id: a1, paths: [/a1], plugins: { mock: {} } }\n  - { id: b,",
        );
        let new = next(&old, &inserted);
        assert_eq!(kept(&old, &new), ["a", "b", "c", "d", "e"]);
        assert!(!new.router.shares_index(&old.router), "positions moved");
        for (path, id) in [("/a1", "a1"), ("/b", "b"), ("/e", "e")] {
            let found = new.router.find(None, &Method::GET, path, &Default::default()).unwrap();
            assert_eq!(&*found.id, id);
        }
        let removed = next(
            &new,
            &BASE.replace("  - { id: a, paths: [/a], plugins: { mock: { body: a } } }\n", ""),
        );
        assert_eq!(kept(&new, &removed), ["b", "c", "d", "e"]);
        assert_eq!(removed.route_ids().collect::<Vec<_>>(), ["b", "c", "d", "e"]);
    }

    #[test]
    fn a_changed_upstream_reaches_the_routes_that_use_it() {
        let old = compile(&config(BASE), "h").unwrap();
        let new = next(&old, &BASE.replace("127.0.0.1:9\"", "127.0.0.1:19\""));
        let addr = |s: &Snapshot, id: &str| entry(s, id).upstream.as_ref().unwrap().nodes[0].addr.port();
        assert_eq!((addr(&new, "b"), addr(&new, "c")), (19, 19));
        assert!(Arc::ptr_eq(
            entry(&old, "d").upstream.as_ref().unwrap(),
            entry(&new, "d").upstream.as_ref().unwrap()
        ));
        // Chains that do not read upstreams are kept; traffic-split's is built again.
        assert_eq!(kept(&old, &new), ["a", "b", "c", "e"]);
    }

    #[test]
    fn upstreams_that_name_hosts_are_resolved_again() {
        let yaml = BASE.replace("127.0.0.1:10", "localhost:10");
        let old = compile(&config(&yaml), "h").unwrap();
        let new = next(&old, &yaml);
        let d = |s: &Snapshot| entry(s, "d").upstream.clone().unwrap();
        assert!(!Arc::ptr_eq(&d(&old), &d(&new)));
        assert!(Arc::ptr_eq(
            &entry(&old, "b").upstream.clone().unwrap(),
            &entry(&new, "b").upstream.clone().unwrap()
        ));
    }

    #[test]
    fn a_changed_consumer_rebuilds_the_auth_chains_only() {
        let old = compile(&config(BASE), "h").unwrap();
        let new = next(&old, &BASE.replace("k-alice", "k-alice-2"));
        assert!(!Arc::ptr_eq(&old.parts.consumers, &new.parts.consumers));
        assert_eq!(kept(&old, &new), ["a", "b", "d", "e"]);
    }

    #[test]
    fn changed_global_plugins_rebuild_every_chain() {
        let old = compile(&config(BASE), "h").unwrap();
        let with_global = format!("{BASE}global_plugins: {{ cors: {{}} }}\n");
        let new = next(&old, &with_global);
        assert!(kept(&old, &new).is_empty());
        let again = next(&new, &with_global);
        assert_eq!(kept(&new, &again).len(), 5);
    }

    #[test]
    fn errors_of_a_change_keep_their_location() {
        let old = compile(&config(BASE), "h").unwrap();
        let bad = BASE
            .replace("body: a }", "body: a, status: 42 }")
            .replace("upstream: v, plugins", "upstream: w, plugins");
        let errors = validate_and_compile_next(&config(&bad), "h", Some(&old)).unwrap_err();
        let at: Vec<&str> = errors.0.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(at, ["routes[3].upstream", "routes[0].plugins.mock.status"], "{errors}");
        // A bad path in a route index that is updated, not rebuilt.
        let bad = BASE.replace("paths: [/c]", "paths: [/c, \"/c{\"]");
        let errors = validate_and_compile_next(&config(&bad), "h", Some(&old)).unwrap_err();
        let at: Vec<&str> = errors.0.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(at, ["routes[2].paths[1]"], "{errors}");
    }
}
