//! Path patterns: parsing `/users`, `/users/{id}` and `/static/*` into segments, with errors.

use std::sync::Arc;

/// One segment of a path pattern, between two slashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Matches exactly this text (possibly empty, as in the last segment of `/users/`).
    Static(Arc<str>),
    /// `{name}`: matches exactly one non-empty segment. The name only matters for validation.
    Param,
}

/// How specific a path pattern is; greater is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PathKind {
    /// Ends in `/*`: matches its base and everything below it.
    Prefix,
    /// Has at least one `{param}` and no trailing `/*`.
    Param,
    /// Plain text only.
    Exact,
}

/// A parsed path pattern.
///
/// The text after the leading `/` is split on `/`, so `/` is one empty segment and `/users/`
/// is `users` followed by an empty segment. A trailing `/*` is removed and sets `prefix`: the
/// remaining segments are the base, and `/*` alone has an empty base that matches every path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    pub(crate) segments: Vec<Segment>,
    pub(crate) prefix: bool,
}

impl Pattern {
    /// Parses `text`, or says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let Some(body) = text.strip_prefix('/') else {
            return Err(format!("invalid path {text:?}: must start with \"/\""));
        };
        let mut raw: Vec<&str> = body.split('/').collect();
        let prefix = raw.last() == Some(&"*");
        if prefix {
            raw.pop();
        }
        let mut names: Vec<&str> = Vec::new();
        let mut segments = Vec::with_capacity(raw.len());
        for seg in raw {
            let segment = parse_segment(seg).map_err(|why| format!("invalid path {text:?}: {why}"))?;
            if let Some(name) = segment {
                if names.contains(&name) {
                    return Err(format!("invalid path {text:?}: duplicate parameter {{{name}}}"));
                }
                names.push(name);
                segments.push(Segment::Param);
            } else {
                segments.push(Segment::Static(seg.into()));
            }
        }
        Ok(Self { segments, prefix })
    }

    /// Whether this is an exact, a `{param}` or a prefix pattern.
    pub(crate) fn kind(&self) -> PathKind {
        if self.prefix {
            PathKind::Prefix
        } else if self.segments.contains(&Segment::Param) {
            PathKind::Param
        } else {
            PathKind::Exact
        }
    }

    /// The length of a prefix pattern's base: its segments, then the bytes of its static
    /// segments (so `/abc/*` is longer than `/{x}/*`). Zero for other patterns, whose
    /// precedence does not depend on length.
    pub(crate) fn prefix_len(&self) -> (u32, u32) {
        if !self.prefix {
            return (0, 0);
        }
        let bytes: usize = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Static(text) => text.len(),
                Segment::Param => 0,
            })
            .sum();
        (saturate(self.segments.len()), saturate(bytes))
    }
}

/// Classifies one segment: `Ok(Some(name))` for `{name}`, `Ok(None)` for static text.
fn parse_segment(seg: &str) -> Result<Option<&str>, String> {
    if seg.contains('*') {
        return Err(format!(
            "\"*\" is only allowed as a final \"/*\" segment (found {seg:?})"
        ));
    }
    let opens = seg.matches('{').count();
    let closes = seg.matches('}').count();
    if opens == 0 && closes == 0 {
        return Ok(None);
    }
    if opens != closes {
        return Err(format!("unbalanced braces in segment {seg:?}"));
    }
    match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        Some("") => Err("empty parameter name \"{}\"".to_owned()),
        Some(name) if opens == 1 => Ok(Some(name)),
        _ => Err(format!("a {{param}} must be a whole segment (found {seg:?})")),
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Pattern {
        Pattern::parse(text).expect(text)
    }

    fn st(s: &str) -> Segment {
        Segment::Static(s.into())
    }

    #[test]
    fn splits_segments() {
        assert_eq!(ok("/").segments, vec![st("")]);
        assert_eq!(ok("/users").segments, vec![st("users")]);
        assert_eq!(ok("/users/").segments, vec![st("users"), st("")]);
        assert_eq!(ok("/users/{id}").segments, vec![st("users"), Segment::Param]);
        assert_eq!(ok("/a/{x}/b/{y}").segments.len(), 4);
    }

    #[test]
    fn prefixes() {
        let all = ok("/*");
        assert!(all.prefix);
        assert!(all.segments.is_empty());
        let s = ok("/static/*");
        assert!(s.prefix);
        assert_eq!(s.segments, vec![st("static")]);
        let p = ok("/{tenant}/files/*");
        assert!(p.prefix);
        assert_eq!(p.segments, vec![Segment::Param, st("files")]);
    }

    #[test]
    fn kinds_and_lengths() {
        assert_eq!(ok("/users").kind(), PathKind::Exact);
        assert_eq!(ok("/users/{id}").kind(), PathKind::Param);
        assert_eq!(ok("/users/*").kind(), PathKind::Prefix);
        assert_eq!(ok("/{t}/*").kind(), PathKind::Prefix);
        assert!(PathKind::Exact > PathKind::Param && PathKind::Param > PathKind::Prefix);
        assert_eq!(ok("/users").prefix_len(), (0, 0));
        assert_eq!(ok("/*").prefix_len(), (0, 0));
        assert_eq!(ok("/abc/de/*").prefix_len(), (2, 5));
        assert_eq!(ok("/{x}/de/*").prefix_len(), (2, 2));
    }

    #[test]
    fn rejects_bad_patterns() {
        let cases = [
            ("users", "must start with"),
            ("", "must start with"),
            ("*", "must start with"),
            ("/a*", "\"*\" is only allowed"),
            ("/*/a", "\"*\" is only allowed"),
            ("/a/*b", "\"*\" is only allowed"),
            ("/a/**", "\"*\" is only allowed"),
            ("/a/*/*", "\"*\" is only allowed"),
            ("/{*}", "\"*\" is only allowed"),
            ("/{id", "unbalanced"),
            ("/id}", "unbalanced"),
            ("/{a/b}", "unbalanced"),
            ("/{{a}", "unbalanced"),
            ("/{}", "empty parameter"),
            ("/a{id}", "whole segment"),
            ("/{id}x", "whole segment"),
            ("/{a}{b}", "whole segment"),
            ("/{{a}}", "whole segment"),
            ("/}a{", "whole segment"),
            ("/{id}/x/{id}", "duplicate parameter {id}"),
            ("/{id}/{id}/*", "duplicate parameter {id}"),
        ];
        for (text, want) in cases {
            let err = Pattern::parse(text).expect_err(text);
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains(&format!("{text:?}")), "{text:?}: {err}");
        }
    }

    #[test]
    fn accepts_unusual_but_valid_patterns() {
        ok("/a//b");
        ok("/{id}/{Id}");
        ok("/v1.0/{file_name}/*");
        ok("/caf\u{e9}/{x}");
    }
}
