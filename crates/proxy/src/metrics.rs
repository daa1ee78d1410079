//! Prometheus metrics: the process-wide families, and their text rendering for `GET /metrics`.
//!
//! Every family lives in one registry for the life of the process, so a reload that keeps a
//! route id keeps its series (compiling asks the family for the same labels and gets the same
//! counters back). Labels come from the config only (route, upstream and node ids) or from
//! small closed sets (method class, status code, plugin name), never from what a client sends.
//! Series of routes and upstreams the running config no longer has are left out of the output.
//!
//! Requests record through the handles a [`RouteMetrics`] resolved at compile time: plain
//! atomics, no label lookup, no lock. Node health and in-flight counts are read from the live
//! node state when the page is rendered.

use crate::server::Running;
use crate::snapshot::Snapshot;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

pub use crate::metrics_route::{METHODS, RouteMetrics, Sample, method_class};

/// Latency buckets, in seconds: from half a millisecond (a pooled local upstream) to 30 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The families, registered once.
pub(crate) struct Families {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub bytes_received: IntCounterVec,
    pub bytes_sent: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub auth_failures: IntCounterVec,
    reloads: IntCounterVec,
    config_info: IntGaugeVec,
    node_healthy: IntGaugeVec,
    node_inflight: IntGaugeVec,
    pub spans_exported: IntCounter,
    pub spans_dropped: IntCounter,
    pub span_export_failures: IntCounter,
    /// Rendering resets and refills the node gauges: one page at a time.
    render: Mutex<()>,
}

/// The process-wide families.
pub(crate) fn families() -> &'static Families {
    static FAMILIES: OnceLock<Families> = OnceLock::new();
    FAMILIES.get_or_init(Families::new)
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric definition");
    registry
        .register(Box::new(vec.clone()))
        .expect("a metric registered once");
    vec
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let vec = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric definition");
    registry
        .register(Box::new(vec.clone()))
        .expect("a metric registered once");
    vec
}

fn histogram_vec(registry: &Registry, name: &str, help: &str) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let vec = HistogramVec::new(opts, &["route"]).expect("a valid metric definition");
    registry
        .register(Box::new(vec.clone()))
        .expect("a metric registered once");
    vec
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("a valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("a metric registered once");
    c
}

impl Families {
    fn new() -> Self {
        let r = Registry::new();
        Families {
            requests: counter_vec(
                &r,
                "portico_http_requests_total",
                "Requests answered, by route, method class and status code.",
                &["route", "method", "status"],
            ),
            duration: histogram_vec(
                &r,
                "portico_http_request_duration_seconds",
                "Time from the request head to the last byte of the response, by route.",
            ),
            upstream_duration: histogram_vec(
                &r,
                "portico_upstream_duration_seconds",
                "Time from the first upstream attempt to the response head, by route.",
            ),
            bytes_received: counter_vec(
                &r,
                "portico_bytes_received_total",
                "Request body bytes forwarded to upstreams, as the client's Content-Length declares (chunked bodies are not counted), by route.",
                &["route"],
            ),
            bytes_sent: counter_vec(
                &r,
                "portico_bytes_sent_total",
                "Response body bytes sent to clients, by route.",
                &["route"],
            ),
            rate_limited: counter_vec(
                &r,
                "portico_rate_limit_rejections_total",
                "Requests refused with 429 by rate-limit, by route.",
                &["route"],
            ),
            auth_failures: counter_vec(
                &r,
                "portico_auth_failures_total",
                "Requests refused by an authentication or authorization plugin, by route and plugin.",
                &["route", "plugin"],
            ),
            reloads: counter_vec(
                &r,
                "portico_config_reloads_total",
                "Config reloads, by result (success or failure).",
                &["result"],
            ),
            config_info: gauge_vec(
                &r,
                "portico_config_info",
                "Always 1; the label holds the SHA-256 of the config being served.",
                &["hash"],
            ),
            node_healthy: gauge_vec(
                &r,
                "portico_upstream_node_healthy",
                "1 when the node may take requests (not down by active checks, not ejected), else 0.",
                &["upstream", "node"],
            ),
            node_inflight: gauge_vec(
                &r,
                "portico_upstream_node_inflight",
                "Requests sent to the node still waiting for its response head.",
                &["upstream", "node"],
            ),
            spans_exported: counter(
                &r,
                "portico_tracing_spans_exported_total",
                "Spans the collector accepted.",
            ),
            spans_dropped: counter(
                &r,
                "portico_tracing_spans_dropped_total",
                "Spans dropped: the export queue was full, or the collector refused them or was unreachable.",
            ),
            span_export_failures: counter(
                &r,
                "portico_tracing_export_failures_total",
                "Export requests that failed (collector unreachable, slow, or not answering 2xx).",
            ),
            registry: r,
            render: Mutex::new(()),
        }
    }
}

/// Counts one reload: `applied` true when the new config is serving, false when it was refused.
pub fn count_reload(applied: bool) {
    let result = if applied { "success" } else { "failure" };
    families().reloads.with_label_values(&[result]).inc();
}

/// The metrics page in the Prometheus text format (`text/plain; version=0.0.4`).
pub fn render(running: &Running) -> String {
    render_snapshot(&running.snapshot())
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn render_snapshot(snapshot: &Snapshot) -> String {
    let f = families();
    let _one_at_a_time = f.render.lock().unwrap_or_else(|e| e.into_inner());

    f.config_info.reset();
    f.config_info.with_label_values(&[snapshot.hash.as_str()]).set(1);
    f.node_healthy.reset();
    f.node_inflight.reset();
    let now = portico_upstream::now_us();
    let mut upstreams: HashSet<&str> = HashSet::new();
    for up in &snapshot.upstreams {
        upstreams.insert(&up.id);
        for node in up.nodes.iter() {
            let labels = [&*up.id, &*node.address];
            let healthy: IntGauge = f.node_healthy.with_label_values(&labels);
            healthy.set(i64::from(node.state.is_healthy(now)));
            let inflight = node.state.inflight.load(std::sync::atomic::Ordering::Relaxed);
            f.node_inflight.with_label_values(&labels).set(i64::from(inflight));
        }
    }
    let mut routes: HashSet<&str> = snapshot.route_ids().collect();
    routes.insert("");

    let mut families = f.registry.gather();
    for family in &mut families {
        keep_live(family, &routes);
    }
    // The encoder refuses a family left with no series.
    families.retain(|family| !family.get_metric().is_empty());
    let mut out = Vec::with_capacity(16 * 1024);
    // Encoding into a Vec fails only on a malformed family, which the registry never holds.
    let _ = prometheus::TextEncoder::new().encode(&families, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Leaves out the series of routes the running config no longer has (their counters stay in
/// memory and carry on if the route comes back).
fn keep_live(family: &mut MetricFamily, routes: &HashSet<&str>) {
    let metrics = family.mut_metric();
    metrics.retain(|m| {
        m.get_label()
            .iter()
            .find(|l| l.name() == "route")
            .is_none_or(|l| routes.contains(l.value()))
    });
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
