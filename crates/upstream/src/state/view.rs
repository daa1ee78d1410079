//! A point-in-time reading of one node's state, for operators (the admin API): whether it is
//! healthy and why, from the same atomics the balancer reads.

use super::NodeState;
use std::sync::atomic::Ordering::Relaxed;

/// The passive circuit breaker of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Requests flow; `failures` in a row so far.
    Closed { failures: u32 },
    /// Ejected: no request until the cooldown ends, `remaining_us` from now.
    Open { remaining_us: u64 },
    /// The cooldown is over: one trial request decides (`trial_in_flight` once it is sent).
    HalfOpen { trial_in_flight: bool },
}

/// One node as the gateway sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Whether the balancer may pick it now (up by active checks, circuit not open).
    pub healthy: bool,
    /// Requests sent to it whose response head has not arrived yet.
    pub in_flight: u32,
    /// Marked down by active checks.
    pub active_down: bool,
    /// Consecutive active check successes and failures.
    pub active_successes: u32,
    pub active_failures: u32,
    /// Why the last active probe failed, while it keeps failing.
    pub last_probe_error: Option<String>,
    pub circuit: Circuit,
    /// The last health transition: how long ago (µs) and what happened.
    pub last_change: Option<(u64, String)>,
}

impl NodeState {
    /// Reads the node's state at `now` (µs, [`super::now_us`]).
    pub fn view(&self, now: u64) -> NodeView {
        let until = self.ejected_until.load(Relaxed);
        let circuit = if until == 0 {
            Circuit::Closed {
                failures: self.failures.load(Relaxed),
            }
        } else if now < until {
            Circuit::Open {
                remaining_us: until - now,
            }
        } else {
            Circuit::HalfOpen {
                trial_in_flight: self.trial.load(Relaxed),
            }
        };
        let active_down = self.active_down.load(Relaxed);
        NodeView {
            healthy: !active_down && !matches!(circuit, Circuit::Open { .. }),
            in_flight: self.inflight.load(Relaxed),
            active_down,
            active_successes: self.active_ok.load(Relaxed),
            active_failures: self.active_fail.load(Relaxed),
            last_probe_error: self.last_probe_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            circuit,
            last_change: self
                .last_change
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|(at, what)| (now.saturating_sub(*at), what.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Outcome;
    use std::time::Duration;

    #[test]
    fn the_view_follows_the_circuit_and_the_checks() {
        let n = NodeState::default();
        let v = n.view(0);
        assert!(v.healthy && v.last_change.is_none());
        assert_eq!(v.circuit, Circuit::Closed { failures: 0 });

        n.report(Outcome::Failure, 2, Duration::from_secs(10), 0);
        assert_eq!(n.view(0).circuit, Circuit::Closed { failures: 1 });
        n.report(Outcome::Failure, 2, Duration::from_secs(10), 1_000_000);
        let v = n.view(3_000_000);
        assert!(!v.healthy);
        assert_eq!(
            v.circuit,
            Circuit::Open {
                remaining_us: 8_000_000
            }
        );
        let (ago, what) = v.last_change.expect("a change");
        assert_eq!(ago, 2_000_000);
        assert!(what.contains("ejected"), "{what}");
        assert_eq!(n.view(12_000_000).circuit, Circuit::HalfOpen { trial_in_flight: false });

        n.note_probe(Some("connect: refused"));
        n.report_active(false, 1, 1);
        let v = n.view(12_000_000);
        assert!(v.active_down && !v.healthy);
        assert_eq!(v.last_probe_error.as_deref(), Some("connect: refused"));
        n.note_probe(None);
        assert_eq!(n.view(0).last_probe_error, None);
    }
}
