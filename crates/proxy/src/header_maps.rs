//! Header maps recycled per worker thread: a request's and a response's map each cost two
//! allocations and two frees (indices and entries); a map handed back when its message is
//! done is cleared, keeping its memory, and taken by the next message.

use http::HeaderMap;
use std::cell::RefCell;

/// Maps kept per thread (about the requests one worker has in flight at once).
const KEEP: usize = 256;
/// A map grown past this many headers is let go rather than kept.
const MAX_KEPT: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for `n` headers.
pub fn take(n: usize) -> HeaderMap {
    let Some(mut map) = FREE.with_borrow_mut(Vec::pop) else {
        return HeaderMap::with_capacity(n);
    };
    map.reserve(n);
    map
}

/// Hands `map` back for reuse.
pub fn give(mut map: HeaderMap) {
    if map.capacity() == 0 || map.capacity() > MAX_KEPT {
        return;
    }
    map.clear();
    FREE.with_borrow_mut(|free| {
        if free.len() < KEEP {
            free.push(map);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_map_given_back_comes_back_empty_with_its_room() {
        let mut m = take(8);
        m.insert("x-a", HeaderValue::from_static("1"));
        let cap = m.capacity();
        give(m);
        let m = take(4);
        assert!(m.is_empty());
        assert_eq!(m.capacity(), cap);
        // Grown maps are not kept.
        let mut big = HeaderMap::with_capacity(MAX_KEPT * 2);
        big.insert("x-b", HeaderValue::from_static("2"));
        give(big);
        assert!(take(1).capacity() <= MAX_KEPT);
    }
}
