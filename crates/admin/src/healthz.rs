//! `GET /healthz`: 200 while the gateway serves, with detail that other parts of the gateway
//! can add to (the etcd store says "serving cached config, store unreachable" here).

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Facts `/healthz` reports under `detail`, by name. Cloning shares them: hand a clone to
/// whatever has something to say, keep one for the admin API.
///
/// ```
/// let health = portico_admin::Health::default();
/// health.set("config_store", serde_json::json!({
///     "state": "unreachable",
///     "serving": "cached config, store unreachable",
/// }));
/// health.remove("config_store"); // once it is reachable again
/// ```
#[derive(Debug, Clone, Default)]
pub struct Health {
    detail: Arc<Mutex<BTreeMap<String, Value>>>,
}

impl Health {
    /// Sets (or replaces) one named fact.
    pub fn set(&self, name: &str, value: Value) {
        self.lock().insert(name.to_owned(), value);
    }

    /// Sets one named fact from anything serializable (`null` if it cannot be).
    pub fn set_from<T: serde::Serialize + ?Sized>(&self, name: &str, value: &T) {
        self.set(name, serde_json::to_value(value).unwrap_or(Value::Null));
    }

    /// Removes a fact that no longer holds.
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Every fact now, as a JSON object.
    pub fn detail(&self) -> Value {
        Value::Object(
            self.lock()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<_, _>>(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Value>> {
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }
}
