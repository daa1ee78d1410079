//! A few short texts of a request (its id, host, path) copied out of it, inline.
//!
//! An access-log record or a span waits for another thread after its response is done. Had it
//! kept the request's `Uri` or a `HeaderValue`, it would keep a reference into hyper's read
//! buffer, and hyper, finding the buffer still shared, would allocate a new one for the next
//! request on the connection. Copying the few bytes is cheaper, and they usually fit inline.

/// Bytes kept inline; longer texts take one allocation.
const INLINE: usize = 112;

/// `N` optional texts in one buffer.
#[derive(Debug, Clone)]
pub struct Copied<const N: usize> {
    inline: [u8; INLINE],
    /// All the texts, when they do not fit inline.
    heap: Option<Box<[u8]>>,
    /// Where each text ends; `u32::MAX` for an absent one (its start is then the end of the
    /// one before).
    ends: [u32; N],
}

const ABSENT: u32 = u32::MAX;

impl<const N: usize> Copied<N> {
    /// Copies `texts`.
    pub fn new(texts: [Option<&str>; N]) -> Self {
        let mut ends = [ABSENT; N];
        let mut len = 0;
        for (end, text) in ends.iter_mut().zip(&texts) {
            if let Some(t) = text {
                len += t.len();
                *end = u32::try_from(len).unwrap_or(ABSENT);
            }
        }
        let mut inline = [0u8; INLINE];
        let heap = if len <= INLINE {
            let mut at = 0;
            for t in texts.iter().flatten() {
                inline[at..at + t.len()].copy_from_slice(t.as_bytes());
                at += t.len();
            }
            None
        } else {
            let mut all = Vec::with_capacity(len);
            for t in texts.iter().flatten() {
                all.extend_from_slice(t.as_bytes());
            }
            Some(all.into_boxed_slice())
        };
        Copied { inline, heap, ends }
    }

    /// Text `i`, if it was given.
    #[cfg(test)]
    pub fn get(&self, i: usize) -> Option<&str> {
        std::str::from_utf8(self.bytes(i)?).ok()
    }

    /// Text `i` as bytes (UTF-8), if it was given: no validation.
    pub fn bytes(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        if end == ABSENT {
            return None;
        }
        let start = self.ends[..i]
            .iter()
            .rev()
            .find(|&&e| e != ABSENT)
            .copied()
            .unwrap_or(0);
        let all = self.heap.as_deref().unwrap_or(&self.inline);
        all.get(start as usize..end as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_come_back_as_given() {
        let c = Copied::new([Some("req-1"), None, Some("/a/b"), Some("")]);
        assert_eq!(c.get(0), Some("req-1"));
        assert_eq!(c.get(1), None);
        assert_eq!(c.get(2), Some("/a/b"));
        assert_eq!(c.get(3), Some(""));
        assert_eq!(c.get(4), None);
        assert_eq!((c.bytes(2), c.bytes(1)), (Some(&b"/a/b"[..]), None));
        for n in [INLINE - 1, INLINE, INLINE + 1, 5000] {
            let long = "x".repeat(n);
            let c = Copied::new([Some("id"), None, Some(long.as_str())]);
            assert_eq!((c.get(0), c.get(1), c.get(2)), (Some("id"), None, Some(long.as_str())));
        }
    }
}
