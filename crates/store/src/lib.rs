//! Portico's cluster config store on etcd: the key layout, decoding documents with the config
//! model's strictness, `portico push`, and a node that boots from etcd (or its local cache)
//! and follows every change.
//!
//! A crate of its own so the gRPC stack of the etcd client (tonic, prost) stays out of the
//! crates the data plane is built from.

pub mod cache;
pub mod client;
pub mod document;
pub mod layout;
pub mod node;
pub mod push;
pub mod state;
pub mod status;
pub mod writer;

pub use layout::{DEFAULT_PREFIX, Key, Kind};
pub use node::{Boot, Node, Resume};
pub use push::run as push;
pub use status::{Detail, Source, Status};
pub use writer::EtcdWriter;
