//! From YAML text to a [`Config`], collecting every error with its location.
//!
//! Each section and each list item is deserialized on its own, so one bad route does not hide
//! the errors of the next one; `serde_path_to_error` names the field inside the item.

use crate::env::substitute;
use crate::error::{ConfigErrors, join};
use crate::model::{Config, Gateway, PluginMap, Upstream, UpstreamRef};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

const SECTIONS: [&str; 5] = ["gateway", "upstreams", "consumers", "routes", "global_plugins"];

/// Parses a whole file. Structural errors only: cross-references are checked by [`crate::validate`].
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    match tree(text, env, &mut errors) {
        Some(root) => from_tree(&root, errors),
        None => Err(errors),
    }
}

/// A file's YAML as a JSON tree ([`crate::tree`]) with `${VAR}` substituted from `env`;
/// `None` when it is not YAML JSON can hold. Errors go to `errors`.
pub fn tree(text: &str, env: &dyn Fn(&str) -> Option<String>, errors: &mut ConfigErrors) -> Option<Value> {
    let (mut root, vars) = match crate::tree::from_yaml_noting_vars(text) {
        Ok(v) => v,
        Err(e) => {
            errors.push("", format!("invalid YAML: {e}"));
            return None;
        }
    };
    if root.is_null() {
        root = Value::Object(Default::default());
    }
    if vars {
        substitute(&mut root, "", env, errors);
    }
    Some(root)
}

/// The config a file's tree (from [`tree`]) describes, adding to the `errors` found so far.
/// Sections are read in the order of [`SECTIONS`], then any unknown one.
pub fn from_tree(root: &Value, mut errors: ConfigErrors) -> Result<Config, ConfigErrors> {
    let Value::Object(map) = root else {
        errors.push(
            "",
            "the config must be a mapping with gateway, upstreams, consumers, routes, global_plugins",
        );
        return Err(errors);
    };

    let mut config = Config::default();
    if let Some(value) = map.get("gateway")
        && let Some(g) = item::<Gateway>(value, "gateway", &mut errors)
    {
        config.gateway = g;
    }
    if let Some(value) = map.get("upstreams") {
        config.upstreams = list(value, "upstreams", &mut errors);
    }
    if let Some(value) = map.get("consumers") {
        config.consumers = list(value, "consumers", &mut errors);
    }
    if let Some(value) = map.get("routes") {
        config.routes = list(value, "routes", &mut errors);
    }
    if let Some(value) = map.get("global_plugins")
        && let Some(p) = item::<PluginMap>(value, "global_plugins", &mut errors)
    {
        config.global_plugins = p;
    }
    for key in map.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
        errors.push(
            key.as_str(),
            format!("unknown section; expected one of {}", SECTIONS.join(", ")),
        );
    }
    errors.into_result(config)
}

/// Deserializes one value, reporting an error at `location` + the path inside the value.
pub fn item<T: DeserializeOwned>(value: &Value, location: &str, errors: &mut ConfigErrors) -> Option<T> {
    if value.is_null() {
        // `routes:` with nothing under it reads as an empty section, not an error.
        return serde_json::from_value(Value::Object(Default::default()))
            .or_else(|_| serde_json::from_value(Value::Array(Vec::new())))
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

fn list<T: DeserializeOwned>(value: &Value, location: &str, errors: &mut ConfigErrors) -> Vec<T> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.iter().enumerate() {
                match T::deserialize(v) {
                    Ok(t) => out.push(t),
                    // The location is written out only for an item in error.
                    Err(_) => out.extend(item(v, &format!("{location}[{i}]"), errors)),
                }
            }
            out
        }
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
                "upstreams[0].timeout.connect",
                "routes[0].pathz",
                "routes[1].upstream.nodes[0].wieght",
                "bogus"
            ],
            "{errs}"
        );
        assert!(errs.0[1].message.contains("pathz"), "{errs}");
        assert!(errs.0[0].message.contains("invalid duration"), "{errs}");
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
