//! The compiled, immutable form of a config that requests read: router, upstreams, chains.
//!
//! Built once per config by the control plane ([`compile`]); a request holds one snapshot from
//! start to end, so a reload never changes the rules under a request in flight.
//!
//! A reload compiles against the snapshot it replaces ([`compile_next`]) and takes over what
//! did not change instead of building it again, so one changed route among 10,000 costs about
//! what one route costs: a named upstream whose definition is equal (unless it names files or
//! host names, which are read and resolved again), the consumers' index when no consumer
//! changed, the global plugins, each route's chain and metric handles when its definition
//! and everything its plugins read are equal, and the whole route index when every route is
//! where it was and matches as it did. Equal means equal definitions (the same `Arc`, or
//! equal values), never a guess; anything else is compiled as from scratch.

use crate::metrics::RouteMetrics;
use crate::tls::{self, TlsSet};
use http::{HeaderName, HeaderValue, Method};
use portico_config::{Config, ConfigErrors, UpstreamRef, error::join};
use portico_plugins::chain::{Compiled, compile_plugins};
use portico_plugins::plugin::Needs;
use portico_plugins::{BuildEnv, Chain, Consumers, compile_chain, consumers};
use portico_router::{RouteDef, Router, Source};
use portico_upstream::Upstream;
use reuse::{Previous, same, same_all, same_routing};
use std::collections::HashMap;
use std::sync::Arc;

mod reuse;

/// What a matched route needs at request time.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub id: Arc<str>,
    pub upstream: Option<Arc<Upstream>>,
    pub chain: Chain,
    /// This route's metric handles (the same series across reloads).
    pub metrics: Arc<RouteMetrics>,
}

/// One compiled configuration.
#[derive(Debug)]
pub struct Snapshot {
    pub router: Router<RouteEntry>,
    /// SHA-256 of the config text it came from, and of the TLS files it read.
    pub hash: String,
    /// Every compiled upstream, named and inline, for reports (metrics, health).
    pub upstreams: Vec<Arc<Upstream>>,
    /// Every route id, in config order.
    pub route_ids: Vec<Arc<str>>,
    /// The TLS listeners' certificates.
    pub tls: TlsSet,
    /// The validated config this was compiled from, for the admin API to show.
    pub config: Arc<Config>,
    /// What the next config's compile may take over.
    parts: Parts,
}

/// The compiled parts a snapshot has besides its routes.
#[derive(Debug)]
struct Parts {
    /// The named upstreams, in `config.upstreams` order.
    named: Vec<Arc<Upstream>>,
    consumers: Arc<Consumers>,
    global: Compiled,
}

impl Snapshot {
    pub fn route_ids(&self) -> impl Iterator<Item = &str> {
        self.route_ids.iter().map(|id| &**id)
    }
}

/// Validates and compiles `config`, reporting every error at once: what `portico validate`,
/// a reload and an admin API write all check before a config may serve.
pub fn validate_and_compile(config: &Config, hash: &str) -> Result<Snapshot, ConfigErrors> {
    validate_and_compile_next(config, hash, None)
}

/// [`validate_and_compile`], reusing from `previous` what did not change ([`compile_next`]).
pub fn validate_and_compile_next(
    config: &Config,
    hash: &str,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, ConfigErrors> {
    validated(config, hash, previous, Serve::Yes)
}

/// Validates and compiles `config` as a reload would, for a config that does not serve here
/// (`portico push` checks a file for other nodes): no metric series are made for its routes.
pub fn check(config: &Config) -> Result<(), ConfigErrors> {
    check_next(config, None)
}

/// [`check`], taking from `previous` (the snapshot being served) what `config` did not change,
/// as [`compile_next`] does: an admin API write to one resource of 10,000 compiles that one,
/// not every route again. The errors are the same as [`check`]'s: what is taken over was
/// valid in `previous` in the same surroundings.
pub fn check_next(config: &Config, previous: Option<&Snapshot>) -> Result<(), ConfigErrors> {
    validated(config, "", previous, Serve::No).map(drop)
}

/// Whether a compiled config is to serve requests here (and so needs its routes' metrics).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serve {
    Yes,
    No,
}

fn validated(config: &Config, hash: &str, previous: Option<&Snapshot>, serve: Serve) -> Result<Snapshot, ConfigErrors> {
    let mut errors = portico_config::validate::validate(config);
    match build(config, hash, previous, serve) {
        Ok(snapshot) if errors.is_empty() => Ok(snapshot),
        Ok(_) => Err(errors),
        Err(compile_errors) if errors.is_empty() => Err(compile_errors),
        Err(compile_errors) => {
            // On a config that already failed validation, compiling also trips over what
            // validation reported (an unknown upstream, say); keep only what validation
            // cannot see: plugins, credentials, path patterns, hash keys, health checks and
            // TLS certificate files.
            errors.0.extend(compile_errors.0.into_iter().filter(|e| {
                [
                    "plugins",
                    ".credentials",
                    ".paths[",
                    ".hash_on",
                    ".health_check",
                    ".tls.",
                ]
                .iter()
                .any(|p| e.location.contains(p))
            }));
            Err(errors)
        }
    }
}

/// Compiles a validated config; every error is reported with its location.
pub fn compile(config: &Config, hash: &str) -> Result<Snapshot, ConfigErrors> {
    compile_next(config, hash, None)
}

/// [`compile`], taking from `previous` (the snapshot being served) what `config` did not
/// change: see the module documentation. The result is the same as compiling from scratch,
/// save that reused parts keep their state (balancer position, health checks, plugin state).
pub fn compile_next(config: &Config, hash: &str, previous: Option<&Snapshot>) -> Result<Snapshot, ConfigErrors> {
    build(config, hash, previous, Serve::Yes)
}

fn build(config: &Config, hash: &str, previous: Option<&Snapshot>, serve: Serve) -> Result<Snapshot, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let tls = tls::compile(&config.gateway.listeners, &mut errors);
    let prev = previous.map(Previous::new);
    let old_config = prev.as_ref().map(|p| &*p.snapshot.config);
    let redis_same = old_config.is_some_and(|c| c.gateway.redis == config.gateway.redis);

    let mut named = Vec::with_capacity(config.upstreams.len());
    let mut upstreams: HashMap<&str, Arc<Upstream>> = HashMap::with_capacity(config.upstreams.len());
    // Whether the id → upstream map is the previous one: every upstream reused, none added.
    let mut upstreams_same = old_config.is_some_and(|c| c.upstreams.len() == config.upstreams.len());
    for (i, u) in config.upstreams.iter().enumerate() {
        let compiled = match prev.as_ref().and_then(|p| p.upstream(i, u)) {
            Some(kept) => Some(kept),
            None => {
                upstreams_same = false;
                Upstream::compile(u, &u.id, &format!("upstreams[{i}]"), &mut errors)
            }
        };
        if let Some(compiled) = compiled {
            upstreams.insert(&u.id, compiled.clone());
            named.push(compiled);
        }
    }

    // Consumers first: the auth plugins of every chain look credentials up in them.
    let redis = config.gateway.redis.clone();
    let consumers_same = redis_same && old_config.is_some_and(|c| same_all(&c.consumers, &config.consumers));
    let consumers = match &prev {
        Some(p) if consumers_same => p.snapshot.parts.consumers.clone(),
        _ => {
            let for_consumers = BuildEnv {
                redis: redis.clone(),
                ..BuildEnv::default()
            };
            consumers::compile_with(&config.consumers, &mut errors, &for_consumers)
        }
    };
    let mut env = BuildEnv {
        consumers: consumers.clone(),
        upstreams: upstreams.iter().map(|(id, u)| (id.to_string(), u.clone())).collect(),
        scope: "global".into(),
        redis,
    };
    // Whether plugins that need these parts of `env` may be kept.
    let all_same = consumers_same && upstreams_same && redis_same;
    let env_same = |plugins: &portico_config::PluginMap| {
        all_same || {
            let needs = Needs::of_map(plugins);
            (!needs.consumers || consumers_same) && (!needs.upstreams || upstreams_same) && (!needs.redis || redis_same)
        }
    };

    let mut all_upstreams = named.clone();
    let global_same =
        old_config.is_some_and(|c| c.global_plugins == config.global_plugins) && env_same(&config.global_plugins);
    let global = match &prev {
        Some(p) if global_same => p.snapshot.parts.global.clone(),
        _ => compile_plugins(&config.global_plugins, "global_plugins", &mut errors, &env),
    };

    let mut entries = Vec::with_capacity(config.routes.len());
    // Whether every route is where it was and matches as it did: then the index is kept.
    // Where each route's match conditions come from: the previous route of its id when they
    // are the same (its index entries are kept), else its own (indexed anew).
    let mut sources = Vec::with_capacity(if prev.is_some() { config.routes.len() } else { 0 });
    let mut reindexed = 0;
    // Errors of the new conditions, reported if the index is derived (a fresh build finds
    // them again).
    let mut source_errors = ConfigErrors::default();
    // Whether every route is where it was, matching as before: the index is kept whole.
    let mut in_place = old_config.is_some_and(|c| c.routes.len() == config.routes.len());
    for (i, r) in config.routes.iter().enumerate() {
        let old = prev.as_ref().and_then(|p| p.route(i, &r.id));
        let same_def = old.as_ref().is_some_and(|o| same(o.def, r));
        match &old {
            Some(o) if same_routing(o.def, r) => {
                in_place &= o.index == i;
                sources.push(Source::Kept(o.index));
            }
            _ => {
                in_place = false;
                reindexed += 1;
                if prev.is_some() {
                    sources.push(Source::New(route_def(i, r, &mut source_errors)));
                }
            }
        }
        let at = || format!("routes[{i}]");
        let upstream = match &r.upstream {
            None => None,
            Some(UpstreamRef::Id(id)) => upstreams.get(id.as_str()).cloned(),
            Some(UpstreamRef::Inline(u)) => {
                let inline = match &old {
                    Some(o) if same_def && reuse::upstream_reusable(u) => o.entry.upstream.clone(),
                    _ => Upstream::compile(u, &r.id, &join(&at(), "upstream"), &mut errors),
                };
                all_upstreams.extend(inline.clone());
                inline
            }
        };
        let entry = match old {
            Some(o) if same_def && global_same && env_same(&r.plugins) => RouteEntry {
                upstream,
                ..o.entry.clone()
            },
            _ => {
                // Stateful plugins (rate-limit, limit-conn) find their state of the last
                // config by route.
                env.scope = format!("route:{}", r.id).into();
                let chain = compile_chain(&global, &r.plugins, &join(&at(), "plugins"), &mut errors, &env);
                // A route's metric series are its id's, whatever else changed.
                let (id, metrics) = match old {
                    Some(o) => (o.entry.id.clone(), o.entry.metrics.clone()),
                    None if serve == Serve::No => (r.id.as_str().into(), RouteMetrics::unrouted().clone()),
                    None => (r.id.as_str().into(), RouteMetrics::new(&r.id)),
                };
                RouteEntry {
                    id,
                    upstream,
                    chain,
                    metrics,
                }
            }
        };
        entries.push(entry);
    }
    let route_ids = entries.iter().map(|e| e.id.clone()).collect();

    let router = match prev {
        Some(p) if in_place => match p.snapshot.router.with_values(entries) {
            Ok(router) => Some(router),
            Err(entries) => build_router(config, entries, &mut errors),
        },
        // Beyond a few new or changed routes, building afresh costs no more than deriving.
        Some(p) if reindexed <= 16.max(entries.len() / 16) => {
            errors.extend(source_errors);
            let routes = sources.into_iter().zip(entries).collect();
            router_or_errors(p.snapshot.router.derive(routes), &mut errors)
        }
        // A config only checked needs the errors an index would find, not the index.
        _ if serve == Serve::No => check_routes(config, &mut errors),
        _ => build_router(config, entries, &mut errors),
    };
    match router {
        Some(router) if errors.is_empty() => Ok(Snapshot {
            router,
            hash: tls.fold_hash(hash),
            tls,
            upstreams: all_upstreams,
            route_ids,
            config: Arc::new(config.clone()),
            parts: Parts {
                named,
                consumers,
                global,
            },
        }),
        _ => Err(errors),
    }
}

/// Indexes every route's match conditions afresh.
fn build_router(config: &Config, entries: Vec<RouteEntry>, errors: &mut ConfigErrors) -> Option<Router<RouteEntry>> {
    let mut table = Vec::with_capacity(entries.len());
    for ((i, r), entry) in config.routes.iter().enumerate().zip(entries) {
        table.push((route_def(i, r, errors), entry));
    }
    router_or_errors(Router::new(table), errors)
}

/// What [`build_router`] finds wrong with the routes, and an empty router.
fn check_routes(config: &Config, errors: &mut ConfigErrors) -> Option<Router<RouteEntry>> {
    let defs: Vec<RouteDef> = config
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| route_def(i, r, errors))
        .collect();
    let found = portico_router::check(&defs);
    router_or_errors(
        if found.is_empty() {
            Ok(Router::default())
        } else {
            Err(found)
        },
        errors,
    )
}

/// The match conditions of route number `i`.
fn route_def(i: usize, r: &portico_config::Route, errors: &mut ConfigErrors) -> RouteDef {
    RouteDef {
        hosts: r.hosts.clone(),
        paths: r.paths.clone(),
        methods: r
            .methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .collect(),
        headers: r
            .headers
            .iter()
            .filter_map(|(n, v)| {
                let name = HeaderName::from_bytes(n.as_bytes()).ok()?;
                match HeaderValue::from_str(v) {
                    Ok(value) => Some((name, value)),
                    Err(_) => {
                        errors.push(format!("routes[{i}].headers.{n}"), "invalid header value");
                        None
                    }
                }
            })
            .collect(),
        priority: r.priority,
    }
}

/// The router, or its errors located in the config.
fn router_or_errors(
    router: Result<Router<RouteEntry>, Vec<portico_router::RouteError>>,
    errors: &mut ConfigErrors,
) -> Option<Router<RouteEntry>> {
    match router {
        Ok(r) => Some(r),
        Err(route_errors) => {
            for e in route_errors {
                let at = match e.path {
                    Some(p) => format!("routes[{}].paths[{p}]", e.route),
                    None => format!("routes[{}]", e.route),
                };
                errors.push(at, e.message);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check, check_next, validate_and_compile};
    use portico_config::Config;

    fn parse(text: &str) -> Config {
        portico_config::parse::parse(text, &|_| None).unwrap()
    }

    #[test]
    fn a_check_finds_what_a_compile_finds() {
        let config: Config = portico_config::parse::parse(
            r#"
gateway: { listeners: [{ address: "127.0.0.1:1" }] }
routes:
  - { id: a, paths: [/a, "b", "/c/{x}{y}"], plugins: { mock: {} } }
  - { id: b, paths: [], hosts: ["*.*"], plugins: { mock: {} } }
  - { id: c, paths: [/c], headers: { x-a: "bad\u0001" }, plugins: { mock: { status: 999 } } }
  - { id: d, paths: [/d], upstream: nope }
"#,
            &|_| None,
        )
        .unwrap();
        let compiled = validate_and_compile(&config, "").unwrap_err();
        let checked = check(&config).unwrap_err();
        assert_eq!(checked, compiled);
        assert!(compiled.0.len() >= 5, "{compiled}");

        let good: Config = portico_config::parse::parse(
            "gateway: { listeners: [{ address: \"127.0.0.1:1\" }] }\nroutes: [{ id: a, paths: [/a, \"/b/{x}\"], plugins: { mock: {} } }]\n",
            &|_| None,
        )
        .unwrap();
        check(&good).unwrap();
    }

    #[test]
    fn a_check_against_the_live_snapshot_finds_what_a_fresh_check_finds() {
        const HEAD: &str = r#"
gateway: { listeners: [{ address: "127.0.0.1:1" }] }
"#;
        let live_config = parse(&format!(
            r#"{HEAD}
upstreams: [{{ id: u, nodes: [{{ address: "127.0.0.1:9" }}] }}]
consumers: [{{ username: alice, credentials: {{ key-auth: {{ key: alice-key }} }} }}]
routes:
  - {{ id: a, paths: [/a], upstream: u, plugins: {{ key-auth: {{}} }} }}
  - {{ id: b, paths: [/b], plugins: {{ mock: {{}} }} }}
"#
        ));
        let live = validate_and_compile(&live_config, "").unwrap();
        let many: String = (0..40)
            .map(|i| format!("  - {{ id: n{i}, paths: [/n{i}], plugins: {{ mock: {{}} }} }}\n"))
            .collect();
        let mut found = Vec::new();
        for edit in [
            // Unchanged, a body changed, a bad plugin field, a bad path, the upstream gone, the
            // consumer gone, a route added with a bad path, many routes added.
            "upstreams: [{ id: u, nodes: [{ address: \"127.0.0.1:9\" }] }]\nroutes:\n  - { id: a, paths: [/a], upstream: u, plugins: { key-auth: {} } }\n  - { id: b, paths: [/b], plugins: { mock: {} } }\n".to_owned(),
            "upstreams: [{ id: u, nodes: [{ address: \"127.0.0.1:9\" }] }]\nroutes:\n  - { id: a, paths: [/a], upstream: u }\n  - { id: b, paths: [/b], plugins: { mock: { body: x } } }\n".to_owned(),
            "upstreams: [{ id: u, nodes: [{ address: \"127.0.0.1:9\" }] }]\nroutes:\n  - { id: a, paths: [/a], upstream: u }\n  - { id: b, paths: [/b], plugins: { mock: { bogus: 1 } } }\n".to_owned(),
            "upstreams: [{ id: u, nodes: [{ address: \"127.0.0.1:9\" }] }]\nroutes:\n  - { id: a, paths: [a], upstream: u }\n  - { id: b, paths: [/b], plugins: { mock: {} } }\n".to_owned(),
            "routes:\n  - { id: a, paths: [/a], upstream: u }\n  - { id: b, paths: [/b], plugins: { mock: {} } }\n".to_owned(),
            "upstreams: [{ id: u, nodes: [{ address: \"127.0.0.1:9\" }] }]\nconsumers: []\nroutes:\n  - { id: a, paths: [/a], upstream: u, plugins: { key-auth: {} } }\n".to_owned(),
            "upstreams: [{ id: u, nodes: [{ address: \"127.0.0.1:9\" }] }]\nroutes:\n  - { id: c, paths: [\"/c/{x}{y}\"] }\n  - { id: a, paths: [/a], upstream: u }\n".to_owned(),
            format!("upstreams: [{{ id: u, nodes: [{{ address: \"127.0.0.1:9\" }}] }}]\nroutes:\n  - {{ id: z, paths: [z] }}\n{many}"),
        ] {
            let mut text = format!("{HEAD}{edit}");
            if !edit.contains("consumers") {
                text.push_str("consumers: [{ username: alice, credentials: { key-auth: { key: alice-key } } }]\n");
            }
            let next = parse(&text);
            let checked = check(&next);
            assert_eq!(check_next(&next, Some(&live)), checked, "{text}");
            found.push(checked.is_ok());
        }
        assert_eq!(found, [true, true, false, false, false, true, false, false]);
    }
}
