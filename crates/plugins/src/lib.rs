//! Portico's plugin pipeline: the phase contract every plugin implements, the per-request
//! context, the response body type, and the built-in plugins (one file each).
//!
//! A route's plugins are compiled once per config into a [`Chain`] sorted by [`Phase`]; the
//! proxy runs the chain's request hooks before the upstream and its response hooks after.

pub mod body;
pub mod chain;
pub mod ctx;
pub mod headers;
pub mod phase;
pub mod plugin;
pub mod reply;

mod mock;
mod redirect;
mod request_transformer;
mod response_transformer;

pub use body::Body;
pub use chain::{Chain, compile_chain};
pub use ctx::Ctx;
pub use phase::Phase;
pub use plugin::{Flow, Instance, Plugin};
