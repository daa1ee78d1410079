//! `policy: local`: the counters live in this process, in a table split into shards, each
//! behind its own short lock: workers counting different keys rarely meet, and no request
//! waits on a global lock.
//!
//! Memory is bounded: a key whose state is back to "fresh" (its window or bucket refilled) is
//! dropped by a sweep that runs at most once per window per shard, and a shard that is full
//! anyway (a flood of distinct keys) evicts an eighth of its entries, oldest-idle first, before
//! it takes a new one. The only cost of eviction is that an evicted key starts over.

use super::algo::{Decision, Rule, State};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Shards per table: a power of two, a few times the worker count of a large machine.
const SHARDS: usize = 64;

/// Keys one table remembers at most (all shards together), unless configured otherwise.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Microseconds on a monotonic clock shared by every table of the process.
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    // Starts at one hour so that windows of the first hour are not all index 0 at boot.
    START.get_or_init(Instant::now).elapsed().as_micros() as u64 + 3_600_000_000
}

#[derive(Debug)]
pub struct LocalTable {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    /// Picks a key's shard. Keyed: clients choose their keys (`header:` values), and with
    /// a predictable hash they could aim them all at one shard and evict its counters.
    hasher: RandomState,
}

#[derive(Debug, Default)]
struct Shard {
    /// Keys are attacker-chosen (IPs, header values): SipHash with a random seed, not FxHash.
    map: HashMap<Box<str>, State>,
    next_sweep: u64,
}

impl LocalTable {
    /// A table remembering at most about `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// Counts one request for `key` under `rule`.
    pub fn check(&self, rule: &Rule, key: &str) -> Decision {
        self.check_at(rule, key, now_us())
    }

    fn check_at(&self, rule: &Rule, key: &str, now: u64) -> Decision {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        let mut shard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        if now >= shard.next_sweep {
            shard.map.retain(|_, s| rule.idle_at(s) > now);
            shard.next_sweep = now + rule.window_us.max(1_000_000);
        }
        if let Some(state) = shard.map.get_mut(key) {
            return rule.check(state, now);
        }
        if shard.map.len() >= self.per_shard {
            evict(&mut shard.map, rule, now, self.per_shard);
        }
        let mut state = State::default();
        let d = rule.check(&mut state, now);
        shard.map.insert(key.into(), state);
        d
    }

    /// Keys remembered now (all shards).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }
}

/// Makes room in a full shard: idle entries first, then the eighth closest to being idle.
fn evict(map: &mut HashMap<Box<str>, State>, rule: &Rule, now: u64, cap: usize) {
    map.retain(|_, s| rule.idle_at(s) > now);
    if map.len() < cap {
        return;
    }
    let mut idle: Vec<u64> = map.values().map(|s| rule.idle_at(s)).collect();
    let n = (cap / 8).max(1).min(idle.len() - 1);
    let (_, cut, _) = idle.select_nth_unstable(n);
    let cut = *cut;
    // Exactly n go: everything before the cut, then as many ties as are still needed.
    let mut ties = n.saturating_sub(idle.iter().filter(|&&t| t < cut).count());
    map.retain(|_, s| {
        let t = rule.idle_at(s);
        if t == cut && ties > 0 {
            ties -= 1;
            return false;
        }
        t >= cut
    });
}

#[cfg(test)]
mod tests {
    use super::super::algo::Algorithm;
    use super::*;

    const S: u64 = 1_000_000;

    fn rule() -> Rule {
        Rule {
            algorithm: Algorithm::FixedWindow,
            limit: 2,
            window_us: 60 * S,
        }
    }

    #[test]
    fn keys_are_counted_apart() {
        let t = LocalTable::new(1000);
        let r = rule();
        assert!(t.check_at(&r, "a", S).allowed);
        assert!(t.check_at(&r, "a", S).allowed);
        assert!(!t.check_at(&r, "a", S).allowed);
        assert!(t.check_at(&r, "b", S).allowed);
    }

    #[test]
    fn a_flood_of_keys_stays_bounded() {
        let t = LocalTable::new(6400);
        let r = rule();
        for i in 0..100_000 {
            t.check_at(&r, &format!("k{i}"), S);
        }
        assert!(t.len() <= 6400 + SHARDS, "{} keys kept", t.len());
    }

    #[test]
    fn idle_keys_are_swept() {
        let t = LocalTable::new(1000);
        let r = rule();
        for i in 0..500 {
            t.check_at(&r, &format!("k{i}"), S);
        }
        // Two windows later every shard sweeps on its next use.
        for i in 0..2000 {
            t.check_at(&r, &format!("n{i}"), 200 * S);
        }
        assert!(t.len() <= 1000 + SHARDS, "{} keys kept", t.len());
        assert!(t.len() >= 800, "the new keys stay: {}", t.len());
    }
}
