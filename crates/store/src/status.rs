//! How a node stands with its store, for the logs and the admin `/healthz` detail.

use serde::Serialize;
use std::sync::Mutex;

/// Where the config being served came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Etcd,
    /// The local cache: etcd was unreachable (or held an invalid config) at start.
    Cache,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    /// Always `etcd`.
    pub store: &'static str,
    pub prefix: String,
    /// Whether the node is watching etcd now.
    pub connected: bool,
    pub serving_from: Source,
    /// The etcd revision of the config being served (0: from a cache of unknown age).
    pub revision: i64,
    /// The last problem: etcd unreachable, a config refused. Cleared by the next success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Shared between the node's sync loop and whoever reports on it.
#[derive(Debug)]
pub struct Status(Mutex<Detail>);

impl Status {
    pub fn new(prefix: &str, serving_from: Source, revision: i64) -> Self {
        Status(Mutex::new(Detail {
            store: "etcd",
            prefix: prefix.to_owned(),
            connected: serving_from == Source::Etcd,
            serving_from,
            revision,
            error: None,
        }))
    }

    pub fn detail(&self) -> Detail {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The same as JSON, for `/healthz`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.detail()).unwrap_or_default()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Detail)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}
