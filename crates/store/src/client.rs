//! Talking to etcd: connecting with bounded timeouts, and reading every document at once.

use crate::layout::{Key, range_start};
use etcd_client::{Client, ConnectOptions, GetOptions};
use std::time::Duration;

/// How long one request (or a connection attempt) may take before etcd counts as unreachable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// A client for `endpoints`. Connecting is lazy: an unreachable etcd shows on the first request.
pub async fn connect(endpoints: &[String]) -> Result<Client, String> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(REQUEST_TIMEOUT)
        // HTTP/2 pings find a dead connection that no RST announced. etcd answers pings more
        // often than every 5 s (--grpc-keepalive-min-time) by closing the connection.
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
    Client::connect(endpoints, Some(options))
        .await
        .map_err(|e| format!("cannot connect to etcd at {}: {e}", endpoints.join(", ")))
}

/// One stored document as read.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: Key,
    pub full_key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// Every Portico document under `prefix` (one range request) and the store's revision.
/// Keys under the prefix that Portico does not own are left out.
pub async fn load(client: &mut Client, prefix: &str) -> Result<(Vec<Stored>, i64), String> {
    let mut resp = client
        .get(range_start(prefix), Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| format!("cannot read {prefix}/ from etcd: {e}"))?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let docs = resp
        .take_kvs()
        .into_iter()
        .filter_map(|kv| {
            let key = Key::parse(prefix, kv.key())?;
            let mod_revision = kv.mod_revision();
            let (full, value) = kv.into_key_value();
            Some(Stored {
                key,
                full_key: String::from_utf8_lossy(&full).into_owned(),
                value,
                mod_revision,
            })
        })
        .collect();
    Ok((docs, revision))
}
