//! Header edits shared by the request and response transformers: remove, then set, then add.

use http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::BTreeMap;

/// Compiled header edits: names and values parsed once at config time.
#[derive(Debug, Default, Clone)]
pub struct HeaderOps {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderOps {
    /// Parses a plugin's `add_headers`, `set_headers` (name → value) and `remove_headers` (names).
    pub fn compile(
        add: &BTreeMap<String, String>,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<Self, String> {
        Ok(Self {
            remove: remove.iter().map(|n| name(n)).collect::<Result<_, _>>()?,
            set: pairs(set)?,
            add: pairs(add)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// `remove` deletes every value, `set` replaces every value, `add` appends one more value.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for n in &self.remove {
            headers.remove(n);
        }
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
    }
}

fn name(n: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("invalid header name {n:?}"))
}

fn pairs(map: &BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    map.iter()
        .map(|(n, v)| {
            let value = HeaderValue::from_str(v).map_err(|_| format!("invalid value for header {n:?}"))?;
            Ok((name(n)?, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_then_set_then_add() {
        let add = [("x-a".into(), "2".into())].into();
        let set = [("x-b".into(), "new".into())].into();
        let ops = HeaderOps::compile(&add, &set, &["x-c".into(), "x-a".into()]).expect("compiles");
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-b", HeaderValue::from_static("old1"));
        h.append("x-b", HeaderValue::from_static("old2"));
        h.append("x-c", HeaderValue::from_static("gone"));
        ops.apply(&mut h);
        assert_eq!(h.get_all("x-a").iter().collect::<Vec<_>>(), ["2"]);
        assert_eq!(h.get_all("x-b").iter().collect::<Vec<_>>(), ["new"]);
        assert!(h.get("x-c").is_none());
    }

    #[test]
    fn bad_names_and_values_are_errors() {
        let none = BTreeMap::new();
        assert!(HeaderOps::compile(&none, &none, &["bad name".into()]).is_err());
        let bad_value = [("x".into(), "a\nb".into())].into();
        assert!(HeaderOps::compile(&none, &bad_value, &[]).is_err());
    }
}
