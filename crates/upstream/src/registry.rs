//! State that outlives one compiled config: a node's health, a rate limiter's counters.
//!
//! Compiling a config asks [`shared`] for the state under a key (an upstream and node
//! address, a plugin's scope and settings) and gets the live one back if a snapshot still
//! holds it, so a reload keeps the state of everything it does not change. The registry
//! holds weak references only: once no snapshot uses a state it is freed, and the next config
//! that asks for it starts fresh. Only the control plane calls this, never a request.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

type Registry = Mutex<HashMap<String, Weak<dyn Any + Send + Sync>>>;

fn registry() -> std::sync::MutexGuard<'static, HashMap<String, Weak<dyn Any + Send + Sync>>> {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The state registered under `key` if a live config still holds it, else `make()`'s, registered.
pub fn shared<T: Any + Send + Sync>(key: String, make: impl FnOnce() -> T) -> Arc<T> {
    let mut map = registry();
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(existing) = map.get(&key).and_then(Weak::upgrade)
        && let Ok(typed) = existing.downcast::<T>()
    {
        return typed;
    }
    let fresh = Arc::new(make());
    let erased: Arc<dyn Any + Send + Sync> = fresh.clone();
    map.insert(key, Arc::downgrade(&erased));
    fresh
}

/// The state registered under `key` if a live config still holds it; never creates one
/// (the admin API reads node health through this).
pub fn get<T: Any + Send + Sync>(key: &str) -> Option<Arc<T>> {
    registry().get(key).and_then(Weak::upgrade)?.downcast::<T>().ok()
}
