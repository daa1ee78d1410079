//! `acl`: lets an authenticated consumer through by its groups (`allow_groups`, `deny_groups`)
//! or by name (`allow_consumers`, `deny_consumers`). A deny list always wins; with any allow
//! list, the consumer must be on one of them.

use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{Flow, Plugin};
use crate::reply;
use http::{StatusCode, request};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    #[serde(default)]
    allow_groups: Vec<String>,
    #[serde(default)]
    deny_groups: Vec<String>,
    /// Usernames.
    #[serde(default)]
    allow_consumers: Vec<String>,
    #[serde(default)]
    deny_consumers: Vec<String>,
}

#[derive(Debug)]
pub struct Acl {
    allow: Box<[Box<str>]>,
    deny: Box<[Box<str>]>,
    allow_names: Box<[Box<str>]>,
    deny_names: Box<[Box<str>]>,
}

impl Acl {
    pub fn build(c: AclConfig) -> Result<Self, String> {
        if c.allow_groups.is_empty()
            && c.deny_groups.is_empty()
            && c.allow_consumers.is_empty()
            && c.deny_consumers.is_empty()
        {
            return Err("set allow_groups, deny_groups, allow_consumers or deny_consumers".into());
        }
        let boxed = |v: Vec<String>| v.into_iter().map(String::into_boxed_str).collect();
        Ok(Self {
            allow: boxed(c.allow_groups),
            deny: boxed(c.deny_groups),
            allow_names: boxed(c.allow_consumers),
            deny_names: boxed(c.deny_consumers),
        })
    }

    /// A denied consumer (by group or name) is refused; with allow lists, so is one on none.
    fn allows(&self, cx: &Ctx) -> bool {
        let Some(c) = &cx.consumer else { return false };
        let named = |list: &[Box<str>]| list.iter().any(|n| **n == *c.username);
        if c.in_any(&self.deny) || named(&self.deny_names) {
            return false;
        }
        let any_allow = !self.allow.is_empty() || !self.allow_names.is_empty();
        !any_allow || c.in_any(&self.allow) || named(&self.allow_names)
    }
}

impl Plugin for Acl {
    fn phase(&self) -> Phase {
        Phase::Authz
    }

    async fn on_request(&self, cx: &mut Ctx, _req: &mut request::Parts) -> Flow {
        if self.allows(cx) {
            Flow::Continue
        } else {
            Flow::Respond(reply::error(
                StatusCode::FORBIDDEN,
                "consumer not allowed",
                &cx.request_id,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::Consumer;
    use http::HeaderValue;
    use std::sync::Arc;

    fn cx_with(groups: Option<&[&str]>) -> Ctx {
        let mut cx = Ctx::new(HeaderValue::from_static("id"), [127, 0, 0, 1].into(), "r".into());
        cx.consumer = groups.map(|g| {
            let g: Vec<String> = g.iter().map(|s| s.to_string()).collect();
            Arc::new(Consumer::new("c", &g, Arc::from([])))
        });
        cx
    }

    #[test]
    fn deny_beats_allow_and_no_consumer_is_refused() {
        let acl = Acl::build(serde_yaml::from_str("{ allow_groups: [gold], deny_groups: [banned] }").expect("yaml"))
            .expect("builds");
        assert!(acl.allows(&cx_with(Some(&["gold"]))));
        assert!(!acl.allows(&cx_with(Some(&["gold", "banned"]))));
        assert!(!acl.allows(&cx_with(Some(&["silver"]))));
        assert!(!acl.allows(&cx_with(None)));
        let deny_only = Acl::build(serde_yaml::from_str("{ deny_groups: [banned] }").expect("yaml")).expect("builds");
        assert!(deny_only.allows(&cx_with(Some(&[]))));
        assert!(Acl::build(serde_yaml::from_str("{}").expect("yaml")).is_err());
    }

    #[test]
    fn consumers_are_allowed_and_denied_by_name() {
        let acl = Acl::build(serde_yaml::from_str("{ allow_consumers: [c], deny_groups: [banned] }").expect("yaml"))
            .expect("builds");
        assert!(acl.allows(&cx_with(Some(&[]))), "c is named");
        assert!(!acl.allows(&cx_with(Some(&["banned"]))), "deny wins");
        let deny = Acl::build(serde_yaml::from_str("{ deny_consumers: [c] }").expect("yaml")).expect("builds");
        assert!(!deny.allows(&cx_with(Some(&["gold"]))));
        let mixed = Acl::build(serde_yaml::from_str("{ allow_groups: [gold], allow_consumers: [x] }").expect("yaml"))
            .expect("builds");
        assert!(mixed.allows(&cx_with(Some(&["gold"]))));
        assert!(!mixed.allows(&cx_with(Some(&["silver"]))));
    }
}
