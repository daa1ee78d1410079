//! What the gateway knows about one node at run time: requests in flight, latency, health.
//!
//! Shared by every worker (atomics, no lock) and kept across reloads: compiling a config asks
//! [`NodeState::shared`] for the state of (upstream id, node address), so a node that stays
//! keeps its counters, circuit and health, and a new node starts healthy.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

mod view;
pub use view::{Circuit, NodeView};

/// Microseconds since the process started: cheap to store in an atomic.
pub fn now_us() -> u64 {
    us_at(Instant::now())
}

/// `at` on the [`now_us`] scale: for a caller that has read the clock already.
pub fn us_at(at: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*START.get_or_init(Instant::now))
        .as_micros() as u64
}

/// How long a latency sample keeps its weight (peak-EWMA decay), as linkerd uses.
const DECAY_US: f64 = 10_000_000.0;
/// A node with no latency sample for this long gets one probe request, however slow it was.
const PROBE_AFTER_US: u64 = 2_000_000;

#[derive(Debug, Default)]
pub struct NodeState {
    /// Requests sent to this node whose response head has not arrived yet.
    pub inflight: AtomicU32,
    /// Peak-EWMA of the time to response head, in µs (f64 bits), and when it was last updated.
    ewma_us: AtomicU64,
    ewma_at: AtomicU64,
    /// When a probe request was last sent to refresh a stale estimate.
    probe_at: AtomicU64,
    /// Consecutive passive failures since the last success.
    failures: AtomicU32,
    /// While ejected by the circuit breaker: until when (µs); 0 when closed.
    ejected_until: AtomicU64,
    /// After the cooldown, one trial request is let through; this marks it taken.
    trial: AtomicBool,
    /// Marked down by active health checks.
    active_down: AtomicBool,
    active_ok: AtomicU32,
    active_fail: AtomicU32,
    /// The last health transition, and when (µs): written on transitions only, read by the admin API.
    last_change: Mutex<Option<(u64, String)>>,
    /// Why the last active probe failed; cleared by a successful probe.
    last_probe_error: Mutex<Option<String>>,
}

/// What a request to a node came to, as far as health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl NodeState {
    /// The state of `address` in upstream `upstream`: the existing one if a live snapshot
    /// still holds it, else a fresh (healthy) one. Only the control plane calls this.
    pub fn shared(upstream: &str, address: &str) -> Arc<NodeState> {
        crate::registry::shared(Self::key(upstream, address), NodeState::default)
    }

    /// The live state of `address` in upstream `upstream`, if a snapshot holds one (never creates one).
    pub fn lookup(upstream: &str, address: &str) -> Option<Arc<NodeState>> {
        crate::registry::get(&Self::key(upstream, address))
    }

    fn key(upstream: &str, address: &str) -> String {
        format!("node\u{0}{upstream}\u{0}{address}")
    }

    /// Whether the node may be chosen now (up, and not ejected or past its cooldown).
    pub fn available(&self, now: u64) -> bool {
        if self.active_down.load(Relaxed) {
            return false;
        }
        let until = self.ejected_until.load(Relaxed);
        until == 0 || (now >= until && !self.trial.load(Relaxed))
    }

    /// Claims the node for one request: always, unless its circuit is half-open, where only
    /// one trial request at a time may go.
    pub fn admit(&self, now: u64) -> bool {
        if !self.available(now) {
            return false;
        }
        if self.ejected_until.load(Relaxed) == 0 {
            return true;
        }
        self.trial.compare_exchange(false, true, Relaxed, Relaxed).is_ok()
    }

    /// Whether the node is down by active checks or ejected right now (for reporting).
    pub fn is_healthy(&self, now: u64) -> bool {
        !self.active_down.load(Relaxed) && self.ejected_until.load(Relaxed) <= now
    }

    /// Passive health: `failures` in a row eject the node for `cooldown`; after it, one trial
    /// request decides whether the circuit closes again. Returns a transition to log, if any.
    pub fn report(&self, outcome: Outcome, failures: u32, cooldown: Duration, now: u64) -> Option<&'static str> {
        let what = self.report_passive(outcome, failures, cooldown, now);
        if let Some(what) = what {
            self.record_change(now, format!("passive: {what}"));
        }
        what
    }

    fn report_passive(&self, outcome: Outcome, failures: u32, cooldown: Duration, now: u64) -> Option<&'static str> {
        let cooldown_us = cooldown.as_micros() as u64;
        match outcome {
            Outcome::Success => {
                self.failures.store(0, Relaxed);
                if self.ejected_until.swap(0, Relaxed) != 0 {
                    self.trial.store(false, Relaxed);
                    return Some("recovered: trial request succeeded, circuit closed");
                }
                None
            }
            Outcome::Failure => {
                if self.ejected_until.load(Relaxed) != 0 {
                    // The trial failed (or a request admitted before the ejection): stay open.
                    self.ejected_until.store(now + cooldown_us, Relaxed);
                    self.trial.store(false, Relaxed);
                    return Some("still failing: circuit stays open for another cooldown");
                }
                let n = self.failures.fetch_add(1, Relaxed) + 1;
                if n >= failures {
                    self.failures.store(0, Relaxed);
                    self.ejected_until.store(now + cooldown_us, Relaxed);
                    return Some("ejected: too many failures in a row, circuit open for the cooldown");
                }
                None
            }
        }
    }

    /// Active health: `healthy` successes in a row bring a node up, `unhealthy` failures take
    /// it down. Returns the new state when it flips.
    pub fn report_active(&self, ok: bool, healthy: u32, unhealthy: u32) -> Option<bool> {
        let flipped = self.count_active(ok, healthy, unhealthy);
        match flipped {
            Some(true) => self.record_change(
                now_us(),
                format!("active: up after {healthy} successful checks in a row"),
            ),
            Some(false) => self.record_change(
                now_us(),
                format!("active: down after {unhealthy} failed checks in a row"),
            ),
            None => {}
        }
        flipped
    }

    /// Remembers why the last active probe failed (`None`: it succeeded), for the admin API.
    pub fn note_probe(&self, error: Option<&str>) {
        let mut last = self.last_probe_error.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() != error {
            *last = error.map(str::to_owned);
        }
    }

    fn record_change(&self, now: u64, what: String) {
        *self.last_change.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, what));
    }

    fn count_active(&self, ok: bool, healthy: u32, unhealthy: u32) -> Option<bool> {
        if ok {
            self.active_fail.store(0, Relaxed);
            let n = self.active_ok.fetch_add(1, Relaxed) + 1;
            (n >= healthy && self.active_down.swap(false, Relaxed)).then_some(true)
        } else {
            self.active_ok.store(0, Relaxed);
            let n = self.active_fail.fetch_add(1, Relaxed) + 1;
            (n >= unhealthy && !self.active_down.swap(true, Relaxed)).then_some(false)
        }
    }

    /// Feeds one time-to-response-head sample into the peak-EWMA.
    pub fn observe_latency(&self, rtt: Duration, now: u64) {
        let rtt = rtt.as_micros() as f64;
        let prev = self.latency_estimate(now);
        // Peak: a slow response counts at once; fast ones pull the estimate down gradually.
        let next = if rtt > prev { rtt } else { prev + (rtt - prev) * 0.5 };
        self.ewma_us.store(next.to_bits(), Relaxed);
        self.ewma_at.store(now, Relaxed);
    }

    /// Claims a probe when the estimate is stale: a slow node that the balancer keeps
    /// avoiding still gets one request now and then, so a recovery is noticed.
    pub fn claim_probe(&self, now: u64) -> bool {
        let last = self.probe_at.load(Relaxed);
        let fresh = self.ewma_at.load(Relaxed).max(last);
        now.saturating_sub(fresh) > PROBE_AFTER_US
            && self.probe_at.compare_exchange(last, now, Relaxed, Relaxed).is_ok()
    }

    /// The latency estimate now: the last value, decayed toward zero as it ages, so a node
    /// that was slow is tried again after a while.
    pub fn latency_estimate(&self, now: u64) -> f64 {
        let v = f64::from_bits(self.ewma_us.load(Relaxed));
        let age = now.saturating_sub(self.ewma_at.load(Relaxed)) as f64;
        v * (-age / DECAY_US).exp()
    }
}

/// Counts a request in flight on a node until dropped.
pub struct InFlight<'a>(&'a NodeState);

impl<'a> InFlight<'a> {
    pub fn new(state: &'a NodeState) -> Self {
        state.inflight.fetch_add(1, Relaxed);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn the_circuit_opens_half_opens_and_closes() {
        let n = NodeState::default();
        let cooldown = Duration::from_secs(10);
        assert_eq!(n.report(Outcome::Failure, 3, cooldown, 0), None);
        assert_eq!(n.report(Outcome::Failure, 3, cooldown, 0), None);
        assert!(n.report(Outcome::Failure, 3, cooldown, 0).is_some());
        assert!(!n.admit(5 * S), "ejected during the cooldown");
        assert!(n.admit(10 * S), "one trial after the cooldown");
        assert!(!n.admit(10 * S), "only one trial at a time");
        assert!(n.report(Outcome::Failure, 3, cooldown, 10 * S).is_some());
        assert!(!n.admit(15 * S), "a failed trial reopens the circuit");
        assert!(n.admit(20 * S));
        assert!(n.report(Outcome::Success, 3, cooldown, 20 * S).is_some());
        assert!(n.admit(20 * S) && n.admit(20 * S), "closed again");
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let n = NodeState::default();
        let cooldown = Duration::from_secs(1);
        n.report(Outcome::Failure, 2, cooldown, 0);
        n.report(Outcome::Success, 2, cooldown, 0);
        assert_eq!(n.report(Outcome::Failure, 2, cooldown, 0), None);
        assert!(n.admit(0));
    }

    #[test]
    fn active_checks_flip_after_thresholds() {
        let n = NodeState::default();
        assert_eq!(n.report_active(false, 2, 3), None);
        assert_eq!(n.report_active(false, 2, 3), None);
        assert_eq!(n.report_active(false, 2, 3), Some(false));
        assert!(!n.available(0));
        assert_eq!(n.report_active(true, 2, 3), None);
        assert_eq!(n.report_active(true, 2, 3), Some(true));
        assert!(n.available(0));
    }

    #[test]
    fn latency_is_peak_then_decays() {
        let n = NodeState::default();
        n.observe_latency(Duration::from_millis(100), 0);
        assert!((n.latency_estimate(0) - 100_000.0).abs() < 1.0);
        n.observe_latency(Duration::from_millis(10), 0);
        assert!(n.latency_estimate(0) < 100_000.0 && n.latency_estimate(0) > 10_000.0);
        assert!(n.latency_estimate(60 * S) < 1_000.0, "an old estimate fades");
    }

    #[test]
    fn state_survives_while_a_snapshot_holds_it() {
        let a = NodeState::shared("u-test", "10.0.0.1:80");
        a.inflight.fetch_add(2, Relaxed);
        let b = NodeState::shared("u-test", "10.0.0.1:80");
        assert_eq!(b.inflight.load(Relaxed), 2);
        drop((a, b));
        assert_eq!(NodeState::shared("u-test", "10.0.0.1:80").inflight.load(Relaxed), 0);
    }
}
