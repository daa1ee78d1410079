//! A route's compiled plugins in phase order: the global ones first, then the route's own.
//! After the auth phase, an authenticated consumer's own plugins take the place of the
//! route's plugins of the same name and join the order by their phase.

use crate::body::Body;
use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{BuildEnv, Flow, Instance, build};
use http::{Response, request, response};
use portico_config::{ConfigErrors, PluginMap, error::join};
use std::sync::Arc;

/// Plugins compiled from one `plugins:` map, sorted by phase.
pub type Compiled = Arc<[Instance]>;

/// Compiles a `plugins:` map, reporting errors at `location.NAME...`.
pub fn compile_plugins(map: &PluginMap, location: &str, errors: &mut ConfigErrors, env: &BuildEnv) -> Compiled {
    let mut out = Vec::with_capacity(map.len());
    for (name, config) in map {
        let at = join(location, name);
        match build(name, config, env) {
            Ok(p) => out.push(p),
            Err(errs) => {
                for (path, message) in errs {
                    errors.push(join(&at, &path), message);
                }
            }
        }
    }
    // Stable: within a phase the map's (alphabetical) order holds.
    out.sort_by_key(Instance::phase);
    out.into()
}

/// A response a plugin produced instead of the upstream, and which plugin it was.
#[derive(Debug)]
pub struct Answer {
    pub plugin: &'static str,
    pub response: Response<Body>,
}

/// The plugins a request on one route runs through.
#[derive(Debug, Clone)]
pub struct Chain {
    global: Compiled,
    own: Compiled,
    has_response_hooks: bool,
}

/// Builds a route's chain from the already compiled global plugins and the route's own map.
pub fn compile_chain(
    global: &Compiled,
    own: &PluginMap,
    location: &str,
    errors: &mut ConfigErrors,
    env: &BuildEnv,
) -> Chain {
    let own = compile_plugins(own, location, errors, env);
    let has_response_hooks = global.iter().chain(own.iter()).any(Instance::has_response_hook);
    Chain {
        global: global.clone(),
        own,
        has_response_hooks,
    }
}

impl Chain {
    /// Global and own plugins merged by phase, globals first within a phase.
    fn in_order(&self) -> impl Iterator<Item = &Instance> {
        merge(self.global.iter(), self.own.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.own.is_empty()
    }

    /// Runs every request hook before the upstream; `Some(answer)` when a plugin answered.
    ///
    /// Once an auth plugin has found a consumer with plugin settings of its own, the phases
    /// after auth run the consumer's plugins in place of the route's plugins of the same name.
    pub async fn run_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Option<Answer> {
        for p in self.in_order().take_while(|p| p.phase() <= Phase::Auth) {
            if let Flow::Respond(resp) = p.on_request(cx, req).await {
                return Some(Answer {
                    plugin: p.name(),
                    response: resp,
                });
            }
        }
        let before_upstream = |p: &&Instance| p.phase() > Phase::Auth && p.phase() < Phase::Upstream;
        match consumer_plugins(cx) {
            None => {
                for p in self.in_order().filter(before_upstream) {
                    if let Flow::Respond(resp) = p.on_request(cx, req).await {
                        return Some(Answer {
                            plugin: p.name(),
                            response: resp,
                        });
                    }
                }
            }
            Some(own) => {
                let route = self.in_order().filter(|p| !own.iter().any(|o| o.name() == p.name()));
                for p in merge(route, own.iter()).filter(before_upstream) {
                    if let Flow::Respond(resp) = p.on_request(cx, req).await {
                        return Some(Answer {
                            plugin: p.name(),
                            response: resp,
                        });
                    }
                }
            }
        }
        None
    }

    /// Runs every response hook on a response about to go to the client.
    pub fn run_response(&self, cx: &mut Ctx, resp: &mut response::Parts) {
        match consumer_plugins(cx).filter(|own| own.iter().any(Instance::has_response_hook)) {
            None if self.has_response_hooks => {
                for p in self.in_order().filter(|p| p.has_response_hook()) {
                    p.on_response(cx, resp);
                }
            }
            None => {}
            Some(own) => {
                let route = self.in_order().filter(|p| !own.iter().any(|o| o.name() == p.name()));
                for p in merge(route, own.iter()).filter(|p| p.has_response_hook()) {
                    p.on_response(cx, resp);
                }
            }
        }
    }

    pub fn has_response_hooks(&self) -> bool {
        self.has_response_hooks
    }

    /// Whether `other` is this very chain (the same compiled plugins, not equal ones).
    pub fn same(&self, other: &Chain) -> bool {
        Arc::ptr_eq(&self.global, &other.global) && Arc::ptr_eq(&self.own, &other.own)
    }
}

/// The authenticated consumer's own plugins, when it has any.
fn consumer_plugins(cx: &Ctx) -> Option<Compiled> {
    cx.consumer
        .as_ref()
        .filter(|c| !c.plugins.is_empty())
        .map(|c| c.plugins.clone())
}

/// Two phase-sorted plugin lists merged by phase, `a`'s first within a phase.
fn merge<'a>(
    a: impl Iterator<Item = &'a Instance>,
    b: impl Iterator<Item = &'a Instance>,
) -> impl Iterator<Item = &'a Instance> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.phase() < x.phase() => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}
