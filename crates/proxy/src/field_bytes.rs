//! HTTP/1 field values read as the raw bytes of a head, before any `HeaderValue` exists: the
//! rules the downstream reader, the upstream client and the response writer share.

/// A `Content-Length` value: digits only, as RFC 9110 8.6 has it (no sign, no spaces, no
/// list), and no more than fit a `u64`.
pub fn content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter()
        .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// The comma-separated tokens of a list value (`Connection`, `Transfer-Encoding`), trimmed.
pub fn tokens(v: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// Whether a `Connection` value says `close`.
pub fn has_close(v: &[u8]) -> bool {
    tokens(v).any(|t| t.eq_ignore_ascii_case(b"close"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b"1234"), Some(1234));
        for bad in [&b""[..], b"+5", b"-1", b" 5", b"5,5", b"0x10", b"99999999999999999999"] {
            assert_eq!(content_length(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn tokens_are_trimmed_and_close_is_found_in_any_case() {
        assert_eq!(
            tokens(b"keep-alive, Upgrade").collect::<Vec<_>>(),
            [&b"keep-alive"[..], b"Upgrade"]
        );
        assert_eq!(tokens(b"gzip , chunked").next_back(), Some(&b"chunked"[..]));
        assert!(has_close(b"keep-alive, Close"));
        assert!(!has_close(b"closed"));
    }
}
