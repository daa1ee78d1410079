//! State kept per worker thread for one owner (the access log, the tracer): each thread
//! writes its own shard, behind a lock that only the owner's background thread contends for.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::LocalKey;

/// A thread's shard and the id of the [`Shards`] it belongs to (an owner replaced by a
/// reload or a restart in tests gets new shards).
pub type Local<S> = RefCell<Option<(usize, Arc<Mutex<S>>)>>;

pub struct Shards<S> {
    id: usize,
    all: Mutex<Vec<Arc<Mutex<S>>>>,
}

impl<S> Default for Shards<S> {
    fn default() -> Self {
        static IDS: AtomicUsize = AtomicUsize::new(1);
        Self {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            all: Mutex::default(),
        }
    }
}

impl<S: 'static> Shards<S> {
    /// Runs `f` on this thread's shard, made by `make` on the thread's first use.
    pub fn with<R>(
        &self,
        local: &'static LocalKey<Local<S>>,
        make: impl FnOnce() -> S,
        f: impl FnOnce(&mut S) -> R,
    ) -> R {
        local.with(|cell| {
            let mut cell = cell.borrow_mut();
            let shard = match &*cell {
                Some((id, shard)) if *id == self.id => shard,
                _ => {
                    let shard = Arc::new(Mutex::new(make()));
                    lock(&self.all).push(shard.clone());
                    &cell.insert((self.id, shard)).1
                }
            };
            f(&mut lock(shard))
        })
    }

    /// Every thread's shard.
    pub fn all(&self) -> Vec<Arc<Mutex<S>>> {
        lock(&self.all).clone()
    }
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
