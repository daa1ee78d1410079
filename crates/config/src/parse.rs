//! From YAML text to a [`Config`], collecting every error with its location.
//!
//! Each section and each list item is deserialized on its own, so one bad route does not hide
//! the errors of the next one; `serde_path_to_error` names the field inside the item.

use crate::env::substitute;
use crate::error::{ConfigErrors, join};
use crate::model::{Config, Gateway, PluginMap, Upstream, UpstreamRef};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

const SECTIONS: [&str; 5] = ["gateway", "upstreams", "consumers", "routes", "global_plugins"];

/// Parses a whole file. Structural errors only: cross-references are checked by [`crate::validate`].
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    match yaml(text, env, &mut errors) {
        Some(root) => from_value(root, errors),
        None => Err(errors),
    }
}

/// A file's YAML with `${VAR}` substituted from `env`; `None` when it is not YAML. Errors go
/// to `errors`.
pub fn yaml(text: &str, env: &dyn Fn(&str) -> Option<String>, errors: &mut ConfigErrors) -> Option<Value> {
    let mut root: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            errors.push("", format!("invalid YAML: {e}"));
            return None;
        }
    };
    if root.is_null() {
        root = Value::Mapping(Default::default());
    }
    substitute(&mut root, "", env, errors);
    Some(root)
}

/// The config a file's YAML (from [`yaml`]) describes, adding to the `errors` found so far.
pub fn from_value(root: Value, mut errors: ConfigErrors) -> Result<Config, ConfigErrors> {
    let Value::Mapping(map) = root else {
        errors.push(
            "",
            "the config must be a mapping with gateway, upstreams, consumers, routes, global_plugins",
        );
        return Err(errors);
    };

    let mut config = Config::default();
    for (key, value) in map {
        let Some(key) = key.as_str().map(str::to_owned) else {
            errors.push("", format!("keys must be strings, found {key:?}"));
            continue;
        };
        match key.as_str() {
            "gateway" => {
                if let Some(g) = item::<Gateway>(value, "gateway", &mut errors) {
                    config.gateway = g;
                }
            }
            "upstreams" => config.upstreams = list(value, "upstreams", &mut errors),
            "consumers" => config.consumers = list(value, "consumers", &mut errors),
            "routes" => config.routes = list(value, "routes", &mut errors),
            "global_plugins" => {
                if let Some(p) = item::<PluginMap>(value, "global_plugins", &mut errors) {
                    config.global_plugins = p;
                }
            }
            other => errors.push(
                other,
                format!("unknown section; expected one of {}", SECTIONS.join(", ")),
            ),
        }
    }
    errors.into_result(config)
}

/// Deserializes one value, reporting an error at `location` + the path inside the value.
pub fn item<T: DeserializeOwned>(value: Value, location: &str, errors: &mut ConfigErrors) -> Option<T> {
    if value.is_null() {
        // `routes:` with nothing under it reads as an empty section, not an error.
        return serde_yaml::from_value(Value::Mapping(Default::default()))
            .or_else(|_| serde_yaml::from_value(Value::Sequence(Vec::new())))
            .ok();
    }
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let inner = if inner == "." { String::new() } else { inner };
            let at = if inner.starts_with('[') || inner.is_empty() {
                format!("{location}{inner}")
            } else {
                join(location, &inner)
            };
            errors.push(at, e.into_inner().to_string());
            None
        }
    }
}

fn list<T: DeserializeOwned>(value: Value, location: &str, errors: &mut ConfigErrors) -> Vec<T> {
    match value {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| item(v, &format!("{location}[{i}]"), errors))
            .collect(),
        _ => {
            errors.push(location, "expected a list");
            Vec::new()
        }
    }
}

// === impl UpstreamRef ===

impl<'de> Deserialize<'de> for UpstreamRef {
    /// A string names an upstream; a mapping is an inline upstream (errors keep their path).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UpstreamRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an upstream id or an inline upstream")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UpstreamRef, E> {
                Ok(UpstreamRef::Id(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<UpstreamRef, A::Error> {
                Upstream::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|u| UpstreamRef::Inline(Box::new(u)))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn every_bad_item_is_reported_with_its_path() {
        let text = r#"
routes:
  - { id: a, paths: [/a], upstream: u, pathz: [] }
  - { id: b, paths: [/b], upstream: { nodes: [{ address: "x:1", wieght: 2 }] } }
upstreams:
  - { id: u, nodes: [{ address: "127.0.0.1:1" }], timeout: { connect: soon } }
bogus: 1
"#;
        let errs = parse(text, &no_env).unwrap_err();
        let got: Vec<String> = errs.0.iter().map(|e| e.location.clone()).collect();
        assert_eq!(
            got,
            vec![
                "routes[0].pathz",
                "routes[1].upstream.nodes[0].wieght",
                "upstreams[0].timeout.connect",
                "bogus"
            ],
            "{errs}"
        );
        assert!(errs.0[0].message.contains("pathz"), "{errs}");
        assert!(errs.0[2].message.contains("invalid duration"), "{errs}");
    }

    #[test]
    fn empty_sections_and_inline_upstreams_parse() {
        let text = "routes:\nupstreams: []\nroutes2: x\n";
        assert!(parse(text, &no_env).is_err());
        let c = parse(
            "routes:\n  - { id: r, paths: [/], upstream: { nodes: [{ address: 'h:1' }] } }\n",
            &no_env,
        )
        .expect("parse");
        assert!(matches!(c.routes[0].upstream, Some(UpstreamRef::Inline(_))));
    }
}
