//! Portico's upstreams: the resolved nodes of one service and how a request picks among them.
//!
//! Compiled by the control plane from the config; the data plane only calls [`Upstream::pick`].

mod round_robin;
mod upstream;

pub use round_robin::RoundRobin;
pub use upstream::{Node, Upstream};
