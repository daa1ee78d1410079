//! Plugin state that outlives one compiled config: counters of an unchanged plugin survive a
//! reload because compiling the new config asks [`shared`] (the registry node health uses
//! too) for the state of the same (scope, plugin, config hash) and gets the live one back.

pub use portico_upstream::registry::shared;
use sha2::{Digest, Sha256};

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
