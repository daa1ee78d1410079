//! How a request picks a node: weighted round robin, consistent hashing (nginx's ketama ring,
//! via `pingora-ketama`), weighted least connections, or peak-EWMA with two random choices.

use crate::round_robin::RoundRobin;
use crate::upstream::Node;
use pingora_ketama::{Bucket, Continuum};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub enum Balancer {
    RoundRobin(RoundRobin),
    /// The ring, and the nodes' addresses sorted (for mapping ring entries back to nodes).
    ConsistentHash(Continuum, Vec<(SocketAddr, usize)>),
    /// A rotating start, so ties do not always go to the first node.
    LeastConnections(AtomicUsize),
    Ewma,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Balancer::RoundRobin(_) => "round_robin",
            Balancer::ConsistentHash(..) => "consistent_hash",
            Balancer::LeastConnections(_) => "least_connections",
            Balancer::Ewma => "ewma",
        })
    }
}

impl Balancer {
    pub fn new(kind: portico_config::Balancer, nodes: &[(SocketAddr, u32)]) -> Self {
        use portico_config::Balancer as B;
        match kind {
            B::RoundRobin => Balancer::RoundRobin(RoundRobin::new(&nodes.iter().map(|n| n.1).collect::<Vec<_>>())),
            B::ConsistentHash => {
                let buckets: Vec<Bucket> = nodes
                    .iter()
                    .filter(|n| n.1 > 0)
                    .map(|&(addr, w)| Bucket::new(addr, w))
                    .collect();
                let mut index: Vec<(SocketAddr, usize)> = nodes.iter().enumerate().map(|(i, n)| (n.0, i)).collect();
                index.sort();
                Balancer::ConsistentHash(Continuum::new(&buckets), index)
            }
            B::LeastConnections => Balancer::LeastConnections(AtomicUsize::new(0)),
            B::Ewma => Balancer::Ewma,
        }
    }

    /// The node for this request among those `usable` says yes to; `hash` is the
    /// consistent-hash key. `None` when no node is usable.
    pub fn pick(&self, nodes: &[Node], hash: &[u8], now: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let ok = |i: usize| nodes[i].weight > 0 && usable(i) && nodes[i].state.available(now);
        match self {
            Balancer::RoundRobin(rr) => rr.next(ok),
            Balancer::ConsistentHash(ring, index) => {
                // Walk the ring from the key's point: the first usable node is the key's node,
                // so a key moves only when its node goes away.
                let lookup = |a: &SocketAddr| index.binary_search_by(|(x, _)| x.cmp(a)).ok().map(|p| index[p].1);
                ring.node_iter(hash)
                    .take(nodes.len() * 160 * 4)
                    .filter_map(lookup)
                    .find(|&i| ok(i))
            }
            Balancer::LeastConnections(start) => {
                let n = nodes.len();
                let s = start.fetch_add(1, Relaxed);
                let load = |i: usize| u64::from(nodes[i].state.inflight.load(Relaxed)) + 1;
                (0..n).map(|k| (s + k) % n).filter(|&i| ok(i)).min_by(|&a, &b| {
                    // (in flight + 1) / weight, compared without division.
                    (load(a) * u64::from(nodes[b].weight)).cmp(&(load(b) * u64::from(nodes[a].weight)))
                })
            }
            Balancer::Ewma => {
                let cost = |i: usize| {
                    let n = &nodes[i];
                    let pending = f64::from(n.state.inflight.load(Relaxed)) + 1.0;
                    n.state.latency_estimate(now) * pending / f64::from(n.weight)
                };
                // Power of two choices among the usable nodes: two distinct random ones, the
                // cheaper wins (no allocation: the k-th usable node is found by counting).
                let live = (0..nodes.len()).filter(|&i| ok(i)).count();
                let nth = |k: usize| (0..nodes.len()).filter(|&i| ok(i)).nth(k);
                match live {
                    0 => None,
                    1 => nth(0),
                    len => {
                        let ra = random(len);
                        let rb = (ra + 1 + random(len - 1)) % len;
                        let (a, b) = (nth(ra)?, nth(rb)?);
                        if let Some(&stale) = [a, b].iter().find(|&&i| nodes[i].state.claim_probe(now)) {
                            return Some(stale);
                        }
                        Some(if cost(b) < cost(a) { b } else { a })
                    }
                }
            }
        }
    }
}

/// A uniform-enough index below `n` from a per-thread xorshift generator.
fn random(n: usize) -> usize {
    thread_local!(static STATE: Cell<u64> = Cell::new(seed()));
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x % n as u64) as usize
    })
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::thread::current().id()) | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NodeState;
    use portico_config::Balancer as B;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    fn nodes(n: usize) -> (Vec<(SocketAddr, u32)>, Vec<Arc<NodeState>>) {
        let addrs = (0..n)
            .map(|i| (format!("10.0.0.{}:80", i + 1).parse().expect("addr"), 1))
            .collect();
        (addrs, (0..n).map(|_| Arc::new(NodeState::default())).collect())
    }

    fn candidates(addrs: &[(SocketAddr, u32)], states: &[Arc<NodeState>]) -> Vec<Node> {
        addrs
            .iter()
            .zip(states)
            .map(|(&(addr, weight), state)| Node {
                address: addr.to_string().into(),
                addr,
                host_header: http::HeaderValue::from_static("test"),
                weight,
                tls: None,
                state: state.clone(),
            })
            .collect()
    }

    #[test]
    fn consistent_hash_moves_about_one_nth_of_keys() {
        let (five, s5) = nodes(5);
        let (four, s4) = nodes(4);
        let ring5 = Balancer::new(B::ConsistentHash, &five);
        let ring4 = Balancer::new(B::ConsistentHash, &four);
        let (c5, c4) = (candidates(&five, &s5), candidates(&four, &s4));
        let mut moved = 0;
        let keys = 10_000;
        for k in 0..keys {
            let key = format!("user-{k}");
            let a = ring5.pick(&c5, key.as_bytes(), 0, |_| true).expect("a node");
            let b = ring4.pick(&c4, key.as_bytes(), 0, |_| true).expect("a node");
            if a != 4 {
                assert_eq!(a, b, "a key whose node stayed must not move");
            } else {
                moved += 1;
            }
        }
        // Node 5 of 5 owned about 1/5 of the keys; only those moved.
        assert!((1_200..2_800).contains(&moved), "moved {moved}");
    }

    #[test]
    fn consistent_hash_skips_unusable_nodes_but_keeps_the_rest() {
        let (addrs, states) = nodes(3);
        let ring = Balancer::new(B::ConsistentHash, &addrs);
        let c = candidates(&addrs, &states);
        let first = ring.pick(&c, b"k", 0, |_| true).expect("node");
        let second = ring.pick(&c, b"k", 0, |i| i != first).expect("node");
        assert_ne!(first, second);
        assert_eq!(ring.pick(&c, b"k", 0, |_| true), Some(first), "sticky");
    }

    #[test]
    fn least_connections_prefers_the_idle_weighted_node() {
        let (mut addrs, states) = nodes(3);
        addrs[2].1 = 4;
        let c = candidates(&addrs, &states);
        let lc = Balancer::new(B::LeastConnections, &addrs);
        states[0].inflight.store(2, Ordering::Relaxed);
        states[2].inflight.store(3, Ordering::Relaxed);
        // loads: (2+1)/1, (0+1)/1, (3+1)/4 = 3, 1, 1: node 1 or 2.
        for _ in 0..10 {
            let i = lc.pick(&c, b"", 0, |_| true).expect("node");
            assert!(i == 1 || i == 2, "{i}");
        }
        states[1].inflight.store(5, Ordering::Relaxed);
        assert_eq!(lc.pick(&c, b"", 0, |_| true), Some(2));
    }

    #[test]
    fn ewma_sends_little_to_a_slow_node() {
        let (addrs, states) = nodes(3);
        let c = candidates(&addrs, &states);
        let ewma = Balancer::new(B::Ewma, &addrs);
        states[0].observe_latency(std::time::Duration::from_millis(200), 0);
        states[1].observe_latency(std::time::Duration::from_millis(2), 0);
        states[2].observe_latency(std::time::Duration::from_millis(2), 0);
        let slow = (0..3_000)
            .filter(|_| ewma.pick(&c, b"", 0, |_| true) == Some(0))
            .count();
        assert_eq!(slow, 0, "with two choices the slow node always loses");
        // Once its estimate is stale, it gets a probe request.
        let later = 120_000_000;
        assert!((0..3_000).any(|_| ewma.pick(&c, b"", later, |_| true) == Some(0)));
    }
}
