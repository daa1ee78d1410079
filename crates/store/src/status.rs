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

impl Detail {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Called with the new detail after every change (to feed `/healthz`).
pub type Subscriber = Box<dyn Fn(&Detail) + Send + Sync>;

/// Shared between the node's sync loop and whoever reports on it.
pub struct Status {
    detail: Mutex<Detail>,
    subscribers: Mutex<Vec<Subscriber>>,
}

impl Status {
    pub fn new(prefix: &str, serving_from: Source, revision: i64) -> Self {
        Status {
            detail: Mutex::new(Detail {
                store: "etcd",
                prefix: prefix.to_owned(),
                connected: serving_from == Source::Etcd,
                serving_from,
                revision,
                error: None,
            }),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    pub fn detail(&self) -> Detail {
        self.detail.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Calls `f` now and after every change.
    pub fn subscribe(&self, f: impl Fn(&Detail) + Send + Sync + 'static) {
        f(&self.detail());
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(f));
    }

    /// The same as JSON, for `/healthz`.
    pub fn to_json(&self) -> serde_json::Value {
        self.detail().to_json()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Detail)) {
        let now = {
            let mut d = self.detail.lock().unwrap_or_else(|e| e.into_inner());
            let before = d.clone();
            f(&mut d);
            (*d != before).then(|| d.clone())
        };
        if let Some(now) = now {
            for s in self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                s(&now);
            }
        }
    }
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Status").field(&self.detail()).finish()
    }
}
