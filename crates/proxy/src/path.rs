//! Request path normalization before routing: `.`/`..` segments resolved (also when written
//! as `%2e`), repeated slashes merged, so `/public/../admin` is routed, and forwarded, as `/admin`.

use std::borrow::Cow;

/// The normalized path; borrowed (no allocation) when `path` is already normal.
pub fn normalize(path: &str) -> Cow<'_, str> {
    if !path.starts_with('/') || !needs_work(path) {
        return Cow::Borrowed(path);
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match dots(seg) {
            1 => {}
            2 => {
                out.pop();
            }
            _ if seg.is_empty() && i != last => {}
            _ => out.push(seg),
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    // A path ending in a dot segment names a directory: keep the slash, as RFC 3986 does.
    if s.is_empty() || (dots(segments[last]) > 0 && !s.ends_with('/')) {
        s.push('/');
    }
    Cow::Owned(s)
}

fn needs_work(path: &str) -> bool {
    path.contains("//") || path.split('/').any(|seg| dots(seg) > 0)
}

/// 1 for a `.` segment, 2 for `..` (either possibly percent-encoded), else 0.
fn dots(seg: &str) -> u8 {
    let b = seg.as_bytes();
    let is_dot = |s: &[u8]| s == b"." || s.eq_ignore_ascii_case(b"%2e");
    match b.len() {
        1 | 3 if is_dot(b) => 1,
        2 if b == b".." => 2,
        4 if (is_dot(&b[..1]) && is_dot(&b[1..])) || (is_dot(&b[..3]) && is_dot(&b[3..])) => 2,
        6 if is_dot(&b[..3]) && is_dot(&b[3..]) => 2,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed() {
        assert!(matches!(normalize("/users/7"), Cow::Borrowed(_)));
        assert!(matches!(normalize("/a.b/c..d/.e"), Cow::Borrowed(_)));
    }

    #[test]
    fn dot_segments_and_slashes_resolve() {
        assert_eq!(normalize("/public/../admin"), "/admin");
        assert_eq!(normalize("/public/%2e%2E/admin"), "/admin");
        assert_eq!(normalize("/public/.%2e/admin"), "/admin");
        assert_eq!(normalize("/a/./b//c/"), "/a/b/c/");
        assert_eq!(normalize("/../../x"), "/x");
        assert_eq!(normalize("/a/.."), "/");
        assert_eq!(normalize("/a/b/."), "/a/b/");
        assert_eq!(normalize("//"), "/");
    }
}
