//! Smooth weighted round robin, as nginx does it, precomputed into a schedule.
//!
//! nginx's algorithm (add each weight to its node's current value, pick the largest, subtract
//! the total from it) is deterministic, so its whole cycle is computed once at config time; a
//! request then only bumps one atomic cursor. Weights 5,1,1 give `a a b a c a a`-style
//! interleaving rather than bursts.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Above this many schedule steps × nodes, weights are scaled down to keep compile time small.
const MAX_WORK: u64 = 4_000_000;

#[derive(Debug)]
pub struct RoundRobin {
    schedule: Box<[u32]>,
    cursor: AtomicUsize,
}

impl RoundRobin {
    /// Builds the cycle for `weights` (index = node). Nodes of weight 0 never appear.
    pub fn new(weights: &[u32]) -> Self {
        let weights = reduce(weights);
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut current = vec![0i64; weights.len()];
        let mut schedule = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for (i, &w) in weights.iter().enumerate() {
                current[i] += i64::from(w);
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total as i64;
            schedule.push(best as u32);
        }
        Self {
            schedule: schedule.into(),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The next node in the cycle for which `usable` holds; `None` when none does.
    pub fn next(&self, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.schedule.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| self.schedule[(start + i) % n] as usize)
            .find(|&idx| usable(idx))
    }
}

/// Divides by the gcd, and scales down weights so huge totals stay cheap to precompute.
fn reduce(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd).max(1);
    let mut w: Vec<u32> = weights.iter().map(|&x| x / g).collect();
    let total: u64 = w.iter().map(|&x| u64::from(x)).sum();
    let work = total * w.len() as u64;
    if work > MAX_WORK {
        let scale = work.div_ceil(MAX_WORK);
        for x in w.iter_mut().filter(|x| **x > 0) {
            *x = (u64::from(*x) / scale).max(1) as u32;
        }
    }
    w
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(rr: &RoundRobin, n: usize) -> Vec<usize> {
        (0..n).map(|_| rr.next(|_| true).expect("a node")).collect()
    }

    #[test]
    fn smooth_like_nginx() {
        // nginx's documented sequence for weights 5, 1, 1.
        let rr = RoundRobin::new(&[5, 1, 1]);
        assert_eq!(take(&rr, 7), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weights_hold_exactly_over_whole_cycles() {
        let rr = RoundRobin::new(&[3, 1]);
        let picks = take(&rr, 400);
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 300);
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 100);
    }

    #[test]
    fn zero_weight_and_unusable_nodes_are_skipped() {
        let rr = RoundRobin::new(&[0, 2, 2]);
        assert!(take(&rr, 10).iter().all(|&i| i != 0));
        assert!((0..10).all(|_| rr.next(|i| i != 1) == Some(2)));
        assert_eq!(rr.next(|_| false), None);
    }

    #[test]
    fn huge_weights_stay_proportional() {
        let weights = vec![10_000; 1_000];
        let rr = RoundRobin::new(&weights);
        assert!(rr.schedule.len() <= 4_000);
        let picks = take(&rr, rr.schedule.len());
        assert_eq!(picks.iter().filter(|&&i| i == 7).count(), picks.len() / 1_000);
    }
}
