//! One compiled upstream: resolved nodes, host handling, timeouts, retries, its balancer and
//! health checks.

use crate::balancer::Balancer;
use crate::hash_on::HashOn;
use crate::health::{self, HealthCheck, Passive, Probed};
use crate::state::{NodeState, Outcome};
use crate::tls::{NodeTls, TlsClient};
use http::HeaderValue;
use portico_config::{ConfigErrors, PassHost, Scheme, error::join};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// One instance of a service.
#[derive(Debug)]
pub struct Node {
    /// The address as the config wrote it (logged as `upstream_addr`).
    pub address: Arc<str>,
    /// Where connections go, resolved when the config was compiled.
    pub addr: SocketAddr,
    /// The Host header sent with `pass_host: node`.
    pub host_header: HeaderValue,
    pub weight: u32,
    /// TLS settings for `scheme: https | grpcs`.
    pub tls: Option<NodeTls>,
    /// In-flight count, latency and health: shared by workers, kept across reloads.
    pub state: Arc<NodeState>,
}

/// A compiled upstream, shared by every route that names it.
#[derive(Debug)]
pub struct Upstream {
    pub id: Arc<str>,
    pub nodes: Box<[Node]>,
    /// How nodes are spoken to: HTTP/1.1 or HTTP/2 (gRPC), plain or over TLS.
    pub scheme: Scheme,
    pub pass_host: PassHost,
    /// The Host header for `pass_host: rewrite`.
    pub upstream_host: Option<HeaderValue>,
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    pub read_timeout: Duration,
    /// How many other nodes a request may try after the first.
    pub retries: u32,
    /// What `consistent_hash` hashes (default: the client address).
    pub hash_on: HashOn,
    balancer: Balancer,
    passive: Option<Passive>,
    /// Keeps the active checker running while this upstream is in a live snapshot.
    _probed: Option<Arc<Probed>>,
}

impl Upstream {
    /// Compiles `cfg` (already validated), resolving node names; errors go to `location`.
    pub fn compile(
        cfg: &portico_config::Upstream,
        id: &str,
        location: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Arc<Upstream>> {
        let tls_at = join(location, "tls");
        let tls = match cfg.scheme {
            Scheme::Http | Scheme::Grpc => None,
            Scheme::Https => Some(TlsClient::compile(cfg.tls.as_ref(), &[b"http/1.1"], &tls_at, errors)?),
            Scheme::Grpcs => Some(TlsClient::compile(cfg.tls.as_ref(), &[b"h2"], &tls_at, errors)?),
        };
        let mut nodes = Vec::with_capacity(cfg.nodes.len());
        for (i, n) in cfg.nodes.iter().enumerate() {
            let at = format!("{location}.nodes[{i}].address");
            let addr = match resolve(&n.address) {
                Ok(a) => a,
                Err(msg) => {
                    errors.push(at, msg);
                    continue;
                }
            };
            let Ok(host_header) = HeaderValue::from_str(&n.address) else {
                errors.push(at, "not usable as a Host header");
                continue;
            };
            let node_tls = match &tls {
                None => None,
                Some(t) => match t.for_node(cfg.upstream_host.as_deref().unwrap_or(&n.address)) {
                    Ok(nt) => Some(nt),
                    Err(msg) => {
                        errors.push(join(&tls_at, "sni"), msg);
                        continue;
                    }
                },
            };
            let state = NodeState::shared(id, &n.address);
            nodes.push(Node {
                address: n.address.as_str().into(),
                addr,
                host_header,
                weight: n.weight,
                tls: node_tls,
                state,
            });
        }
        let upstream_host = match cfg.upstream_host.as_deref().map(HeaderValue::from_str) {
            Some(Err(_)) => {
                errors.push(join(location, "upstream_host"), "not usable as a Host header");
                None
            }
            other => other.and_then(Result::ok),
        };
        let hash_on = match cfg.hash_on.as_deref().map(str::parse::<HashOn>) {
            None => Some(HashOn::Ip),
            Some(Ok(h)) => Some(h),
            Some(Err(msg)) => {
                errors.push(join(location, "hash_on"), msg);
                None
            }
        };
        let health = health_check(cfg.health_check.as_ref(), &join(location, "health_check"), errors);
        let (Some(hash_on), Some(health)) = (hash_on, health) else {
            return None;
        };
        if nodes.len() != cfg.nodes.len() {
            return None;
        }
        let weighted: Vec<(SocketAddr, u32)> = nodes.iter().map(|n| (n.addr, n.weight)).collect();
        let default_retries = nodes.len().saturating_sub(1) as u32;
        let upstream_id: Arc<str> = id.into();
        let probed = health.active.map(|active| {
            let nodes = nodes
                .iter()
                .map(|n| (n.address.clone(), n.addr, n.state.clone(), n.tls.clone()))
                .collect();
            let probed = Arc::new(Probed {
                upstream: upstream_id.clone(),
                nodes,
                active,
                grpc: matches!(cfg.scheme, Scheme::Grpc | Scheme::Grpcs),
            });
            health::spawn_checker(&probed);
            probed
        });
        Some(Arc::new(Upstream {
            id: upstream_id,
            balancer: Balancer::new(cfg.balancer, &weighted),
            hash_on,
            passive: health.passive,
            _probed: probed,
            nodes: nodes.into(),
            scheme: cfg.scheme,
            pass_host: cfg.pass_host,
            upstream_host,
            connect_timeout: cfg.timeout.connect.get(),
            send_timeout: cfg.timeout.send.get(),
            read_timeout: cfg.timeout.read.get(),
            retries: cfg.retries.unwrap_or(default_retries),
        }))
    }

    /// Picks a healthy node that `tried` does not hold yet and claims it (a half-open circuit
    /// lets one request through); `None` when no node is left. `hash` is the consistent-hash key.
    pub fn pick(&self, hash: &[u8], tried: &[usize]) -> Option<usize> {
        self.pick_at(hash, tried, crate::state::now_us())
    }

    /// [`Upstream::pick`] at `now` (see [`crate::now_us`]).
    pub fn pick_at(&self, hash: &[u8], tried: &[usize], now: u64) -> Option<usize> {
        if self.nodes.len() == 1 {
            return (tried.is_empty() && self.nodes[0].state.admit(now)).then_some(0);
        }
        // Nodes whose half-open circuit's one trial is taken; empty (no allocation) nearly always.
        let mut skip: Vec<usize> = Vec::new();
        loop {
            let i = self
                .balancer
                .pick(&self.nodes, hash, now, |i| !tried.contains(&i) && !skip.contains(&i))?;
            if self.nodes[i].state.admit(now) {
                return Some(i);
            }
            // Its half-open circuit's one trial is taken: another node.
            skip.push(i);
        }
    }

    /// Feeds what happened on node `i` to passive health (when configured): a connect failure
    /// or timeout (`status: None`), or the response status.
    pub fn report(&self, i: usize, status: Option<u16>) {
        let Some(p) = &self.passive else { return };
        let outcome = match status {
            Some(s) if !p.unhealthy_statuses.contains(&s) => Outcome::Success,
            _ => Outcome::Failure,
        };
        let node = &self.nodes[i];
        if let Some(what) = node
            .state
            .report(outcome, p.failures, p.cooldown.0, crate::state::now_us())
        {
            tracing::warn!(target: "portico::health", upstream = %self.id, node = %node.address, "{what}");
        }
    }

    /// Whether this upstream hashes requests onto nodes (so the proxy computes a key).
    pub fn hashes(&self) -> bool {
        matches!(self.balancer, Balancer::ConsistentHash(..))
    }
}

/// Parses and checks `health_check`; `None` (with errors pushed) when it is invalid.
fn health_check(value: Option<&serde_yaml::Value>, location: &str, errors: &mut ConfigErrors) -> Option<HealthCheck> {
    let Some(value) = value else {
        return Some(HealthCheck::default());
    };
    let parsed: HealthCheck = match serde_path_to_error::deserialize(value.clone()) {
        Ok(h) => h,
        Err(e) => {
            let path = e.path().to_string();
            errors.push(
                if path == "." {
                    location.to_owned()
                } else {
                    join(location, &path)
                },
                e.into_inner().to_string(),
            );
            return None;
        }
    };
    let problems = parsed.check();
    for (path, msg) in &problems {
        errors.push(join(location, path), msg.clone());
    }
    problems.is_empty().then_some(parsed)
}

/// `IP:PORT` directly, or `NAME:PORT` through the system resolver (first address).
fn resolve(address: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = address.parse() {
        return Ok(a);
    }
    address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {address:?}: no address"))
}
