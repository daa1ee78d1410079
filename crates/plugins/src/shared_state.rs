//! Plugin state that outlives one compiled config: counters of an unchanged plugin survive a
//! reload because compiling the new config asks [`shared`] for the state of the same
//! (scope, plugin, config hash) and gets the live one back.
//!
//! The registry holds weak references only: once no snapshot uses a state, it is freed, and
//! the next config that asks for it starts fresh (the pattern of `NodeState::shared`).

use sha2::{Digest, Sha256};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

type Registry = Mutex<HashMap<String, Weak<dyn Any + Send + Sync>>>;

/// The state registered under `key` if a live config still holds it, else `make()`'s, registered.
/// Only the control plane calls this (at compile time), never a request.
pub fn shared<T: Any + Send + Sync>(key: String, make: impl FnOnce() -> T) -> Arc<T> {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let mut map = REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
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

/// A registry key for plugin `name` in `scope` (`route:ID`, `global`, `consumer:NAME`) with
/// this YAML config: any change to the plugin's settings gives new state.
pub fn key(name: &str, scope: &str, config: &serde_yaml::Value) -> String {
    let text = serde_yaml::to_string(config).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}\u{0}{scope}\u{0}{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    #[test]
    fn state_lives_while_held() {
        let cfg: serde_yaml::Value = serde_yaml::from_str("{ max: 1 }").expect("yaml");
        let k = key("t", "route:a", &cfg);
        let a = shared(k.clone(), AtomicU32::default);
        a.store(7, Relaxed);
        assert_eq!(shared(k.clone(), AtomicU32::default).load(Relaxed), 7);
        let other: serde_yaml::Value = serde_yaml::from_str("{ max: 2 }").expect("yaml");
        assert_eq!(shared(key("t", "route:a", &other), AtomicU32::default).load(Relaxed), 0);
        drop(a);
        assert_eq!(shared(k, AtomicU32::default).load(Relaxed), 0);
    }
}
