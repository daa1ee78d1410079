//! Health checks: the `health_check` config, and the active checker that probes each node.
//!
//! Passive checks (the circuit breaker) live in [`crate::state::NodeState::report`], fed by
//! the proxy with every response; the active checker runs on its own thread, so probes never
//! compete with requests for a worker.

use crate::grpc_health;
use crate::state::NodeState;
use crate::tls::NodeTls;
use portico_config::Duration;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default)]
    pub active: Option<Active>,
    #[serde(default)]
    pub passive: Option<Passive>,
}

/// `GET path` on every node each `interval`; `healthy` / `unhealthy` results in a row flip it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Active {
    /// What HTTP nodes are asked (`GET`); gRPC nodes are asked the gRPC health check instead.
    #[serde(default = "root")]
    pub path: String,
    #[serde(default = "two_seconds")]
    pub interval: Duration,
    #[serde(default = "one_second")]
    pub timeout: Duration,
    #[serde(default = "two")]
    pub healthy: u32,
    #[serde(default = "three")]
    pub unhealthy: u32,
}

/// Responses with `unhealthy_statuses`, and connect failures or timeouts, count as failures;
/// `failures` in a row eject the node for `cooldown`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passive {
    #[serde(default = "server_errors")]
    pub unhealthy_statuses: Vec<u16>,
    #[serde(default = "three")]
    pub failures: u32,
    #[serde(default = "ten_seconds")]
    pub cooldown: Duration,
}

fn root() -> String {
    "/".into()
}
fn two_seconds() -> Duration {
    Duration::from_secs(2)
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn server_errors() -> Vec<u16> {
    vec![500, 502, 503, 504]
}

impl HealthCheck {
    /// Checks values the types cannot: errors are `(path inside health_check, message)`.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if let Some(a) = &self.active {
            if !a.path.starts_with('/') || a.path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                errs.push((
                    "active.path".into(),
                    format!("{:?} must be a path starting with /", a.path),
                ));
            }
            if a.interval.0.is_zero() || a.timeout.0.is_zero() {
                errs.push(("active".into(), "interval and timeout must be more than 0".into()));
            }
            if a.healthy == 0 || a.unhealthy == 0 {
                errs.push(("active".into(), "healthy and unhealthy must be at least 1".into()));
            }
        }
        if let Some(p) = &self.passive {
            if p.failures == 0 {
                errs.push(("passive.failures".into(), "must be at least 1".into()));
            }
            if let Some(s) = p.unhealthy_statuses.iter().find(|s| !(100..=599).contains(*s)) {
                errs.push((
                    "passive.unhealthy_statuses".into(),
                    format!("{s} is not an HTTP status"),
                ));
            }
        }
        errs
    }
}

/// What the checker needs of one upstream; dropped with the snapshot, which ends its checker.
#[derive(Debug)]
pub struct Probed {
    pub upstream: Arc<str>,
    pub nodes: Vec<ProbedNode>,
    pub active: Active,
    /// A gRPC upstream: probed with the gRPC health check over HTTP/2, not `GET path`.
    pub grpc: bool,
}

/// A node's address as written, where to connect, its state, and its TLS settings.
pub type ProbedNode = (Arc<str>, SocketAddr, Arc<NodeState>, Option<NodeTls>);

static ACTIVE_CHECKS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets compiled upstreams start their active checkers. `portico run` calls this; `validate`
/// does not, so checking a config never sends a probe.
pub fn enable_active_checks() {
    ACTIVE_CHECKS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Starts probing `target` until it is dropped (once active checks are enabled).
pub fn spawn_checker(target: &Arc<Probed>) {
    if !ACTIVE_CHECKS.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let weak = Arc::downgrade(target);
    match checker_runtime() {
        Some(rt) => drop(rt.spawn(check_loop(weak))),
        None => tracing::error!(target: "portico::health", upstream = %target.upstream, "active checks cannot run"),
    }
}

/// One small runtime thread for every health check of the process (`None` if it cannot start).
fn checker_runtime() -> Option<&'static tokio::runtime::Handle> {
    static HANDLE: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new().name("portico-health".into()).spawn(move || {
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => {
                        let _ = tx.send(Some(rt.handle().clone()));
                        rt.block_on(std::future::pending::<()>());
                    }
                    Err(e) => {
                        tracing::error!(target: "portico::health", error = %e, "cannot start the health-check runtime");
                        let _ = tx.send(None);
                    }
                }
            });
            thread.ok().and_then(|_| rx.recv().ok().flatten())
        })
        .as_ref()
}

async fn check_loop(target: Weak<Probed>) {
    let interval = match target.upgrade() {
        Some(t) => t.active.interval.0,
        None => return,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(t) = target.upgrade() else { return };
        let probes = t.nodes.iter().enumerate().map(|(i, (address, addr, state, _))| {
            let t = t.clone();
            let (address, addr, state) = (address.clone(), *addr, state.clone());
            async move {
                let tls = t.nodes[i].3.as_ref();
                let result = probe(addr, &address, tls, t.grpc, &t.active).await;
                state.note_probe(result.as_ref().err().map(String::as_str));
                if let Some(up) = state.report_active(result.is_ok(), t.active.healthy, t.active.unhealthy) {
                    if up {
                        tracing::info!(target: "portico::health", upstream = %t.upstream, node = %address, "node healthy again (active check)");
                    } else {
                        let why = result.err().unwrap_or_default();
                        tracing::warn!(target: "portico::health", upstream = %t.upstream, node = %address, reason = %why, "node unhealthy (active check)");
                    }
                }
            }
        });
        for p in probes.collect::<Vec<_>>() {
            tokio::spawn(p);
        }
    }
}

/// One `GET path` with `Connection: close` (over TLS for a TLS node, verified as requests
/// are); a 2xx or 3xx status within the timeout is healthy. A gRPC node is asked the gRPC
/// health check instead (see [`crate::grpc_health`]).
async fn probe(addr: SocketAddr, host: &str, tls: Option<&NodeTls>, grpc: bool, active: &Active) -> Result<(), String> {
    let attempt = async {
        let s = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        match (tls, grpc) {
            (None, false) => exchange(s, host, active).await,
            (None, true) => grpc_health::check(s, host, false).await,
            (Some(tls), grpc) => {
                let s = tokio_rustls::TlsConnector::from(tls.config.clone())
                    .connect(tls.name.clone(), s)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                if grpc {
                    grpc_health::check(s, host, true).await
                } else {
                    exchange(s, host, active).await
                }
            }
        }
    };
    match tokio::time::timeout(active.timeout.0, attempt).await {
        Ok(r) => r,
        Err(_) => Err("timed out".into()),
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, host: &str, active: &Active) -> Result<(), String> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portico-health-check\r\nConnection: close\r\n\r\n",
        active.path
    );
    s.write_all(req.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let line = std::str::from_utf8(&buf[..n]).unwrap_or_default();
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(s) if (200..400).contains(&s) => Ok(()),
        Some(s) => Err(format!("status {s}")),
        None => Err("not an HTTP response".into()),
    }
}
