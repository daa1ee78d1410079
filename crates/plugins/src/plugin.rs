//! The contract every plugin implements, and the closed set of built-in plugins.
//!
//! Plugins are dispatched through an enum, not `dyn`: the set is known at compile time, so
//! each hook is a direct call and an async hook costs no boxed future.

use crate::body::Body;
use crate::consumers::Consumers;
use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::traffic_split::TrafficSplit;
use crate::{acl::Acl, cors::Cors, ip_restriction::IpRestriction, request_size_limit::RequestSizeLimit};
use crate::{basic_auth::BasicAuth, jwt_auth::JwtAuth, key_auth::KeyAuth};
use crate::{limit_conn::LimitConn, rate_limit::RateLimit};
use crate::{mock::Mock, redirect::Redirect};
use crate::{request_transformer::RequestTransformer, response_transformer::ResponseTransformer};
use http::{Response, request, response};
use std::sync::Arc;

/// What a request hook decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the next plugin, then the upstream.
    Continue,
    /// Stop here and send this response (a rejection, a mock, a redirect). It still passes
    /// through the response hooks and is still logged.
    Respond(Response<Body>),
}

/// One plugin. Every hook has a documented no-op default, so a plugin implements only what it uses.
pub trait Plugin {
    /// The phase this plugin's request hook runs in.
    fn phase(&self) -> Phase;

    /// Runs before the upstream, in phase order; may change the request head or answer it.
    /// Default: [`Flow::Continue`].
    #[allow(async_fn_in_trait)]
    async fn on_request(&self, _cx: &mut Ctx, _req: &mut request::Parts) -> Flow {
        Flow::Continue
    }

    /// Whether [`Plugin::on_response`] does anything (lets the proxy skip the response pass).
    fn has_response_hook(&self) -> bool {
        false
    }

    /// Runs on every response before it goes to the client, whether the upstream or a plugin
    /// produced it. Default: nothing.
    fn on_response(&self, _cx: &mut Ctx, _resp: &mut response::Parts) {}
}

/// A compiled instance of a built-in plugin.
#[derive(Debug)]
pub enum Instance {
    IpRestriction(IpRestriction),
    Cors(Cors),
    KeyAuth(KeyAuth),
    BasicAuth(BasicAuth),
    JwtAuth(JwtAuth),
    Acl(Acl),
    RequestSizeLimit(RequestSizeLimit),
    RateLimit(RateLimit),
    LimitConn(LimitConn),
    Mock(Mock),
    Redirect(Redirect),
    RequestTransformer(RequestTransformer),
    ResponseTransformer(ResponseTransformer),
    TrafficSplit(TrafficSplit),
}

/// Calls the same method on whichever plugin `$self` holds.
macro_rules! dispatch {
    ($self:expr, $p:ident => $call:expr) => {
        match $self {
            Instance::IpRestriction($p) => $call,
            Instance::Cors($p) => $call,
            Instance::KeyAuth($p) => $call,
            Instance::BasicAuth($p) => $call,
            Instance::JwtAuth($p) => $call,
            Instance::Acl($p) => $call,
            Instance::RequestSizeLimit($p) => $call,
            Instance::RateLimit($p) => $call,
            Instance::LimitConn($p) => $call,
            Instance::Mock($p) => $call,
            Instance::Redirect($p) => $call,
            Instance::RequestTransformer($p) => $call,
            Instance::ResponseTransformer($p) => $call,
            Instance::TrafficSplit($p) => $call,
        }
    };
}

impl Instance {
    /// The plugin's name as the config writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Instance::IpRestriction(_) => "ip-restriction",
            Instance::Cors(_) => "cors",
            Instance::KeyAuth(_) => "key-auth",
            Instance::BasicAuth(_) => "basic-auth",
            Instance::JwtAuth(_) => "jwt-auth",
            Instance::Acl(_) => "acl",
            Instance::RequestSizeLimit(_) => "request-size-limit",
            Instance::RateLimit(_) => "rate-limit",
            Instance::LimitConn(_) => "limit-conn",
            Instance::Mock(_) => "mock",
            Instance::Redirect(_) => "redirect",
            Instance::RequestTransformer(_) => "request-transformer",
            Instance::ResponseTransformer(_) => "response-transformer",
            Instance::TrafficSplit(_) => "traffic-split",
        }
    }

    pub fn phase(&self) -> Phase {
        dispatch!(self, p => p.phase())
    }

    pub async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        dispatch!(self, p => p.on_request(cx, req).await)
    }

    pub fn has_response_hook(&self) -> bool {
        dispatch!(self, p => p.has_response_hook())
    }

    pub fn on_response(&self, cx: &mut Ctx, resp: &mut response::Parts) {
        dispatch!(self, p => p.on_response(cx, resp))
    }
}

/// Plugins named by the spec whose implementation has not landed: refused, never ignored.
const NOT_BUILT: [&str; 3] = ["proxy-cache", "compression", "grpc-transcode"];

/// What a plugin may need from the rest of the config when it is built.
#[derive(Debug, Clone, Default)]
pub struct BuildEnv {
    /// Every consumer's credentials, for the auth plugins.
    pub consumers: Arc<Consumers>,
    /// The config's named upstreams, for traffic-split.
    pub upstreams: std::collections::HashMap<String, Arc<portico_upstream::Upstream>>,
    /// Where the plugin sits (`route:ID`, `global`, `consumer:NAME`): with its settings, what
    /// finds a stateful plugin's state of the previous config (rate-limit, limit-conn).
    pub scope: Arc<str>,
    /// `gateway.redis`, for rate-limit's `policy: redis`.
    pub redis: Option<portico_config::Redis>,
}

/// What of its [`BuildEnv`] a plugin's build reads besides its own settings and its scope.
/// A compiled plugin may serve a new config unchanged only if its settings, its scope and
/// these are unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The consumers' credentials (the auth plugins).
    pub consumers: bool,
    /// The named upstreams (traffic-split).
    pub upstreams: bool,
    /// `gateway.redis` (rate-limit).
    pub redis: bool,
}

impl Needs {
    const ALL: Needs = Needs {
        consumers: true,
        upstreams: true,
        redis: true,
    };

    /// What plugin `name` needs; everything for a name not listed here (when in doubt, a
    /// plugin is built again).
    pub fn of(name: &str) -> Needs {
        let none = Needs::default();
        match name {
            "key-auth" | "basic-auth" | "jwt-auth" => Needs {
                consumers: true,
                ..none
            },
            "traffic-split" => Needs {
                upstreams: true,
                ..none
            },
            "rate-limit" => Needs { redis: true, ..none },
            "ip-restriction"
            | "cors"
            | "acl"
            | "request-size-limit"
            | "limit-conn"
            | "mock"
            | "redirect"
            | "request-transformer"
            | "response-transformer" => none,
            _ => Needs::ALL,
        }
    }

    /// What the plugins of a `plugins:` map need together.
    pub fn of_map(map: &portico_config::PluginMap) -> Needs {
        map.keys().map(|n| Needs::of(n)).fold(Needs::default(), Needs::or)
    }

    pub fn or(self, other: Needs) -> Needs {
        Needs {
            consumers: self.consumers || other.consumers,
            upstreams: self.upstreams || other.upstreams,
            redis: self.redis || other.redis,
        }
    }
}

/// Builds one plugin from its YAML config. Errors are messages relative to the plugin's location.
pub fn build(name: &str, config: &serde_yaml::Value, env: &BuildEnv) -> Result<Instance, Vec<(String, String)>> {
    match name {
        "ip-restriction" => {
            typed(config).and_then(|c| IpRestriction::build(c).map(Instance::IpRestriction).map_err(at_root))
        }
        "cors" => typed(config).and_then(|c| Cors::build(c).map(Instance::Cors).map_err(at_root)),
        "key-auth" => typed(config).and_then(|c| KeyAuth::build(c, env).map(Instance::KeyAuth).map_err(at_root)),
        "basic-auth" => typed(config).and_then(|c| BasicAuth::build(c, env).map(Instance::BasicAuth).map_err(at_root)),
        "jwt-auth" => typed(config).and_then(|c| JwtAuth::build(c, env).map(Instance::JwtAuth).map_err(at_root)),
        "acl" => typed(config).and_then(|c| Acl::build(c).map(Instance::Acl).map_err(at_root)),
        "request-size-limit" => typed(config).and_then(|c| {
            RequestSizeLimit::build(c)
                .map(Instance::RequestSizeLimit)
                .map_err(at_root)
        }),
        "rate-limit" => typed(config).and_then(|c| {
            RateLimit::build(c, env, config)
                .map(Instance::RateLimit)
                .map_err(at_root)
        }),
        "limit-conn" => typed(config).and_then(|c| {
            LimitConn::build(c, env, config)
                .map(Instance::LimitConn)
                .map_err(at_root)
        }),
        "mock" => typed(config).and_then(|c| Mock::build(c).map(Instance::Mock).map_err(at_root)),
        "redirect" => typed(config).and_then(|c| Redirect::build(c).map(Instance::Redirect).map_err(at_root)),
        "request-transformer" => typed(config).and_then(|c| {
            RequestTransformer::build(c)
                .map(Instance::RequestTransformer)
                .map_err(at_root)
        }),
        "response-transformer" => typed(config).and_then(|c| {
            ResponseTransformer::build(c)
                .map(Instance::ResponseTransformer)
                .map_err(at_root)
        }),
        "traffic-split" => {
            typed(config).and_then(|c| TrafficSplit::build(c, env).map(Instance::TrafficSplit).map_err(at_root))
        }
        n if NOT_BUILT.contains(&n) => Err(at_root(format!("not supported yet: the {n} plugin is not built"))),
        n => Err(at_root(format!("unknown plugin {n:?}"))),
    }
}

/// A build error; a message written `field: what` (or `field[2]: what`) is located at that field.
pub(crate) fn at_root(message: String) -> Vec<(String, String)> {
    let field = message.split_once(": ").map(|(f, _)| f).filter(|f| {
        !f.is_empty()
            && f.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_[].".contains(&b))
    });
    match field {
        Some(f) => {
            let rest = message[f.len() + 2..].to_owned();
            vec![(f.to_owned(), rest)]
        }
        None => vec![(String::new(), message)],
    }
}

/// Deserializes a plugin's typed config; an empty YAML value means "all defaults".
pub(crate) fn typed<T: serde::de::DeserializeOwned>(config: &serde_yaml::Value) -> Result<T, Vec<(String, String)>> {
    let value = if config.is_null() {
        serde_yaml::Value::Mapping(Default::default())
    } else {
        config.clone()
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        vec![(path, e.into_inner().to_string())]
    })
}
