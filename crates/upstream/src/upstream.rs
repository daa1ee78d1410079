//! One compiled upstream: resolved nodes, host handling, timeouts, retries, and its balancer.

use crate::round_robin::RoundRobin;
use http::HeaderValue;
use portico_config::{ConfigErrors, PassHost, error::join};
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
}

/// A compiled upstream, shared by every route that names it.
#[derive(Debug)]
pub struct Upstream {
    pub id: Arc<str>,
    pub nodes: Box<[Node]>,
    pub pass_host: PassHost,
    /// The Host header for `pass_host: rewrite`.
    pub upstream_host: Option<HeaderValue>,
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    pub read_timeout: Duration,
    /// How many other nodes a request may try after the first.
    pub retries: u32,
    balancer: RoundRobin,
}

impl Upstream {
    /// Compiles `cfg` (already validated), resolving node names; errors go to `location`.
    pub fn compile(
        cfg: &portico_config::Upstream,
        id: &str,
        location: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Arc<Upstream>> {
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
            nodes.push(Node {
                address: n.address.as_str().into(),
                addr,
                host_header,
                weight: n.weight,
            });
        }
        let upstream_host = match cfg.upstream_host.as_deref().map(HeaderValue::from_str) {
            Some(Err(_)) => {
                errors.push(join(location, "upstream_host"), "not usable as a Host header");
                None
            }
            other => other.and_then(Result::ok),
        };
        if nodes.len() != cfg.nodes.len() {
            return None;
        }
        let weights: Vec<u32> = nodes.iter().map(|n| n.weight).collect();
        let default_retries = nodes.len().saturating_sub(1) as u32;
        Some(Arc::new(Upstream {
            id: id.into(),
            balancer: RoundRobin::new(&weights),
            nodes: nodes.into(),
            pass_host: cfg.pass_host,
            upstream_host,
            connect_timeout: cfg.timeout.connect.get(),
            send_timeout: cfg.timeout.send.get(),
            read_timeout: cfg.timeout.read.get(),
            retries: cfg.retries.unwrap_or(default_retries),
        }))
    }

    /// Picks a node that `tried` does not hold yet; `None` when no node is left.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        if self.nodes.len() == 1 {
            return tried.is_empty().then_some(0);
        }
        self.balancer.next(|i| !tried.contains(&i))
    }
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
