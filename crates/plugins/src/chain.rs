//! A route's compiled plugins in phase order: the global ones first, then the route's own.

use crate::body::Body;
use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{Flow, Instance, build};
use http::{Response, request, response};
use portico_config::{ConfigErrors, PluginMap, error::join};
use std::sync::Arc;

/// Plugins compiled from one `plugins:` map, sorted by phase.
pub type Compiled = Arc<[Instance]>;

/// Compiles a `plugins:` map, reporting errors at `location.NAME...`.
pub fn compile_plugins(map: &PluginMap, location: &str, errors: &mut ConfigErrors) -> Compiled {
    let mut out = Vec::with_capacity(map.len());
    for (name, config) in map {
        let at = join(location, name);
        match build(name, config) {
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

/// The plugins a request on one route runs through.
#[derive(Debug, Clone)]
pub struct Chain {
    global: Compiled,
    own: Compiled,
    has_response_hooks: bool,
}

/// Builds a route's chain from the already compiled global plugins and the route's own map.
pub fn compile_chain(global: &Compiled, own: &PluginMap, location: &str, errors: &mut ConfigErrors) -> Chain {
    let own = compile_plugins(own, location, errors);
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
        let (mut g, mut o) = (self.global.iter().peekable(), self.own.iter().peekable());
        std::iter::from_fn(move || match (g.peek(), o.peek()) {
            (Some(a), Some(b)) if b.phase() < a.phase() => o.next(),
            (Some(_), _) => g.next(),
            (None, _) => o.next(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.own.is_empty()
    }

    /// Runs every request hook before the upstream; `Some(response)` when a plugin answered.
    pub async fn run_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Option<Response<Body>> {
        for p in self.in_order().take_while(|p| p.phase() < Phase::Upstream) {
            if let Flow::Respond(resp) = p.on_request(cx, req).await {
                return Some(resp);
            }
        }
        None
    }

    /// Runs every response hook on a response about to go to the client.
    pub fn run_response(&self, cx: &mut Ctx, resp: &mut response::Parts) {
        if self.has_response_hooks {
            for p in self.in_order().filter(|p| p.has_response_hook()) {
                p.on_response(cx, resp);
            }
        }
    }

    pub fn has_response_hooks(&self) -> bool {
        self.has_response_hooks
    }
}
