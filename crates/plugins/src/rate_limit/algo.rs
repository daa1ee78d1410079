//! The three algorithms as pure state machines over microseconds, shared by the local table
//! (one [`State`] per key) and mirrored line for line by the Redis script (`redis.lua`).
//!
//! - `fixed_window`: a counter per window `[k·W, (k+1)·W)`; cheap, but allows up to 2× the
//!   limit across a window edge.
//! - `sliding_window` (default): the sliding-window-counter approximation (Cloudflare, Kong):
//!   the previous window's count weighted by how much of it still overlaps the last W, plus
//!   the current count. No burst at window edges; two integers per key.
//! - `token_bucket`: GCRA (the generic cell rate algorithm, as the `governor` crate uses): one
//!   timestamp per key, the "theoretical arrival time"; a burst of `requests`, refilled evenly
//!   at `requests / window`.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    SlidingWindow,
    FixedWindow,
    TokenBucket,
}

impl Algorithm {
    /// The name the Redis script switches on.
    pub fn script_name(self) -> &'static str {
        match self {
            Algorithm::SlidingWindow => "sliding",
            Algorithm::FixedWindow => "fixed",
            Algorithm::TokenBucket => "bucket",
        }
    }
}

/// One request's verdict, and what the `X-RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    /// Requests still allowed now (after this one, if it was allowed).
    pub remaining: u64,
    /// Microseconds until the limit is whole again (the window ends; the bucket is full).
    pub reset_us: u64,
    /// When refused: microseconds until a request would be allowed.
    pub retry_us: u64,
}

impl Decision {
    /// Seconds, rounded up, for `X-RateLimit-Reset`.
    pub fn reset_secs(&self) -> u64 {
        self.reset_us.div_ceil(1_000_000)
    }

    /// Seconds, rounded up and at least 1, for `Retry-After`.
    pub fn retry_secs(&self) -> u64 {
        self.retry_us.div_ceil(1_000_000).max(1)
    }
}

/// A limit: `limit` requests per `window_us`.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub algorithm: Algorithm,
    pub limit: u64,
    pub window_us: u64,
}

/// One key's state; which fields mean what depends on the algorithm.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    /// fixed/sliding: the current window's index; bucket: the theoretical arrival time (µs).
    a: u64,
    /// fixed/sliding: the current window's count.
    curr: u64,
    /// sliding: the previous window's count.
    prev: u64,
}

impl Rule {
    /// GCRA's emission interval: one request's worth of the window (at least 1µs).
    fn interval(&self) -> u64 {
        (self.window_us / self.limit.max(1)).max(1)
    }

    /// Counts one request at `now` (µs) against `s`.
    pub fn check(&self, s: &mut State, now: u64) -> Decision {
        let (limit, w) = (self.limit, self.window_us.max(1));
        let refuse = |reset_us, retry_us| Decision {
            allowed: false,
            limit,
            remaining: 0,
            reset_us,
            retry_us,
        };
        match self.algorithm {
            Algorithm::FixedWindow => {
                let idx = now / w;
                if s.a != idx {
                    *s = State {
                        a: idx,
                        curr: 0,
                        prev: 0,
                    };
                }
                let reset = (idx + 1) * w - now;
                if s.curr >= limit {
                    return refuse(reset, reset);
                }
                s.curr += 1;
                Decision {
                    allowed: true,
                    limit,
                    remaining: limit - s.curr,
                    reset_us: reset,
                    retry_us: 0,
                }
            }
            Algorithm::SlidingWindow => {
                let (idx, elapsed) = (now / w, now % w);
                if s.a != idx {
                    let prev = if s.a + 1 == idx { s.curr } else { 0 };
                    *s = State { a: idx, curr: 0, prev };
                }
                let reset = w - elapsed;
                let est = s.prev as f64 * (w - elapsed) as f64 / w as f64 + s.curr as f64;
                if est + 1.0 > limit as f64 {
                    return refuse(reset, sliding_retry(s.prev, s.curr, limit, w, elapsed));
                }
                s.curr += 1;
                Decision {
                    allowed: true,
                    limit,
                    remaining: (limit as f64 - est - 1.0).max(0.0) as u64,
                    reset_us: reset,
                    retry_us: 0,
                }
            }
            Algorithm::TokenBucket => {
                let t = self.interval();
                let tau = w.saturating_sub(t);
                let tat = s.a.max(now);
                if tat - now > tau {
                    return refuse(tat - now, tat - now - tau);
                }
                s.a = tat + t;
                Decision {
                    allowed: true,
                    limit,
                    remaining: (w.saturating_sub(s.a - now)) / t,
                    reset_us: s.a - now,
                    retry_us: 0,
                }
            }
        }
    }

    /// When `s` holds nothing that a fresh state would not: it may be forgotten.
    pub fn idle_at(&self, s: &State) -> u64 {
        match self.algorithm {
            Algorithm::FixedWindow => (s.a + 1) * self.window_us,
            Algorithm::SlidingWindow => (s.a + 2) * self.window_us,
            Algorithm::TokenBucket => s.a,
        }
    }
}

/// Sliding window, refused: how long until `prev·(W−e)/W + curr + 1 ≤ limit` holds, in this
/// window (the previous window's weight fading) or the next (this window's count fading).
fn sliding_retry(prev: u64, curr: u64, limit: u64, w: u64, elapsed: u64) -> u64 {
    let (prev, curr, limit, w, elapsed) = (prev as f64, curr as f64, limit as f64, w as f64, elapsed as f64);
    if curr + 1.0 <= limit && prev > 0.0 {
        // prev·(W−e)/W ≤ limit−curr−1  ⇔  e ≥ W·(1 − (limit−curr−1)/prev)
        let e = w * (1.0 - (limit - curr - 1.0) / prev);
        return (e - elapsed).max(1.0).ceil() as u64;
    }
    // Next window: curr·(W−e)/W + 1 ≤ limit  ⇔  e ≥ W·(1 − (limit−1)/curr)
    let e = if curr > 0.0 {
        w * (1.0 - (limit - 1.0) / curr)
    } else {
        0.0
    };
    (w - elapsed + e.max(0.0)).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn admitted(rule: &Rule, s: &mut State, at: u64, n: u64) -> u64 {
        (0..n).filter(|_| rule.check(s, at).allowed).count() as u64
    }

    fn rule(algorithm: Algorithm, limit: u64, window_s: u64) -> Rule {
        Rule {
            algorithm,
            limit,
            window_us: window_s * S,
        }
    }

    #[test]
    fn fixed_window_counts_and_resets() {
        let r = rule(Algorithm::FixedWindow, 5, 60);
        let mut s = State::default();
        let d = r.check(&mut s, 10 * S);
        assert_eq!((d.allowed, d.remaining, d.reset_secs()), (true, 4, 50));
        assert_eq!(admitted(&r, &mut s, 11 * S, 10), 4);
        let d = r.check(&mut s, 12 * S);
        assert_eq!((d.allowed, d.retry_secs()), (false, 48));
        // The edge burst fixed windows allow: 5 more right after the boundary.
        assert_eq!(admitted(&r, &mut s, 60 * S, 10), 5);
    }

    #[test]
    fn sliding_window_has_no_edge_burst() {
        let r = rule(Algorithm::SlidingWindow, 10, 60);
        let mut s = State::default();
        assert_eq!(admitted(&r, &mut s, 59 * S, 20), 10);
        // Just after the edge, the previous window still weighs ~100%.
        assert_eq!(admitted(&r, &mut s, 60 * S + 1, 20), 0);
        // Half-way through, half of it has slid out.
        assert_eq!(admitted(&r, &mut s, 90 * S, 20), 5);
        // Two windows later, all of it.
        let mut s2 = State::default();
        assert_eq!(admitted(&r, &mut s2, 0, 20), 10);
        assert_eq!(admitted(&r, &mut s2, 120 * S, 20), 10);
    }

    #[test]
    fn sliding_retry_after_is_when_it_would_pass() {
        let r = rule(Algorithm::SlidingWindow, 10, 60);
        let mut s = State::default();
        admitted(&r, &mut s, 0, 10);
        let d = r.check(&mut s, 30 * S);
        assert!(!d.allowed);
        let at = 30 * S + d.retry_us;
        assert!(r.check(&mut s.clone(), at).allowed, "allowed after Retry-After");
        assert!(!r.check(&mut s.clone(), at - S).allowed, "not a second before");
    }

    #[test]
    fn token_bucket_bursts_then_refills_evenly() {
        let r = rule(Algorithm::TokenBucket, 10, 60);
        let mut s = State::default();
        let d = r.check(&mut s, 100 * S);
        assert_eq!((d.remaining, d.reset_secs()), (9, 6));
        assert_eq!(admitted(&r, &mut s, 100 * S, 20), 9);
        let d = r.check(&mut s, 100 * S);
        assert_eq!((d.allowed, d.retry_secs()), (false, 6));
        assert_eq!(admitted(&r, &mut s, 106 * S, 5), 1, "one token per 6s");
        assert_eq!(admitted(&r, &mut s, 1000 * S, 20), 10, "full again");
        let odd = rule(Algorithm::TokenBucket, 7, 60);
        assert_eq!(admitted(&odd, &mut State::default(), 5 * S, 20), 7);
    }
}
