//! YAML text to a JSON tree: the one untyped form of a config file.
//!
//! saphyr-parser reads the text and its events go straight into a [`serde_json::Value`], one
//! at a time: no YAML tree, and no list of every event of the document first (serde_yaml
//! keeps one, 14 MB for a 10,000-route file, which cost a fifth of reading it). The same tree
//! gives the typed config and, in `portico push`, the JSON documents the store holds, so a
//! file and the store read the same values.
//!
//! Plain scalars resolve as serde_yaml resolves them (YAML 1.2's core schema): `~`, `null`
//! and nothing are null; `true`/`false` (also `True`, `TRUE`, ...) booleans; decimal, `0x`,
//! `0o` and `0b` integers, but not digits with a leading zero (`0123` is a string); then
//! floats; anything else, and every quoted or block scalar, a string. The core tags (`!!str`,
//! `!!int`, ...) are honoured; anchors and aliases are expanded.
//!
//! What JSON cannot hold is an error with its line, never a silent change: a duplicate key, a
//! null, sequence or mapping as a key, any other tag, a number that is not finite or does not
//! fit 64 bits, more than one document. A number or boolean key becomes its text (`200:` is
//! the key `"200"`), as JSON writes it.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// How deep sequences and mappings may nest (as serde_yaml allows).
const MAX_DEPTH: usize = 128;

/// How many values aliases may copy in all: a few anchors referring to each other must not
/// make gigabytes out of a small file.
const MAX_ALIASED: usize = 100_000;

/// Why a text is not a config tree, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError(String);

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for YamlError {}

/// The JSON tree of a YAML document (`null` for an empty one).
pub fn from_yaml(text: &str) -> Result<Value, YamlError> {
    from_yaml_noting_vars(text).map(|(value, _)| value)
}

/// [`from_yaml`], and whether any string holds `${` (so a tree without one need not be walked
/// for `${VAR}` substitution).
pub fn from_yaml_noting_vars(text: &str) -> Result<(Value, bool), YamlError> {
    let mut tree = Builder::default();
    for next in Parser::new_from_str(text) {
        let (event, span) = next.map_err(|e| at(e.info(), *e.marker()))?;
        tree.event(event).map_err(|message| at(&message, span.start))?;
    }
    Ok((tree.root.unwrap_or(Value::Null), tree.vars))
}

fn at(message: &str, mark: Marker) -> YamlError {
    YamlError(format!("{message} at line {} column {}", mark.line(), mark.col() + 1))
}

/// The tree so far: the collections still open, innermost last.
#[derive(Default)]
struct Builder {
    open: Vec<Open>,
    root: Option<Value>,
    documents: usize,
    /// Anchored values by anchor id, with how many values each holds.
    anchors: HashMap<usize, (Value, usize)>,
    aliased: usize,
    vars: bool,
}

/// A collection being read, and its anchor id (0 for none).
enum Open {
    Seq(Vec<Value>, usize),
    Map(Map<String, Value>, Option<String>, usize),
}

impl Builder {
    fn event(&mut self, event: Event<'_>) -> Result<(), String> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err("more than one YAML document (`---`); a config is one".into());
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text, style, tag.as_deref())?;
                if let Value::String(s) = &value
                    && s.contains("${")
                {
                    self.vars = true;
                }
                self.anchor(anchor, &value);
                self.put(value)?;
            }
            Event::SequenceStart(anchor, tag) => {
                collection_tag(tag.as_deref(), "seq")?;
                self.nest()?;
                self.open.push(Open::Seq(Vec::new(), anchor));
            }
            Event::MappingStart(anchor, tag) => {
                collection_tag(tag.as_deref(), "map")?;
                self.nest()?;
                self.open.push(Open::Map(Map::new(), None, anchor));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.open.pop() {
                    Some(Open::Seq(items, anchor)) => (Value::Array(items), anchor),
                    Some(Open::Map(map, _, anchor)) => (Value::Object(map), anchor),
                    None => return Err("unbalanced YAML collection".into()),
                };
                self.anchor(anchor, &value);
                self.put(value)?;
            }
            Event::Alias(id) => {
                let Some((value, size)) = self.anchors.get(&id) else {
                    return Err("an alias to an unknown anchor".into());
                };
                self.aliased += size;
                if self.aliased > MAX_ALIASED {
                    return Err(format!("aliases copy more than {MAX_ALIASED} values"));
                }
                let value = value.clone();
                self.put(value)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn nest(&self) -> Result<(), String> {
        if self.open.len() >= MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        Ok(())
    }

    /// Keeps a copy of an anchored value for its aliases.
    fn anchor(&mut self, anchor: usize, value: &Value) {
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), size(value)));
        }
    }

    /// Puts a finished value where it belongs: an item, a key, a key's value, or the root.
    fn put(&mut self, value: Value) -> Result<(), String> {
        match self.open.last_mut() {
            None => self.root = Some(value),
            Some(Open::Seq(items, _)) => items.push(value),
            Some(Open::Map(_, key @ None, _)) => *key = Some(key_text(value)?),
            Some(Open::Map(map, key, _)) => {
                let Some(key) = key.take() else {
                    return Ok(());
                };
                if map.contains_key(&key) {
                    return Err(format!("duplicate entry with key {key:?}"));
                }
                map.insert(key, value);
            }
        }
        Ok(())
    }
}

/// How many values `value` holds, itself included.
fn size(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(size).sum(),
        Value::Object(map) => map.values().map(size).sum(),
        _ => 0,
    }
}

/// A mapping key as text.
fn key_text(key: Value) -> Result<String, String> {
    match key {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => {
            Err("a mapping key must be a string, number or boolean".into())
        }
    }
}

/// The core schema's tag `suffix`, if `tag` is one.
fn core(tag: &Tag) -> Option<&str> {
    tag.is_yaml_core_schema().then_some(tag.suffix.as_str())
}

fn unsupported(tag: &Tag) -> String {
    format!("YAML tags (`!name value`) are not supported: {tag}")
}

fn collection_tag(tag: Option<&Tag>, allowed: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(t) if core(t) == Some(allowed) => Ok(()),
        Some(t) => Err(unsupported(t)),
    }
}

/// One scalar's value.
fn scalar(text: Cow<'_, str>, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let expected = |what: &str| format!("invalid value: string {text:?}, expected {what}");
    match tag.map(|t| (t, core(t))) {
        None if style == ScalarStyle::Plain => plain(&text),
        None | Some((_, Some("str"))) => Ok(Value::String(text.into_owned())),
        Some((_, Some("null"))) => is_null(&text).then_some(Value::Null).ok_or_else(|| expected("null")),
        Some((_, Some("bool"))) => boolean(&text).map(Value::Bool).ok_or_else(|| expected("a boolean")),
        Some((_, Some("int"))) => integer(&text).unwrap_or_else(|| Err(expected("an integer"))),
        Some((_, Some("float"))) => float(&text).unwrap_or_else(|| Err(expected("a float"))),
        Some((t, _)) => Err(unsupported(t)),
    }
}

/// An untagged plain scalar's value.
fn plain(text: &str) -> Result<Value, String> {
    if is_null(text) {
        return Ok(Value::Null);
    }
    if let Some(b) = boolean(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(n) = integer(text) {
        return n;
    }
    if !leading_zero_digits(text)
        && let Some(n) = float(text)
    {
        return n;
    }
    Ok(Value::String(text.to_owned()))
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Digits after a leading zero (`0123`, `-007`): a string in YAML 1.2, not a number.
fn leading_zero_digits(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `Some` when `text` is an integer (an error when JSON cannot hold it), `None` when it is not
/// one.
fn integer(text: &str) -> Option<Result<Value, String>> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(d) = unsigned.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = unsigned.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = unsigned.strip_prefix("0b") {
        (2, d)
    } else {
        if leading_zero_digits(text) {
            return None;
        }
        (10, unsigned)
    };
    // `from_str_radix` would take a sign of its own.
    if digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    let number = if negative {
        i64::try_from(magnitude).map(|m| Number::from(-m)).or_else(|_| {
            // i64::MIN has no positive counterpart.
            (magnitude == 1 << 63).then(|| Number::from(i64::MIN)).ok_or(())
        })
    } else {
        u64::try_from(magnitude).map(Number::from).map_err(drop)
    };
    Some(
        number
            .map(Value::Number)
            .map_err(|()| format!("{text} is not a number JSON can hold")),
    )
}

/// `Some` when `text` is a float (an error when it is not finite), `None` when it is not one.
fn float(text: &str) -> Option<Result<Value, String>> {
    let unsigned = match text.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => text,
    };
    let special = matches!(unsigned, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
        || matches!(text, "-.inf" | "-.Inf" | "-.INF");
    if special {
        return Some(Err(format!("{text} is not a number JSON can hold")));
    }
    let f = unsigned.parse::<f64>().ok().filter(|f| f.is_finite())?;
    Number::from_f64(f).map(|n| Ok(Value::Number(n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_reads_as_the_json_it_means() {
        let v = from_yaml(
            "a: [1, -2, 1.5, true, ~, x, '3', 0x1F, -0o17, +7, 0123, 1_000, .5, 1e3, nan, False, '']\n\
             b: { 200: ok, true: yes, 0x10: hex, c: { d: [] } }\n\
             e: !!str 5\nf: !!int \"6\"\ng: |\n  text\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "a": [1, -2, 1.5, true, null, "x", "3", 31, -15, 7, "0123", "1_000", 0.5, 1000.0, "nan", false, ""],
                "b": { "200": "ok", "true": "yes", "16": "hex", "c": { "d": [] } },
                "e": "5",
                "f": 6,
                "g": "text\n"
            })
        );
        assert_eq!(from_yaml("").unwrap(), Value::Null);
        assert_eq!(from_yaml("a:\n").unwrap(), json!({ "a": null }));
        assert_eq!(
            from_yaml("a: [9223372036854775807, -9223372036854775808, 18446744073709551615]").unwrap(),
            json!({ "a": [i64::MAX, i64::MIN, u64::MAX] })
        );
        assert!(!from_yaml_noting_vars("a: { $b: '$', c: '{}' }").unwrap().1);
        assert!(from_yaml_noting_vars("a: [x, \"\\x24{B}\"]").unwrap().1);
        // Anchors and aliases are expanded.
        assert_eq!(
            from_yaml("a: &x { b: 1 }\nc: *x\nd: &y 2\ne: [*y, *x]\n").unwrap(),
            json!({ "a": { "b": 1 }, "c": { "b": 1 }, "d": 2, "e": [2, { "b": 1 }] })
        );
    }

    #[test]
    fn what_json_cannot_hold_is_an_error_with_its_line() {
        for (text, wanted) in [
            ("x:\n  a: 1\n  b: 2\n  a: 3\n", "duplicate entry with key \"a\""),
            ("x:\n  ? [1]\n  : 2\n", "a mapping key must be"),
            ("x:\n  ~: 2\n", "a mapping key must be"),
            ("x:\n  a: !custom 1\n", "tags"),
            ("x:\n  a: !!binary aGk=\n", "tags"),
            ("x:\n  a: !!int x\n", "expected an integer"),
            ("x:\n  a: .inf\n", "not a number JSON can hold"),
            ("x:\n  a: 18446744073709551616\n", "not a number JSON can hold"),
            ("x:\n  a: *nowhere\n", ""),
            ("x: [1\n", ""),
            ("a: 1\n---\nb: 2\n", "more than one YAML document"),
        ] {
            let err = from_yaml(text).unwrap_err().to_string();
            assert!(err.contains(wanted), "{text:?}: {err}");
            assert!(err.contains(" at line "), "{text:?}: {err}");
        }
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(from_yaml(&deep).unwrap_err().to_string().contains("nested more than"));
        let bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
        assert!(
            from_yaml(bomb)
                .unwrap_err()
                .to_string()
                .contains("aliases copy more than")
        );
    }

    #[test]
    fn the_tree_is_what_serde_yaml_read() {
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
        let mut texts: Vec<String> = std::fs::read_dir(examples)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert!(texts.len() >= 4);
        let snippets = [
            r#"
a: 'single ''quoted'''
b: "double \t \u00e9 \\ \x41"
c: >
  folded
  text

d: |-
  kept
   indented
"#,
            r#"
- - nested
  - [flow, {k: v}]
- key: value
  other: [1, 2.5, -3, +4, 0o7, 0x_1, 0b101, -0x10]
"#,
            r#"
routes:
  - id: r # a comment
    paths: ["/a/{id}", /b/*]
    plugins: { mock: { body: {x: 1} } }
"#,
            "a: -.5\nb: 1.\nc: 6.02e23\nd: -0\ne: 00\nf: 0.0\ng: 1e-3\nh: yes\ni: No\nj: 'true'\nk: +.5\n",
            "? explicit\n: key\n\"quoted key\": 1\nempty:\nlist:\n- \n- ~\n",
            "%YAML 1.2\n---\na: 1\n...\n",
            "a: &x {b: [1, 2]}\nc: *x\n",
        ];
        texts.extend(snippets.map(str::to_owned));
        for text in &texts {
            let old: Value = serde_yaml::from_str(text).unwrap();
            assert_eq!(from_yaml(text).unwrap(), old, "{text}");
        }
    }
}
