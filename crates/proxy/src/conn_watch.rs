//! What ends an HTTP/1 connection from outside its request path: the worker shutting down,
//! or a client that has sent no complete request head for [`IDLE_LIMIT`] seconds since its
//! last response ended (an idle keep-alive connection, or a head sent too slowly).
//!
//! hyper's own header timeout arms, boxes and cancels a timer for every request; here each
//! worker has one 1-second tick that scans its connections, and a request only counts itself
//! in and out of its connection's [`Activity`] (a coarse clock read, two atomic adds).
//! A connection's watch future registers its waker once and then costs one flag read a poll.

use slab::Slab;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Seconds a connection may stay without a request in progress.
pub const IDLE_LIMIT: u32 = 30;

/// Seconds since the process's first tick, advanced by every worker's tick.
static SECONDS: AtomicU32 = AtomicU32::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The coarse clock: whole seconds, as of the last tick.
pub fn seconds() -> u32 {
    SECONDS.load(Ordering::Relaxed)
}

fn advance_clock() -> u32 {
    let now = u32::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_secs()).unwrap_or(u32::MAX);
    SECONDS.fetch_max(now, Ordering::Relaxed).max(now)
}

/// Whether a connection has a request in progress, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicU32,
    idle_since: AtomicU32,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU32::new(seconds()),
        }
    }
}

impl Activity {
    /// Whether a request is in progress.
    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    fn idle_for(&self, now: u32) -> Option<u32> {
        (self.in_flight.load(Ordering::Relaxed) == 0)
            .then(|| now.saturating_sub(self.idle_since.load(Ordering::Relaxed)))
    }
}

/// One request in progress on a connection, until its response ends (or is dropped).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Busy {
    pub fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(seconds(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a watched connection is to end.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Shutdown,
    Idle,
}

struct Watched {
    activity: Arc<Activity>,
    waker: Waker,
    idle: bool,
}

/// One worker's HTTP/1 connections.
#[derive(Default)]
pub struct Watch {
    stopping: Cell<bool>,
    conns: RefCell<Slab<Watched>>,
}

impl Watch {
    /// Wakes every connection to shut down; later waits end at once.
    pub fn trigger(&self) {
        self.stopping.set(true);
        let conns = std::mem::take(&mut *self.conns.borrow_mut());
        for (_, c) in conns {
            c.waker.wake();
        }
    }

    /// Advances the clock and wakes the connections idle for too long. Call once a second.
    pub fn tick(&self) {
        self.tick_at(advance_clock());
    }

    fn tick_at(&self, now: u32) {
        for (_, c) in self.conns.borrow_mut().iter_mut() {
            if !c.idle && c.activity.idle_for(now).is_some_and(|s| s >= IDLE_LIMIT) {
                c.idle = true;
                c.waker.wake_by_ref();
            }
        }
    }

    /// Finishes when the worker shuts down or the connection has been idle too long.
    pub fn wait(&self, activity: Arc<Activity>) -> Ended<'_> {
        Ended {
            watch: self,
            activity: Some(activity),
            key: None,
        }
    }
}

pub struct Ended<'a> {
    watch: &'a Watch,
    /// Until registered.
    activity: Option<Arc<Activity>>,
    key: Option<usize>,
}

impl Future for Ended<'_> {
    type Output = End;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<End> {
        let watch = self.watch;
        if watch.stopping.get() {
            return Poll::Ready(End::Shutdown);
        }
        let mut conns = watch.conns.borrow_mut();
        match self.key {
            // A task's waker stays the same while it lives: usually nothing to do.
            Some(k) => match conns.get_mut(k) {
                Some(c) if c.idle => return Poll::Ready(End::Idle),
                Some(c) if !c.waker.will_wake(cx.waker()) => c.waker.clone_from(cx.waker()),
                _ => {}
            },
            None => {
                if let Some(activity) = self.activity.take() {
                    let waker = cx.waker().clone();
                    self.key = Some(conns.insert(Watched {
                        activity,
                        waker,
                        idle: false,
                    }));
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        // After a shutdown the slab was emptied and takes no new entries: its keys are stale.
        if let Some(k) = self.key
            && !self.watch.stopping.get()
        {
            self.watch.conns.borrow_mut().try_remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn shutdown_wakes_every_waiting_connection_once() {
        let watch = Watch::default();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut a = Box::pin(watch.wait(Arc::default()));
        let mut b = Box::pin(watch.wait(Arc::default()));
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        drop(b);
        assert_eq!(watch.conns.borrow().len(), 1, "a dropped wait is forgotten");
        watch.trigger();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(a.as_mut().poll(&mut cx), Poll::Ready(End::Shutdown));
        let mut late = Box::pin(watch.wait(Arc::default()));
        assert_eq!(late.as_mut().poll(&mut cx), Poll::Ready(End::Shutdown));
    }

    #[test]
    fn only_a_connection_idle_past_the_limit_is_ended() {
        let watch = Watch::default();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let (idle, busy) = (Arc::new(Activity::default()), Arc::new(Activity::default()));
        let mut a = Box::pin(watch.wait(idle.clone()));
        let mut b = Box::pin(watch.wait(busy.clone()));
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        let _request = Busy::new(&busy);
        // Both went idle at second 100; only `busy` has a request in progress.
        for act in [&idle, &busy] {
            act.idle_since.store(100, Ordering::Relaxed);
        }
        watch.tick_at(100 + IDLE_LIMIT - 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "not yet");
        watch.tick_at(100 + IDLE_LIMIT);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(a.as_mut().poll(&mut cx), Poll::Ready(End::Idle));
        assert!(b.as_mut().poll(&mut cx).is_pending());
        watch.tick_at(100 + IDLE_LIMIT + 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "an ended connection is woken once");
    }

    #[test]
    fn a_finished_request_restarts_the_idle_count() {
        let activity = Arc::new(Activity::default());
        let busy = Busy::new(&activity);
        assert_eq!(activity.idle_for(u32::MAX), None, "busy is not idle");
        activity.idle_since.store(0, Ordering::Relaxed);
        let now = advance_clock();
        drop(busy);
        assert!(activity.idle_since.load(Ordering::Relaxed) >= now);
        assert_eq!(activity.idle_for(now), Some(0));
    }
}
