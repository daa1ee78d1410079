//! `limit-conn`: at most `max` requests in flight per key (`ip` by default; `consumer`,
//! `route`, `header:NAME`); the next one gets 503.
//!
//! Admitting a request takes a [`Slot`]; the slot goes back when its guard is dropped, which
//! covers every way a request ends: the proxy keeps the guards in the context and then in the
//! response body, so a slot is held until the body is fully sent, and released as well when
//! the upstream fails, times out, or the client goes away (hyper drops the request's future or
//! the body). The counters sit in a sharded table (no global lock), hold only keys with
//! requests in flight, and are kept across reloads like rate-limit's.

use crate::ctx::Ctx;
use crate::limit_key::LimitKey;
use crate::phase::Phase;
use crate::plugin::{BuildEnv, Flow, Plugin};
use crate::{reply, shared_state};
use http::{StatusCode, request};
use serde::Deserialize;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 64;

/// Requests in flight per key, in one shard.
type Counts = HashMap<Box<str>, u32>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConnConfig {
    /// Requests in flight allowed per key (at least 1).
    max: u32,
    /// Default `ip`.
    #[serde(default)]
    key: LimitKey,
}

#[derive(Debug)]
pub struct LimitConn {
    max: u32,
    key: LimitKey,
    table: Arc<Table>,
}

/// In-flight counts per key, sharded; an entry exists only while its count is above zero.
#[derive(Debug)]
struct Table {
    hasher: RandomState,
    shards: Box<[Mutex<Counts>]>,
}

/// One admitted request's place; dropping it gives the place back.
pub struct Slot {
    table: Arc<Table>,
    shard: usize,
    key: Box<str>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("key", &self.key).finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.table.shards[self.shard].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl LimitConn {
    pub fn build(c: LimitConnConfig, env: &BuildEnv, raw: &serde_yaml::Value) -> Result<Self, String> {
        if c.max == 0 {
            return Err("max: must be at least 1".into());
        }
        let key = shared_state::key("limit-conn", &env.scope, raw);
        let table = shared_state::shared(key, || Table {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        });
        Ok(Self {
            max: c.max,
            key: c.key,
            table,
        })
    }

    /// A slot for `key`, or `None` when `max` requests already hold one.
    fn acquire(&self, key: String) -> Option<Slot> {
        let shard = self.table.hasher.hash_one(&key) as usize % SHARDS;
        let mut map = self.table.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.as_str().into()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        drop(map);
        Some(Slot {
            table: self.table.clone(),
            shard,
            key: key.into(),
        })
    }
}

impl Plugin for LimitConn {
    fn phase(&self) -> Phase {
        Phase::Limit
    }

    async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        match self.acquire(self.key.of(cx, req)) {
            Some(slot) => {
                cx.conn_slots.push(Arc::new(slot));
                Flow::Continue
            }
            None => Flow::Respond(reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many concurrent requests",
                &cx.request_id,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(max: u32) -> LimitConn {
        let raw: serde_yaml::Value = serde_yaml::from_str(&format!("{{ max: {max} }}")).expect("yaml");
        let c: LimitConnConfig = serde_yaml::from_value(raw.clone()).expect("config");
        let env = BuildEnv {
            scope: "route:unit".into(),
            ..Default::default()
        };
        LimitConn::build(c, &env, &raw).expect("builds")
    }

    #[test]
    fn slots_are_counted_and_given_back() {
        let p = plugin(2);
        let a = p.acquire("k".into()).expect("first");
        let b = p.acquire("k".into()).expect("second");
        assert!(p.acquire("k".into()).is_none(), "third refused");
        assert!(p.acquire("other".into()).is_some(), "other keys apart");
        drop(a);
        let c = p.acquire("k".into()).expect("a freed slot is taken again");
        drop((b, c));
        let empty = p
            .table
            .shards
            .iter()
            .all(|s| s.lock().map(|m| m.is_empty()).unwrap_or(false));
        assert!(empty, "no entry outlives its requests");
    }
}
