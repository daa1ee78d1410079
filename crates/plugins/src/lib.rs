//! Portico's plugin pipeline: the phase contract every plugin implements, the per-request
//! context, the response body type, and the built-in plugins (one file each).
//!
//! A route's plugins are compiled once per config into a [`Chain`] sorted by [`Phase`]; the
//! proxy runs the chain's request hooks before the upstream and its response hooks after.

pub mod body;
pub mod chain;
pub mod consumers;
pub mod ctx;
pub mod headers;
pub mod phase;
pub mod plugin;
pub mod reply;

mod acl;
mod basic_auth;
mod cors;
mod ip_restriction;
mod jwks;
mod jwt_auth;
mod jwt_token;
mod key_auth;
mod mock;
mod redirect;
mod request_size_limit;
mod request_transformer;
mod response_transformer;
mod traffic_split;

pub use body::Body;
pub use chain::{Chain, compile_chain};
pub use consumers::{Consumer, Consumers};
pub use ctx::Ctx;
pub use phase::Phase;
pub use plugin::{BuildEnv, Flow, Instance, Plugin};
