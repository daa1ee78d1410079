//! One stored document: JSON in the shape the YAML file writes, decoded into the config model
//! with the same strictness (unknown keys are errors), and the file side that produces them.

use crate::layout::{Key, Kind};
use portico_config::{Consumer, PluginMap, Route, Upstream};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A decoded resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Upstream(Arc<Upstream>),
    Consumer(Arc<Consumer>),
    Route(Arc<Route>),
    GlobalPlugins(PluginMap),
}

/// Decodes the document stored at `key`. The document's own id, when it gives one, must be
/// the key's; when it leaves it out, the key's id is taken.
pub fn decode(key: &Key, bytes: &[u8]) -> Result<(Value, Resource), String> {
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    if let Some(field) = key.kind.id_field() {
        let Value::Object(map) = &mut value else {
            return Err("expected a JSON object".into());
        };
        match map.get(field) {
            None => {
                map.insert(field.to_owned(), Value::String(key.id.clone()));
            }
            Some(Value::String(id)) if *id == key.id => {}
            Some(other) => return Err(format!("{field} {other} does not match the key's {:?}", key.id)),
        }
    }
    let resource = match key.kind {
        Kind::Upstream => Resource::Upstream(typed(&value)?),
        Kind::Consumer => Resource::Consumer(typed(&value)?),
        Kind::Route => Resource::Route(typed(&value)?),
        Kind::GlobalPlugins => Resource::GlobalPlugins(typed(&value)?),
    };
    Ok((value, resource))
}

fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

/// The documents of a file's tree ([`portico_config::parse::tree`], already substituted). What
/// is not a list of resources is left to the config's own checks.
pub fn from_tree(root: &Value) -> BTreeMap<Key, &Value> {
    let mut docs = BTreeMap::new();
    let Value::Object(map) = root else {
        return docs;
    };
    for kind in [Kind::Upstream, Kind::Consumer, Kind::Route] {
        let Some(Value::Array(items)) = map.get(kind.section()) else {
            continue;
        };
        for item in items {
            let id = kind
                .id_field()
                .and_then(|f| item.get(f))
                .and_then(Value::as_str)
                .unwrap_or_default();
            docs.insert(Key::new(kind, id), item);
        }
    }
    match map.get("global_plugins") {
        Some(Value::Object(m)) if m.is_empty() => {}
        Some(Value::Null) | None => {}
        Some(value) => {
            docs.insert(Key::global_plugins(), value);
        }
    }
    docs
}

/// A document as push writes it: compact JSON, keys sorted (what a node's state keeps, so an
/// unchanged document compares equal byte for byte), appended to `out`. (Into a buffer:
/// `Value`'s `Display` makes a formatter call per token, several times slower.)
pub fn write_text(value: &Value, out: &mut Vec<u8>) {
    // A JSON tree, whose keys are strings, always serializes.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_decodes_with_the_models_strictness() {
        let key = Key::new(Kind::Route, "a");
        let (value, res) = decode(&key, br#"{"paths": ["/a"], "upstream": "u"}"#).unwrap();
        assert_eq!(value["id"], "a");
        let Resource::Route(r) = res else { panic!("not a route") };
        assert_eq!(r.id, "a");

        let err = decode(&key, br#"{"id": "a", "paths": ["/a"], "pathz": 1}"#).unwrap_err();
        assert!(err.contains("pathz"), "{err}");
        let err = decode(&key, br#"{"id": "b", "paths": ["/a"]}"#).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        let err = decode(&key, b"{not json").unwrap_err();
        assert!(err.contains("invalid JSON"), "{err}");
        let err = decode(
            &Key::new(Kind::Upstream, "u"),
            br#"{"nodes": [{"address": "h:1", "weight": "x"}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("nodes[0].weight"), "{err}");
    }

    #[test]
    fn a_file_gives_one_document_per_resource() {
        let yaml = r#"
gateway: { listeners: [{ address: "127.0.0.1:1" }] }
upstreams: [{ id: u, nodes: [{ address: "h:1" }], timeout: { connect: 1s } }]
consumers: [{ username: alice, credentials: { key-auth: { key: k } } }]
routes: [{ id: r, paths: [/r], upstream: u }]
global_plugins: {}
"#;
        let mut errors = portico_config::ConfigErrors::default();
        let root = portico_config::parse::tree(yaml, &|_| None, &mut errors).unwrap();
        assert!(errors.is_empty(), "{errors}");
        let docs: BTreeMap<Key, String> = from_tree(&root)
            .into_iter()
            .map(|(k, v)| {
                let mut out = Vec::new();
                write_text(v, &mut out);
                (k, String::from_utf8(out).unwrap())
            })
            .collect();
        let keys: Vec<String> = docs.keys().map(ToString::to_string).collect();
        assert_eq!(keys, ["upstream u", "consumer alice", "route r"]);
        assert_eq!(
            docs[&Key::new(Kind::Upstream, "u")],
            r#"{"id":"u","nodes":[{"address":"h:1"}],"timeout":{"connect":"1s"}}"#
        );
        for (key, text) in &docs {
            let (value, _) = decode(key, text.as_bytes()).unwrap();
            assert_eq!(value.to_string(), *text, "the text a node keeps is the text pushed");
        }
    }
}
