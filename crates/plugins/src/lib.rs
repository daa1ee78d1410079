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
pub mod shared_state;

mod acl;
mod basic_auth;
mod cors;
mod ip_restriction;
mod jwks;
mod jwt_auth;
mod jwt_token;
mod key_auth;
mod limit_conn;
mod limit_key;
mod mock;
mod rate_limit;
mod redirect;
mod request_size_limit;
mod request_transformer;
mod response_transformer;
mod traffic_split;

pub use body::{Body, BoxError};
pub use chain::{Chain, compile_chain};
pub use consumers::{Consumer, Consumers};
pub use ctx::{Ctx, RateLimitInfo};
pub use limit_conn::Slot;
pub use phase::Phase;
pub use plugin::{BuildEnv, Flow, Instance, Plugin};
