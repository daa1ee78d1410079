//! A small, fast, non-cryptographic hasher for the router's string-keyed maps.
//!
//! The keys of these maps come from the configuration only; a request merely looks keys up,
//! so it cannot grow a collision chain, and a keyed (SipHash) hasher would buy nothing here
//! but a slower lookup per path segment and host label.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from configuration strings, hashed with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The multiply-rotate hash used by rustc (`FxHash`), eight bytes at a time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinguishes_similar_keys() {
        let mut map: FxHashMap<Box<str>, usize> = FxHashMap::default();
        for i in 0..10_000 {
            map.insert(format!("svc{i}").into(), i);
        }
        map.insert("".into(), usize::MAX);
        assert_eq!(map.len(), 10_001);
        assert_eq!(map.get("svc0"), Some(&0));
        assert_eq!(map.get("svc9999"), Some(&9999));
        assert_eq!(map.get(""), Some(&usize::MAX));
        assert_eq!(map.get("svc10000"), None);
        assert_eq!(map.get("svc01"), None);
    }
}
