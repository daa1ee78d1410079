//! Portico's upstreams: the resolved nodes of one service, how a request picks among them,
//! and what the gateway knows of each node's health.
//!
//! Compiled by the control plane from the config; the data plane calls [`Upstream::pick`]
//! and reports each outcome back with [`Upstream::report`].

mod balancer;
mod grpc_health;
mod hash_on;
mod health;
pub mod registry;
mod round_robin;
mod state;
pub mod tls;
mod upstream;

pub use hash_on::HashOn;
pub use health::{HealthCheck, enable_active_checks};
pub use round_robin::RoundRobin;
pub use state::{Circuit, InFlight, NodeState, NodeView, Outcome, now_us, us_at};
pub use upstream::{Node, Upstream};
