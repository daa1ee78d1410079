//! Admin API writes in etcd mode: each PUT or DELETE is one etcd transaction on the resource's
//! key. With `If-Match: REV` the transaction also requires the key's mod revision to still be
//! REV, so a write based on a stale read is refused (409) instead of overwriting a newer one.
//!
//! The admin API has already validated the whole resulting config against this node's live
//! config; the write lands in etcd, and every node (this one included) applies it through its
//! watch, within a second. Two writes on different nodes that are each valid alone but not
//! together (a route added for an upstream another node deletes) are caught there: the nodes
//! refuse that config with the keys at fault in their logs and keep serving the last good one.

use crate::client::connect;
use crate::layout::{Key, Kind};
use etcd_client::{Client, Compare, CompareOp, DeleteOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use portico_admin::{ConfigWriter, WriteError, WriteFuture, Written};
use tokio::sync::Mutex;

pub struct EtcdWriter {
    endpoints: Vec<String>,
    prefix: String,
    /// One client for every write, made on the first one (and again after an error).
    client: Mutex<Option<Client>>,
}

impl EtcdWriter {
    pub fn new(endpoints: Vec<String>, prefix: String) -> Self {
        Self {
            endpoints,
            prefix,
            client: Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<Client, WriteError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = connect(&self.endpoints).await.map_err(WriteError::Unavailable)?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Puts (`Some`) or deletes (`None`) the document of `key`, guarded by `expected`.
    async fn write(&self, key: Key, value: Option<String>, expected: Option<u64>) -> Result<Written, WriteError> {
        let path = key.path(&self.prefix);
        let mut guards = Vec::new();
        if let Some(rev) = expected {
            let rev = i64::try_from(rev).map_err(|_| conflict(&key, expected, None))?;
            // A key that does not exist compares as revision 0: `If-Match: 0` means "create".
            guards.push(Compare::mod_revision(path.clone(), CompareOp::Equal, rev));
        }
        let op = match &value {
            Some(v) => TxnOp::put(path.clone(), v.clone(), Some(PutOptions::new().with_prev_key())),
            None => {
                guards.push(Compare::version(path.clone(), CompareOp::Greater, 0));
                TxnOp::delete(path.clone(), None::<DeleteOptions>)
            }
        };
        let txn = Txn::new()
            .when(guards)
            .and_then([op])
            .or_else([TxnOp::get(path.clone(), None)]);
        let mut client = self.client().await?;
        let resp = match client.txn(txn).await {
            Ok(r) => r,
            Err(e) => {
                *self.client.lock().await = None;
                return Err(WriteError::Unavailable(format!("etcd: {e}")));
            }
        };
        let revision = resp.header().map(|h| h.revision()).and_then(|r| u64::try_from(r).ok());
        let ops = resp.op_responses();
        if resp.succeeded() {
            let created = matches!(ops.first(), Some(TxnOpResponse::Put(p)) if p.prev_key().is_none());
            return Ok(Written { revision, created });
        }
        let current = match ops.first() {
            Some(TxnOpResponse::Get(g)) => g.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        };
        match (value, current) {
            (None, None) => Err(WriteError::NotFound(format!("{key} does not exist"))),
            _ => Err(conflict(&key, expected, current)),
        }
    }
}

fn conflict(key: &Key, expected: Option<u64>, current: Option<i64>) -> WriteError {
    let now = match current {
        Some(rev) => format!("it is at revision {rev} now"),
        None => "it does not exist now".to_owned(),
    };
    let since = expected.map_or_else(String::new, |e| format!(" since revision {e}"));
    WriteError::Conflict(format!("{key} changed{since}: {now}; read it again and retry"))
}

fn key(kind: portico_admin::Kind, id: &str) -> Key {
    let kind = match kind {
        portico_admin::Kind::Routes => Kind::Route,
        portico_admin::Kind::Upstreams => Kind::Upstream,
        portico_admin::Kind::Consumers => Kind::Consumer,
    };
    Key::new(kind, id)
}

impl ConfigWriter for EtcdWriter {
    fn put<'a>(
        &'a self,
        kind: portico_admin::Kind,
        id: &'a str,
        item: &'a serde_json::Value,
        expected: Option<u64>,
    ) -> WriteFuture<'a> {
        Box::pin(self.write(key(kind, id), Some(item.to_string()), expected))
    }

    fn delete<'a>(&'a self, kind: portico_admin::Kind, id: &'a str, expected: Option<u64>) -> WriteFuture<'a> {
        Box::pin(self.write(key(kind, id), None, expected))
    }
}
