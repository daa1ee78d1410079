//! Consumers: the callers the gateway knows, compiled once per config into one index per auth
//! plugin, so that an auth plugin finds a credential's owner with one hash lookup.
//!
//! Auth plugins get the compiled [`Consumers`] when they are built ([`crate::plugin::BuildEnv`]);
//! a request that authenticates carries its [`Consumer`] in [`crate::Ctx::consumer`].

use crate::chain::{Compiled, compile_plugins};
use crate::phase::Phase;
use crate::plugin::{BuildEnv, typed};
use crate::{basic_auth, jwt_auth, key_auth};
use http::HeaderValue;
use portico_config::{ConfigErrors, error::join};
use std::borrow::Borrow;
use std::sync::Arc;

/// One authenticated caller, as later phases and the upstream see it.
#[derive(Debug)]
pub struct Consumer {
    pub username: Arc<str>,
    pub groups: Box<[Box<str>]>,
    /// `X-Consumer-Username` for the upstream, made once.
    pub username_header: Option<HeaderValue>,
    /// `X-Consumer-Groups` (comma-separated), made once; `None` without groups.
    pub groups_header: Option<HeaderValue>,
    /// The consumer's own plugin settings: they replace the route's plugin of the same name in
    /// the phases after auth, and add the ones the route lacks.
    pub plugins: Compiled,
}

impl Consumer {
    pub fn new(username: &str, groups: &[String], plugins: Compiled) -> Self {
        let joined = groups.join(",");
        Self {
            username: username.into(),
            groups: groups.iter().map(|g| g.as_str().into()).collect(),
            username_header: HeaderValue::from_str(username).ok(),
            groups_header: (!groups.is_empty())
                .then(|| HeaderValue::from_str(&joined).ok())
                .flatten(),
            plugins,
        }
    }

    /// Whether the consumer belongs to any of `groups`.
    pub fn in_any(&self, groups: &[Box<str>]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

/// Every consumer's credentials, indexed per auth plugin.
#[derive(Debug, Default)]
pub struct Consumers {
    pub(crate) key_auth: key_auth::Index,
    pub(crate) basic_auth: basic_auth::Index,
    pub(crate) jwt_auth: jwt_auth::Index,
}

/// Auth plugins that consumers may hold credentials for.
pub const AUTH_PLUGINS: [&str; 3] = ["key-auth", "basic-auth", "jwt-auth"];

/// Compiles the config's consumers; errors are located (`consumers[1].credentials.key-auth.key`)
/// and never quote a secret.
pub fn compile<C: Borrow<portico_config::Consumer>>(consumers: &[C], errors: &mut ConfigErrors) -> Arc<Consumers> {
    compile_with(consumers, errors, &BuildEnv::default())
}

/// [`compile`], the consumers' own plugins built in `base` (for `gateway.redis`), each in its
/// consumer's scope (`consumer:NAME`: a consumer's rate-limit counts across routes).
pub fn compile_with<C: Borrow<portico_config::Consumer>>(
    consumers: &[C],
    errors: &mut ConfigErrors,
    base: &BuildEnv,
) -> Arc<Consumers> {
    let mut out = Consumers::default();
    for (i, c) in consumers.iter().map(Borrow::borrow).enumerate() {
        let at = format!("consumers[{i}]");
        let plugins_at = join(&at, "plugins");
        let env = BuildEnv {
            scope: format!("consumer:{}", c.username).into(),
            consumers: Arc::default(),
            upstreams: Default::default(),
            redis: base.redis.clone(),
        };
        let plugins = compile_plugins(&c.plugins, &plugins_at, errors, &env);
        for p in plugins.iter().filter(|p| p.phase() <= Phase::Auth) {
            errors.push(
                join(&plugins_at, p.name()),
                "runs before authentication, so it cannot be set per consumer",
            );
        }
        let consumer = Arc::new(Consumer::new(&c.username, &c.groups, plugins));
        for (name, config) in &c.credentials {
            let at = join(&join(&at, "credentials"), name);
            let added = match name.as_str() {
                "key-auth" => typed(config).and_then(|cred| out.key_auth.add(cred, &consumer)),
                "basic-auth" => typed(config).and_then(|cred| out.basic_auth.add(cred, &consumer)),
                "jwt-auth" => typed(config).and_then(|cred| out.jwt_auth.add(cred, &consumer)),
                _ => Err(vec![(
                    String::new(),
                    format!("{name:?} is not an auth plugin; use one of {}", AUTH_PLUGINS.join(", ")),
                )]),
            };
            if let Err(errs) = added {
                for (path, message) in errs {
                    errors.push(join(&at, &path), message);
                }
            }
        }
    }
    Arc::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(yaml: &str) -> Vec<String> {
        let consumers: Vec<portico_config::Consumer> = serde_yaml::from_str(yaml).expect("yaml");
        let mut errors = ConfigErrors::default();
        compile(&consumers, &mut errors);
        errors.0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn duplicate_credentials_are_located_and_not_quoted() {
        let errs = errors_of(
            r#"
- { username: a, credentials: { key-auth: { key: s3cret-key }, jwt-auth: { key: app, secret: x } } }
- { username: b, credentials: { key-auth: { key: s3cret-key }, jwt-auth: { key: app, secret: y } } }
"#,
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("consumers[1].credentials.jwt-auth.key: "),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("consumers[1].credentials.key-auth.key: "),
            "{errs:?}"
        );
        assert!(errs.iter().all(|e| !e.contains("s3cret")), "{errs:?}");
    }

    #[test]
    fn bad_credentials_and_plugins_are_refused() {
        let errs = errors_of(
            r#"
- { username: a, credentials: { oauth: {} } }
- { username: b, credentials: { key-auth: { key: k, nope: 1 } } }
- { username: c, plugins: { ip-restriction: { allow: [10.0.0.0/8] } } }
"#,
        );
        let joined = errs.join("\n");
        for want in [
            "consumers[0].credentials.oauth: \"oauth\" is not an auth plugin",
            "consumers[1].credentials.key-auth.nope: unknown field `nope`",
            "consumers[2].plugins.ip-restriction: runs before authentication",
        ] {
            assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
        }
    }

    #[test]
    fn headers_carry_username_and_groups() {
        let c = Consumer::new("alice", &["gold".into(), "beta".into()], Arc::from([]));
        assert_eq!(c.username_header.as_ref().map(|h| h.as_bytes()), Some(&b"alice"[..]));
        assert_eq!(c.groups_header.as_ref().map(|h| h.as_bytes()), Some(&b"gold,beta"[..]));
        assert!(c.in_any(&["beta".into()]));
        assert!(!c.in_any(&["silver".into()]));
    }
}
