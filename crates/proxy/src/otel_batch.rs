//! Where finished spans wait for the exporter: each thread that ends spans (a worker) encodes
//! them into a batch of its own, behind a lock that only the exporter ever contends for, a few
//! times a second.
//!
//! A span handed over a channel costs a copy or an allocation freed on another thread, and a
//! message per span; here it costs an uncontended lock and its encoding, appended to a buffer
//! that becomes the export request's body as it is (room is left in front for its head). A
//! batch that reaches `max_spans` is sealed and the exporter woken; one that is not full is
//! taken once its first span has waited `delay` (the exporter is woken by that first span, to
//! learn when). A thread with `queue` spans waiting drops the
//! next (counted by the caller): a request never waits for the exporter.

use crate::otel::SpanData;
use crate::otel_proto::{Batch, SpanWriter};
use crate::shards::{Local, Shards, lock};
use std::cell::RefCell;
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Every thread's batches, for one tracer.
pub struct Batches {
    shards: Shards<ShardState>,
    max_spans: usize,
    queue: usize,
    /// What each batch leaves in front for the export request's head.
    room: usize,
    /// Woken when a batch takes its first span or is sealed.
    exporter: OnceLock<Thread>,
}

/// One thread's batches.
#[derive(Default)]
struct ShardState {
    open: SpanWriter,
    /// When `open` took its first span.
    since: Option<Instant>,
    /// Batches of `max_spans` spans, oldest first.
    sealed: Vec<Batch>,
    /// Spans in `open` and `sealed`.
    waiting: usize,
}

thread_local! {
    static SHARD: Local<ShardState> = const { RefCell::new(None) };
}

impl Batches {
    pub fn new(max_spans: usize, queue: usize, room: usize) -> Self {
        Batches {
            shards: Shards::default(),
            max_spans: max_spans.max(1),
            queue: queue.max(1),
            room,
            exporter: OnceLock::new(),
        }
    }

    /// The thread [`Batches::push`] wakes when a batch is full.
    pub fn wake(&self, exporter: Thread) {
        let _ = self.exporter.set(exporter);
    }

    /// Encodes `span` into this thread's batch; false (the span dropped) when this thread
    /// already has `queue` spans waiting.
    pub fn push(&self, span: &SpanData) -> bool {
        // Some(whether to wake the exporter), or None for a dropped span.
        let make = || ShardState {
            open: SpanWriter::with_room(self.room),
            ..ShardState::default()
        };
        let sealed = self.shards.with(&SHARD, make, |st| {
            if st.waiting >= self.queue {
                return None;
            }
            let first = st.open.len() == 0;
            if first {
                st.since = Some(Instant::now());
            }
            st.open.push(span);
            st.waiting += 1;
            if st.open.len() < self.max_spans {
                return Some(first);
            }
            let full = st.open.take();
            st.sealed.push(full);
            Some(true)
        });
        match sealed {
            None => false,
            Some(wake) => {
                if wake && let Some(t) = self.exporter.get() {
                    t.unpark();
                }
                true
            }
        }
    }

    /// The batches to export now: every sealed one, and each open one whose first span has
    /// waited `delay` (every open one when `all`); and when the next open one is due.
    pub fn take(&self, delay: Duration, all: bool) -> (Vec<Batch>, Option<Instant>) {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut next = None;
        for shard in self.shards.all() {
            let mut st = lock(&shard);
            let st = &mut *st;
            out.append(&mut st.sealed);
            if let Some(since) = st.since.filter(|_| st.open.len() > 0) {
                let due = since + delay;
                if all || due <= now {
                    out.push(st.open.take());
                    st.since = None;
                } else {
                    next = Some(next.map_or(due, |n: Instant| n.min(due)));
                }
            }
            st.waiting = st.open.len();
        }
        (out, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copied::Copied;
    use http::Method;
    use std::sync::Arc;

    fn span() -> SpanData {
        SpanData {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: None,
            start_unix_ns: 1,
            end_unix_ns: 2,
            method: Method::GET,
            texts: Copied::new([None, Some("/")]),
            scheme: "http",
            client_ip: "127.0.0.1".parse().unwrap(),
            route: None,
            upstream: None,
            node: None,
            upstream_status: None,
            status: 200,
        }
    }

    #[test]
    fn full_batches_are_sealed_and_open_ones_wait_for_their_delay() {
        let b = Batches::new(3, 7, 0);
        for _ in 0..4 {
            assert!(b.push(&span()));
        }
        // One sealed batch of 3; the open one (1 span) has not waited an hour.
        let (taken, next) = b.take(Duration::from_secs(3600), false);
        assert_eq!(taken.iter().map(|t| t.count).collect::<Vec<_>>(), vec![3]);
        assert!(next.is_some_and(|n| n > Instant::now() + Duration::from_secs(3000)));
        let (taken, next) = b.take(Duration::ZERO, false);
        assert_eq!(taken.iter().map(|t| t.count).collect::<Vec<_>>(), vec![1]);
        assert_eq!(next, None);
        assert!(b.take(Duration::ZERO, true).0.is_empty());
    }

    #[test]
    fn a_thread_with_a_full_queue_drops_spans() {
        let b = Batches::new(2, 5, 0);
        let kept = (0..8).filter(|_| b.push(&span())).count();
        assert_eq!(kept, 5);
        let (taken, _) = b.take(Duration::ZERO, true);
        assert_eq!(taken.iter().map(|t| t.count).sum::<usize>(), 5);
        // Room again once taken; another thread has a queue of its own.
        assert!(b.push(&span()));
        let b = Arc::new(b);
        let other = b.clone();
        let kept = std::thread::spawn(move || (0..8).filter(|_| other.push(&span())).count());
        assert_eq!(kept.join().unwrap(), 5);
        let (taken, _) = b.take(Duration::ZERO, true);
        assert_eq!(taken.iter().map(|t| t.count).sum::<usize>(), 6);
    }
}
