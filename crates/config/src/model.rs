//! The configuration as the YAML file writes it. Every struct rejects unknown keys.

use crate::units::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Plugin name → that plugin's own config, typed and checked by the plugin itself.
pub type PluginMap = BTreeMap<String, serde_yaml::Value>;

/// A whole configuration file.
///
/// Resources are shared (`Arc`): a config built from another (a reload, an admin write, the
/// cluster store's documents) shares what did not change, so copying one is cheap and the
/// compiler can tell an unchanged resource by pointer before comparing by value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub gateway: Gateway,
    #[serde(default)]
    pub upstreams: Vec<Arc<Upstream>>,
    #[serde(default)]
    pub consumers: Vec<Arc<Consumer>>,
    #[serde(default)]
    pub routes: Vec<Arc<Route>>,
    #[serde(default)]
    pub global_plugins: PluginMap,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub admin: Option<Admin>,
    #[serde(default)]
    pub access_log: AccessLog,
    #[serde(default)]
    pub redis: Option<Redis>,
    #[serde(default)]
    pub config_store: ConfigStore,
    /// How long in-flight requests may take to finish on SIGTERM. Default 10s.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Duration,
    /// Request-serving threads. Default: the number of CPUs.
    #[serde(default)]
    pub workers: Option<usize>,
    /// OpenTelemetry tracing; off when absent.
    #[serde(default)]
    pub tracing: Option<Tracing>,
}

impl Default for Gateway {
    fn default() -> Self {
        Self {
            listeners: Vec::new(),
            admin: None,
            access_log: AccessLog::default(),
            redis: None,
            config_store: ConfigStore::default(),
            shutdown_timeout: default_shutdown_timeout(),
            workers: None,
            tracing: None,
        }
    }
}

fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// `IP:PORT` to bind.
    pub address: String,
    #[serde(default)]
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub certificates: Vec<Certificate>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub address: String,
    pub api_key: String,
}

/// `gateway.tracing`: spans exported over OTLP/HTTP (protobuf) to a collector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    /// The collector's OTLP/HTTP traces URL, `http://HOST:PORT/v1/traces`.
    pub endpoint: String,
    /// The `service.name` resource attribute. Default `portico`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of new traces recorded, 0.0 to 1.0 (a request that arrives with a `traceparent`
    /// follows its sampled flag). Default 1.0.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    #[serde(default)]
    pub batch: TracingBatch,
}

/// How spans are batched for export.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracingBatch {
    /// Most spans in one export request. Default 512.
    #[serde(default = "default_batch_max_spans")]
    pub max_spans: usize,
    /// Longest a finished span waits before it is sent. Default 1s.
    #[serde(default = "default_batch_delay")]
    pub delay: Duration,
    /// Spans waiting for export, per worker; past this, new spans are dropped (and counted).
    /// Default 4096.
    #[serde(default = "default_batch_queue")]
    pub queue: usize,
    /// How long one export request may take. Default 5s.
    #[serde(default = "default_batch_timeout")]
    pub timeout: Duration,
}

impl Default for TracingBatch {
    fn default() -> Self {
        Self {
            max_spans: default_batch_max_spans(),
            delay: default_batch_delay(),
            queue: default_batch_queue(),
            timeout: default_batch_timeout(),
        }
    }
}

fn default_service_name() -> String {
    "portico".into()
}
fn default_sample_ratio() -> f64 {
    1.0
}
fn default_batch_max_spans() -> usize {
    512
}
fn default_batch_delay() -> Duration {
    Duration::from_secs(1)
}
fn default_batch_queue() -> usize {
    4096
}
fn default_batch_timeout() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    /// `stdout`, `stderr`, `off` or a file path. Default `stdout`.
    #[serde(default = "default_log_path")]
    pub path: String,
    /// Only `json` for now.
    #[serde(default = "default_log_format")]
    pub format: String,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self {
            path: default_log_path(),
            format: default_log_format(),
        }
    }
}

fn default_log_path() -> String {
    "stdout".into()
}
fn default_log_format() -> String {
    "json".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    /// One Redis server (`redis://[user:pass@]host:port[/db]`); with `cluster: true`, a seed node.
    #[serde(default)]
    pub url: Option<String>,
    /// Seed nodes of a Redis Cluster (implies `cluster: true`).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Talk the Redis Cluster protocol (slots, `MOVED`/`ASK` redirects). Default false.
    #[serde(default)]
    pub cluster: bool,
}

impl Redis {
    /// Every URL given, `url` first.
    pub fn all_urls(&self) -> impl Iterator<Item = &String> {
        self.url.iter().chain(&self.urls)
    }

    /// Whether the cluster protocol is used: asked for, or implied by `urls`.
    pub fn is_cluster(&self) -> bool {
        self.cluster || !self.urls.is_empty()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigStore {
    #[serde(rename = "type", default)]
    pub kind: StoreKind,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    /// etcd only: where the last applied config is kept for a start while etcd is down.
    /// Default: beside the config file.
    #[serde(default)]
    pub cache: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    #[default]
    File,
    Etcd,
}

/// A named set of nodes that serve one service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Required for top-level upstreams; inline upstreams take their route's id.
    #[serde(default)]
    pub id: String,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub balancer: Balancer,
    #[serde(default)]
    pub hash_on: Option<String>,
    #[serde(default)]
    pub scheme: Scheme,
    #[serde(default)]
    pub pass_host: PassHost,
    #[serde(default)]
    pub upstream_host: Option<String>,
    #[serde(default)]
    pub timeout: Timeouts,
    /// Other nodes tried after a connect failure. Default: one less than the number of nodes.
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub health_check: Option<serde_yaml::Value>,
    /// TLS to the nodes of a `scheme: https | grpcs` upstream.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
}

/// How the gateway speaks TLS to an upstream's nodes. Files are PEM, read when the config is
/// compiled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// CA certificates that the nodes' certificates must chain to. Default: the system roots.
    #[serde(default)]
    pub ca: Option<String>,
    /// Client certificate chain for mTLS (with `key`).
    #[serde(default)]
    pub cert: Option<String>,
    /// The client certificate's private key (with `cert`).
    #[serde(default)]
    pub key: Option<String>,
    /// The name sent as SNI and checked against the node's certificate. Default:
    /// `upstream_host` with `pass_host: rewrite`, else the node's host.
    #[serde(default)]
    pub sni: Option<String>,
    /// `false` accepts any certificate (testing only: it gives up the point of TLS).
    #[serde(default = "yes")]
    pub verify: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// `HOST:PORT`.
    pub address: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    #[default]
    RoundRobin,
    ConsistentHash,
    LeastConnections,
    Ewma,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    #[default]
    Http,
    Https,
    Grpc,
    Grpcs,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PassHost {
    /// The client's Host header.
    #[default]
    Pass,
    /// The chosen node's address.
    Node,
    /// `upstream_host`.
    Rewrite,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "default_connect")]
    pub connect: Duration,
    #[serde(default = "default_io")]
    pub send: Duration,
    #[serde(default = "default_io")]
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: default_connect(),
            send: default_io(),
            read: default_io(),
        }
    }
}

fn default_connect() -> Duration {
    Duration::from_secs(2)
}
fn default_io() -> Duration {
    Duration::from_secs(30)
}

/// A caller known to the gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    pub username: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub credentials: PluginMap,
    #[serde(default)]
    pub plugins: PluginMap,
}

/// Where a route sends its requests: an upstream id or an inline upstream.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum UpstreamRef {
    Id(String),
    Inline(Box<Upstream>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub id: String,
    /// Exact hosts or `*.suffix` wildcards; none = any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Exact paths, `{param}` segments, trailing `/*` prefixes.
    pub paths: Vec<String>,
    /// None = any method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Exact header value matches.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub upstream: Option<UpstreamRef>,
    #[serde(default)]
    pub plugins: PluginMap,
}

fn yes() -> bool {
    true
}
