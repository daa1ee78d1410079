//! The `X-API-Key` check: digests compared in constant time, so neither the key's bytes nor
//! its length can be learned from timing. The key is never logged.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `sent` (the `X-API-Key` header, if any) is `key`.
pub fn key_matches(sent: Option<&[u8]>, key: &str) -> bool {
    let Some(sent) = sent else { return false };
    if key.is_empty() {
        return false;
    }
    let a = Sha256::digest(sent);
    let b = Sha256::digest(key.as_bytes());
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_matches() {
        let key = "0123456789abcdef";
        assert!(key_matches(Some(key.as_bytes()), key));
        assert!(!key_matches(None, key));
        assert!(!key_matches(Some(b""), key));
        assert!(!key_matches(Some(b"0123456789abcde"), key));
        assert!(!key_matches(Some(b"0123456789abcdef "), key));
        assert!(!key_matches(Some(b""), ""), "an empty key never matches");
    }
}
