//! The compiled, immutable form of a config that requests read: router, upstreams, chains.
//!
//! Built once per config by the control plane ([`compile`]); a request holds one snapshot from
//! start to end, so a reload never changes the rules under a request in flight.

use crate::metrics::RouteMetrics;
use crate::tls::{self, TlsSet};
use http::{HeaderName, HeaderValue, Method};
use portico_config::{Config, ConfigErrors, UpstreamRef, error::join};
use portico_plugins::{BuildEnv, Chain, chain::compile_plugins, compile_chain, consumers};
use portico_router::{RouteDef, Router};
use portico_upstream::Upstream;
use std::collections::HashMap;
use std::sync::Arc;

/// What a matched route needs at request time.
#[derive(Debug)]
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
}

impl Snapshot {
    pub fn route_ids(&self) -> impl Iterator<Item = &str> {
        self.route_ids.iter().map(|id| &**id)
    }
}

/// Validates and compiles `config`, reporting every error at once: what `portico validate`,
/// a reload and an admin API write all check before a config may serve.
pub fn validate_and_compile(config: &Config, hash: &str) -> Result<Snapshot, ConfigErrors> {
    let mut errors = portico_config::validate::validate(config);
    match compile(config, hash) {
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
    let mut errors = ConfigErrors::default();
    let tls = tls::compile(&config.gateway.listeners, &mut errors);

    let mut upstreams: HashMap<&str, Arc<Upstream>> = HashMap::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        if let Some(compiled) = Upstream::compile(u, &u.id, &format!("upstreams[{i}]"), &mut errors) {
            upstreams.insert(&u.id, compiled);
        }
    }

    // Consumers first: the auth plugins of every chain look credentials up in them.
    let redis = config.gateway.redis.clone();
    let for_consumers = BuildEnv {
        redis: redis.clone(),
        ..BuildEnv::default()
    };
    let mut env = BuildEnv {
        consumers: consumers::compile_with(&config.consumers, &mut errors, &for_consumers),
        upstreams: upstreams.iter().map(|(id, u)| (id.to_string(), u.clone())).collect(),
        scope: "global".into(),
        redis,
    };

    let mut all_upstreams: Vec<Arc<Upstream>> = (config.upstreams.iter())
        .filter_map(|u| upstreams.get(u.id.as_str()).cloned())
        .collect();
    let global = compile_plugins(&config.global_plugins, "global_plugins", &mut errors, &env);

    let mut table = Vec::with_capacity(config.routes.len());
    for (i, r) in config.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        let upstream = match &r.upstream {
            None => None,
            Some(UpstreamRef::Id(id)) => upstreams.get(id.as_str()).cloned(),
            Some(UpstreamRef::Inline(u)) => {
                let inline = Upstream::compile(u, &r.id, &join(&at, "upstream"), &mut errors);
                all_upstreams.extend(inline.clone());
                inline
            }
        };
        // Stateful plugins (rate-limit, limit-conn) find their state of the last config by route.
        env.scope = format!("route:{}", r.id).into();
        let chain = compile_chain(&global, &r.plugins, &join(&at, "plugins"), &mut errors, &env);
        let def = RouteDef {
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
                            errors.push(format!("{at}.headers.{n}"), "invalid header value");
                            None
                        }
                    }
                })
                .collect(),
            priority: r.priority,
        };
        table.push((
            def,
            RouteEntry {
                id: r.id.as_str().into(),
                upstream,
                chain,
                metrics: RouteMetrics::new(&r.id),
            },
        ));
    }

    let router = match Router::new(table) {
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
    };
    match router {
        Some(router) if errors.is_empty() => Ok(Snapshot {
            router,
            hash: tls.fold_hash(hash),
            tls,
            upstreams: all_upstreams,
            route_ids: config.routes.iter().map(|r| r.id.as_str().into()).collect(),
            config: Arc::new(config.clone()),
        }),
        _ => Err(errors),
    }
}
