//! What a write would make of the live config, checked before any store sees it.
//!
//! A PUT's body is parsed with the same per-item deserialization as the YAML file
//! ([`portico_config::parse::item`]: unknown fields refused, every error located), masked
//! secrets sent back unchanged are restored ([`crate::mask::restore`]), and the whole config
//! that would result is checked as a reload would compile it ([`portico_proxy::check_next`],
//! against the live snapshot, so only what the write changes is compiled again): a
//! route naming a missing upstream, or an upstream deleted while a route still uses it, is
//! refused with every error. No environment substitution: `${NAME}` in a body is kept as
//! written, so a write can never read the gateway's environment. Errors are located by
//! resource, `routes/r1.upstream`, like the admin API's paths.

use crate::kind::Kind;
use crate::mask;
use portico_config::{Config, ConfigErrors, Consumer, Route, Upstream, parse};
use portico_proxy::Snapshot;
use serde_json::Value;
use std::sync::Arc;

/// A write that passed: the config it makes, and the item to store (`None` for a delete).
#[derive(Debug)]
pub struct Proposal {
    pub config: Config,
    pub item: Option<Value>,
    /// The item did not exist before.
    pub created: bool,
}

/// Why a write cannot be made.
#[derive(Debug, PartialEq, Eq)]
pub enum EditError {
    /// 400 with every error.
    Invalid(ConfigErrors),
    /// 404: nothing to delete.
    NotFound(String),
}

/// Characters allowed in an id written through the admin API: ids become URL segments and
/// store keys, where `/`, `%` and spaces would be ambiguous.
pub fn id_is_writable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~@:+".contains(&b))
}

/// The live config with `kind`/`id` created or replaced by `body`, validated and compiled.
pub fn put(live: &Snapshot, kind: Kind, id: &str, mut body: Value) -> Result<Proposal, EditError> {
    let current = &*live.config;
    let at = format!("{kind}/{id}");
    let invalid = |location: &str, message: String| {
        let mut e = ConfigErrors::default();
        e.push(location, message);
        EditError::Invalid(e)
    };
    if !id_is_writable(id) {
        return Err(invalid(
            &at,
            "an id written through the admin API uses letters, digits and - _ . ~ @ : + (at most 256)".into(),
        ));
    }
    let Value::Object(fields) = &mut body else {
        return Err(invalid(
            &at,
            format!("expected a JSON object (a {} as in the YAML)", kind.singular()),
        ));
    };
    match fields.get(kind.id_field()) {
        None => {
            fields.insert(kind.id_field().into(), Value::String(id.into()));
        }
        Some(Value::String(s)) if s == id => {}
        Some(other) => {
            return Err(invalid(
                &format!("{at}.{}", kind.id_field()),
                format!("{other} does not match the id in the path ({id:?})"),
            ));
        }
    }

    let position = kind.position(current, id);
    let mut errors = ConfigErrors::default();
    // The stored item, plain and masked, is what a masked value sent back is restored from;
    // making it masks the whole config, so only a body holding a masked value needs it (or
    // the walk that restores it).
    if holds_mask(&body) {
        let (old, old_masked) = position.map_or((None, None), |i| stored_item(current, kind, i));
        mask::restore(&mut body, old.as_ref(), old_masked.as_ref(), &at, &mut errors);
    }
    if !errors.is_empty() {
        return Err(EditError::Invalid(errors));
    }

    let mut config = current.clone();
    match kind {
        Kind::Routes => place(
            &mut config.routes,
            position,
            parse::item::<Arc<Route>>(&body, &at, &mut errors),
        ),
        Kind::Upstreams => place(
            &mut config.upstreams,
            position,
            parse::item::<Arc<Upstream>>(&body, &at, &mut errors),
        ),
        Kind::Consumers => place(
            &mut config.consumers,
            position,
            parse::item::<Arc<Consumer>>(&body, &at, &mut errors),
        ),
    }
    if !errors.is_empty() {
        return Err(EditError::Invalid(errors));
    }
    check(&config, Some(live)).map_err(EditError::Invalid)?;
    Ok(Proposal {
        config,
        item: Some(body),
        created: position.is_none(),
    })
}

/// The live config without `kind`/`id`, validated and compiled (nothing may still use it).
pub fn delete(live: &Snapshot, kind: Kind, id: &str) -> Result<Proposal, EditError> {
    let current = &*live.config;
    let Some(i) = kind.position(current, id) else {
        return Err(EditError::NotFound(format!("no {} {id:?}", kind.singular())));
    };
    let mut config = current.clone();
    match kind {
        Kind::Routes => drop(config.routes.remove(i)),
        Kind::Upstreams => drop(config.upstreams.remove(i)),
        Kind::Consumers => drop(config.consumers.remove(i)),
    }
    check(&config, Some(live)).map_err(|found| {
        let mut errors = ConfigErrors::default();
        errors.push(
            format!("{kind}/{id}"),
            "cannot be deleted: the config without it would be invalid",
        );
        errors.extend(found);
        EditError::Invalid(errors)
    })?;
    Ok(Proposal {
        config,
        item: None,
        created: false,
    })
}

/// Validates and compiles a whole config, errors located by resource id (`routes/r1.upstream`).
/// What did not change from `live` (the snapshot being served) is taken from it, not compiled
/// again.
pub fn check(config: &Config, live: Option<&Snapshot>) -> Result<(), ConfigErrors> {
    // Checked, not compiled to serve: no metric series are made for routes of a config that
    // may never be applied.
    match portico_proxy::check_next(config, live) {
        Ok(_) => Ok(()),
        Err(mut errors) => {
            for e in &mut errors.0 {
                e.location = by_id(config, &e.location);
            }
            Err(errors)
        }
    }
}

/// The stored item at `i` as JSON, and as a read shows it (masked within the whole config, so
/// that secrets reused across items are masked the same way).
fn stored_item(current: &Config, kind: Kind, i: usize) -> (Option<Value>, Option<Value>) {
    let Ok(mut whole) = serde_json::to_value(current) else {
        return (None, None);
    };
    let old = whole.get(kind.section()).and_then(|s| s.get(i)).cloned();
    mask::config(&mut whole);
    let masked = whole.get(kind.section()).and_then(|s| s.get(i)).cloned();
    (old, masked)
}

/// Whether any string in `v` holds a masked value.
fn holds_mask(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains(mask::MASK),
        Value::Array(items) => items.iter().any(holds_mask),
        Value::Object(map) => map.values().any(holds_mask),
        _ => false,
    }
}

fn place<T>(list: &mut Vec<T>, position: Option<usize>, item: Option<T>) {
    match (item, position) {
        (Some(item), Some(i)) => list[i] = item,
        (Some(item), None) => list.push(item),
        (None, _) => {}
    }
}

/// `routes[2].upstream` → `routes/ID.upstream`, for the three resource sections.
fn by_id(config: &Config, location: &str) -> String {
    for kind in Kind::ALL {
        let Some(rest) = location.strip_prefix(kind.section()).and_then(|r| r.strip_prefix('[')) else {
            continue;
        };
        let Some((index, tail)) = rest.split_once(']') else {
            continue;
        };
        let ids = kind.ids(config);
        if let Some(id) = index
            .parse::<usize>()
            .ok()
            .and_then(|i| ids.get(i))
            .filter(|id| !id.is_empty())
        {
            return format!("{kind}/{id}{tail}");
        }
    }
    location.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The live snapshot a write is checked against.
    fn base() -> Snapshot {
        let config = portico_config::parse::parse(
            r#"
gateway: { listeners: [{ address: "127.0.0.1:8080" }] }
upstreams:
  - { id: users, nodes: [{ address: "127.0.0.1:9001" }] }
  - { id: spare, nodes: [{ address: "127.0.0.1:9002" }] }
consumers:
  - { username: alice, credentials: { key-auth: { key: alice-secret-key } } }
routes:
  - { id: r1, paths: [/users], upstream: users }
"#,
            &|_| None,
        )
        .expect("parses");
        portico_proxy::validate_and_compile(&config, "").expect("compiles")
    }

    fn errors(r: Result<Proposal, EditError>) -> Vec<String> {
        match r {
            Err(EditError::Invalid(e)) => e.0.iter().map(ToString::to_string).collect(),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_put_creates_or_replaces_and_fills_the_id() {
        let cfg = base();
        let p = put(
            &cfg,
            Kind::Routes,
            "r2",
            json!({ "paths": ["/b"], "upstream": "spare" }),
        )
        .expect("valid");
        assert!(p.created);
        assert_eq!(p.config.routes[1].id, "r2");
        assert_eq!(p.item.expect("item")["id"], "r2");

        let p = put(
            &cfg,
            Kind::Routes,
            "r1",
            json!({ "id": "r1", "paths": ["/x"], "upstream": "users" }),
        )
        .expect("valid");
        assert!(!p.created);
        assert_eq!(p.config.routes.len(), 1);
        assert_eq!(p.config.routes[0].paths, vec!["/x"]);
    }

    #[test]
    fn every_error_is_located_by_id() {
        let cfg = base();
        let errs = errors(put(
            &cfg,
            Kind::Routes,
            "r2",
            json!({ "paths": ["/b"], "upstream": "nope", "methods": ["FETCH"] }),
        ));
        assert_eq!(
            errs,
            vec![
                "routes/r2.methods[0]: unknown method \"FETCH\"",
                "routes/r2.upstream: unknown upstream \"nope\""
            ]
        );
        let errs = errors(put(
            &cfg,
            Kind::Upstreams,
            "u2",
            json!({ "nodes": [{ "address": "h:1", "wieght": 2 }] }),
        ));
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("upstreams/u2.nodes[0].wieght: unknown field"),
            "{errs:?}"
        );
        let errs = errors(put(&cfg, Kind::Routes, "r1", json!({ "id": "other", "paths": ["/"] })));
        assert!(
            errs[0].starts_with("routes/r1.id: \"other\" does not match"),
            "{errs:?}"
        );
        assert!(
            errors(put(&cfg, Kind::Routes, "r1", json!(["not", "an", "object"])))[0].contains("expected a JSON object")
        );
        assert!(errors(put(&cfg, Kind::Routes, "a/b", json!({})))[0].contains("letters, digits"));
    }

    #[test]
    fn deleting_what_is_used_is_refused() {
        let cfg = base();
        let errs = errors(delete(&cfg, Kind::Upstreams, "users"));
        assert_eq!(
            errs,
            vec![
                "upstreams/users: cannot be deleted: the config without it would be invalid",
                "routes/r1.upstream: unknown upstream \"users\""
            ]
        );
        assert!(delete(&cfg, Kind::Upstreams, "spare").is_ok());
        assert_eq!(
            delete(&cfg, Kind::Consumers, "bob").unwrap_err(),
            EditError::NotFound("no consumer \"bob\"".into())
        );
    }

    #[test]
    fn a_masked_secret_sent_back_keeps_the_stored_one() {
        let cfg = base();
        let body = json!({ "groups": ["gold"], "credentials": { "key-auth": { "key": mask::MASK } } });
        let p = put(&cfg, Kind::Consumers, "alice", body.clone()).expect("valid");
        assert_eq!(
            p.item.expect("item")["credentials"]["key-auth"]["key"],
            "alice-secret-key"
        );
        assert_eq!(p.config.consumers[0].groups, vec!["gold"]);
        let errs = errors(put(&cfg, Kind::Consumers, "carol", body));
        assert!(
            errs[0].starts_with("consumers/carol.credentials.key-auth.key: holds a masked value"),
            "{errs:?}"
        );
    }

    #[test]
    fn no_environment_substitution() {
        let cfg = base();
        let p = put(
            &cfg,
            Kind::Routes,
            "r2",
            json!({ "paths": ["/e"], "headers": { "x-v": "${HOME}" }, "upstream": "users" }),
        )
        .expect("valid");
        assert_eq!(p.config.routes[1].headers["x-v"], "${HOME}");
    }
}
