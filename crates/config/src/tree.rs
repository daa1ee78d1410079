//! YAML text to a JSON tree: the one untyped form of a config file.
//!
//! serde_yaml reads the text and its events go straight into a [`serde_json::Value`], with no
//! YAML tree in between (building one, then converting it, was a third of reading a
//! 10,000-route file). The same tree gives the typed config and, in `portico push`, the JSON
//! documents the store holds, so a file and the store read the same values.
//!
//! What JSON cannot hold is an error with its line, never a silent change: a duplicate key, a
//! null, sequence or mapping as a key, a YAML tag, a number that is not finite. A number or
//! boolean key becomes its text (`200:` is the key `"200"`), as JSON writes it.

use serde::de::{DeserializeSeed, Deserializer, EnumAccess, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// The JSON tree of a YAML document (`null` for an empty one).
pub fn from_yaml(text: &str) -> Result<Value, serde_yaml::Error> {
    from_yaml_noting_vars(text).map(|(value, _)| value)
}

/// [`from_yaml`], and whether any string value holds `${` (so a tree without one need not be
/// walked for `${VAR}` substitution).
pub fn from_yaml_noting_vars(text: &str) -> Result<(Value, bool), serde_yaml::Error> {
    let vars = Cell::new(false);
    let value = Tree(&vars).deserialize(serde_yaml::Deserializer::from_str(text))?;
    Ok((value, vars.get()))
}

/// Builds one node of the tree, noting a string value with `${` in it.
#[derive(Clone, Copy)]
struct Tree<'a>(&'a Cell<bool>);

impl Tree<'_> {
    fn string(self, s: String) -> Value {
        if s.contains("${") {
            self.0.set(true);
        }
        Value::String(s)
    }
}

impl<'de> DeserializeSeed<'de> for Tree<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tree<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value JSON can hold")
    }
    fn visit_unit<E: Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_bool<E: Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
        finite(v).map(Value::Number)
    }
    fn visit_str<E: Error>(self, v: &str) -> Result<Value, E> {
        Ok(self.string(v.to_owned()))
    }
    fn visit_string<E: Error>(self, v: String) -> Result<Value, E> {
        Ok(self.string(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeyText)? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate entry with key {key:?}")));
            }
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(A::Error::custom("YAML tags (`!name value`) are not supported"))
    }
}

/// A mapping key as text.
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number or boolean as a key")
    }
    fn visit_bool<E: Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: Error>(self, v: f64) -> Result<String, E> {
        finite(v).map(|n| n.to_string())
    }
    fn visit_str<E: Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

fn finite<E: Error>(v: f64) -> Result<Number, E> {
    Number::from_f64(v).ok_or_else(|| E::custom(format_args!("{v} is not a number JSON can hold")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_reads_as_the_json_it_means() {
        let v = from_yaml("a: [1, -2, 1.5, true, ~, x, '3']\nb: { 200: ok, true: yes, c: { d: [] } }\ne: !!str 5\n")
            .unwrap();
        assert_eq!(
            v,
            json!({
                "a": [1, -2, 1.5, true, null, "x", "3"],
                "b": { "200": "ok", "true": "yes", "c": { "d": [] } },
                "e": "5"
            })
        );
        assert_eq!(from_yaml("").unwrap(), Value::Null);
        assert!(!from_yaml_noting_vars("a: { $b: '$', c: '{}' }").unwrap().1);
        assert!(from_yaml_noting_vars("a: [x, \"\\x24{B}\"]").unwrap().1);
        // Anchors and aliases are expanded.
        assert_eq!(
            from_yaml("a: &x { b: 1 }\nc: *x\n").unwrap(),
            json!({ "a": { "b": 1 }, "c": { "b": 1 } })
        );
    }

    #[test]
    fn what_json_cannot_hold_is_an_error_with_its_line() {
        for (text, wanted) in [
            ("x:\n  a: 1\n  b: 2\n  a: 3\n", "duplicate entry with key \"a\""),
            ("x:\n  ? [1]\n  : 2\n", "as a key"),
            ("x:\n  ~: 2\n", "as a key"),
            ("x:\n  a: !custom 1\n", "tags"),
            ("x:\n  a: .inf\n", "not a number JSON can hold"),
            ("x: [1\n", ""),
        ] {
            let err = from_yaml(text).unwrap_err().to_string();
            assert!(err.contains(wanted), "{text:?}: {err}");
            assert!(err.contains("line"), "{text:?}: {err}");
        }
    }
}
