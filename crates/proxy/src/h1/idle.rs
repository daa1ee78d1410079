//! Idle keep-alive connections of this worker thread, per (node, timeouts). No lock: each
//! worker is one thread, and a response body that ends hands its connection back here.

use super::Conn;
use crate::conn_watch::seconds;
use crate::pool::Key;
use rustc_hash::FxHashMap;
use std::cell::RefCell;

/// Idle connections kept per key; past this a returned connection is simply closed.
const MAX_IDLE_PER_KEY: usize = 512;
/// A connection idle for longer is closed rather than reused (nginx's upstream keepalive_timeout).
const MAX_IDLE_SECONDS: u32 = 60;

thread_local! {
    // Boxed: a connection moves between this list, the request and its response body, and a
    // box moves as one pointer.
    #[allow(clippy::vec_box)]
    static IDLE: RefCell<FxHashMap<Key, Vec<Box<Conn>>>> = RefCell::default();
}

/// The most recently used idle connection to `key` that is still open, if any.
pub fn checkout(key: Key) -> Option<Box<Conn>> {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.get_mut(&key)?;
        while let Some(conn) = list.pop() {
            // The coarse clock: exact enough for a minute, and no clock read per request.
            if seconds().saturating_sub(conn.idle_since) < MAX_IDLE_SECONDS && conn.io.still_open() {
                return Some(conn);
            }
        }
        None
    })
}

/// Keeps a connection whose last response was read to its end.
pub fn put(mut conn: Box<Conn>) {
    conn.idle_since = seconds();
    IDLE.with_borrow_mut(|idle| {
        let list = idle.entry(conn.key).or_default();
        if list.len() >= MAX_IDLE_PER_KEY {
            list.retain(|c| c.io.still_open());
        }
        if list.len() < MAX_IDLE_PER_KEY {
            list.push(conn);
        }
    });
}
