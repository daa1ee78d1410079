//! Where each resource lives in etcd: one JSON document per resource under the prefix.
//!
//! ```text
//! {prefix}/routes/{id}
//! {prefix}/upstreams/{id}
//! {prefix}/consumers/{username}
//! {prefix}/global_plugins
//! ```

use std::fmt;

/// The prefix used when `config_store.prefix` is left out.
pub const DEFAULT_PREFIX: &str = "/portico";

/// The kinds of resource the store holds, in the order a config lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Upstream,
    Consumer,
    Route,
    GlobalPlugins,
}

impl Kind {
    /// The key segment (`routes`) and the config section of the same name.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Upstream => "upstreams",
            Kind::Consumer => "consumers",
            Kind::Route => "routes",
            Kind::GlobalPlugins => "global_plugins",
        }
    }

    /// The singular a user reads in `created route users-api`.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Upstream => "upstream",
            Kind::Consumer => "consumer",
            Kind::Route => "route",
            Kind::GlobalPlugins => "global_plugins",
        }
    }

    /// The field of a document that names it (`id`, `username`); none for global plugins.
    pub fn id_field(self) -> Option<&'static str> {
        match self {
            Kind::Upstream | Kind::Route => Some("id"),
            Kind::Consumer => Some("username"),
            Kind::GlobalPlugins => None,
        }
    }
}

/// One resource's place in the store, independent of the prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: Kind,
    /// The id or username; empty for global plugins.
    pub id: String,
}

impl Key {
    pub fn new(kind: Kind, id: impl Into<String>) -> Self {
        Self { kind, id: id.into() }
    }

    pub fn global_plugins() -> Self {
        Self::new(Kind::GlobalPlugins, "")
    }

    /// The full etcd key under `prefix`.
    pub fn path(&self, prefix: &str) -> String {
        match self.kind {
            Kind::GlobalPlugins => format!("{prefix}/global_plugins"),
            kind => format!("{prefix}/{}/{}", kind.section(), self.id),
        }
    }

    /// The key an etcd key under `prefix` names; `None` for keys Portico does not own.
    pub fn parse(prefix: &str, full: &[u8]) -> Option<Key> {
        let full = std::str::from_utf8(full).ok()?;
        let rest = full.strip_prefix(prefix)?.strip_prefix('/')?;
        if rest == "global_plugins" {
            return Some(Key::global_plugins());
        }
        let (section, id) = rest.split_once('/')?;
        let kind = match section {
            "routes" => Kind::Route,
            "upstreams" => Kind::Upstream,
            "consumers" => Kind::Consumer,
            _ => return None,
        };
        (!id.is_empty()).then(|| Key::new(kind, id))
    }
}

impl fmt::Display for Key {
    /// `route users-api`, `global_plugins`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::GlobalPlugins => f.write_str("global_plugins"),
            kind => write!(f, "{} {}", kind.noun(), self.id),
        }
    }
}

/// The range every Portico key of `prefix` falls in: `{prefix}/`.
pub fn range_start(prefix: &str) -> String {
    format!("{prefix}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_keys_are_ignored() {
        for key in [
            Key::new(Kind::Route, "users-api"),
            Key::new(Kind::Upstream, "users"),
            Key::new(Kind::Consumer, "alice"),
            Key::global_plugins(),
        ] {
            let path = key.path("/portico");
            assert_eq!(Key::parse("/portico", path.as_bytes()), Some(key), "{path}");
        }
        assert_eq!(Key::new(Kind::Route, "a").path("/p"), "/p/routes/a");
        for foreign in [
            "/portico/other/x",
            "/portico/routes/",
            "/porticox/routes/a",
            "/portico",
            "/other/routes/a",
        ] {
            assert_eq!(Key::parse("/portico", foreign.as_bytes()), None, "{foreign}");
        }
        assert_eq!(Key::new(Kind::Consumer, "bob").to_string(), "consumer bob");
    }
}
