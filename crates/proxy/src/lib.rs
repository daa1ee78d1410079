//! Portico's data plane: listeners and workers, the hyper service that runs a request through
//! its route's plugins to an upstream, pooled upstream connections, and the access log.
//!
//! The data plane only reads [`Snapshot`]s; the control plane compiles them from the config
//! and swaps them in with [`Running::swap`].

mod access_log;
mod conn_watch;
mod copied;
mod dispatch;
mod downstream;
mod error;
mod field_bytes;
mod flush;
mod forward;
mod framing;
mod grpc;
mod h1;
mod h2;
mod head_guard;
mod header_maps;
mod logged_body;
pub mod metrics;
mod metrics_route;
pub mod otel;
mod otel_batch;
mod otel_export;
mod otel_proto;
mod path;
mod pool;
mod server;
mod service;
mod shards;
mod snapshot;
mod timed_io;
mod tls;
mod tls_sni;
mod upgrade;
mod upstream_tls;
mod worker;

pub use portico_upstream::enable_active_checks;
pub use server::{Running, StartError, start};
pub use snapshot::{
    RouteEntry, Snapshot, check, check_next, compile, compile_next, validate_and_compile, validate_and_compile_next,
};
