//! `${NAME}` and `${NAME:-default}` substitution in every string of the config.
//!
//! Substitution runs on the parsed YAML tree, never on the raw text, so a variable's value
//! can never change the structure of the document (no YAML injection through the environment).

use crate::error::{ConfigErrors, join};
use serde_json::Value;

/// Replaces every `${...}` in the strings of `value`; an unset variable without a default is an error.
pub fn substitute(value: &mut Value, path: &str, env: &dyn Fn(&str) -> Option<String>, errors: &mut ConfigErrors) {
    walk(value, &At::Root(path), env, errors);
}

/// Where a value sits, written out only for an error: formatting the location of every
/// node of a 10,000-route config cost more than parsing it.
enum At<'a> {
    Root(&'a str),
    Index(&'a At<'a>, usize),
    Key(&'a At<'a>, &'a str),
}

impl At<'_> {
    fn render(&self) -> String {
        match self {
            At::Root(p) => (*p).to_owned(),
            At::Index(parent, i) => format!("{}[{i}]", parent.render()),
            At::Key(parent, k) => join(&parent.render(), k),
        }
    }
}

fn walk(value: &mut Value, at: &At<'_>, env: &dyn Fn(&str) -> Option<String>, errors: &mut ConfigErrors) {
    match value {
        Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(out) => *s = out,
            Err(msg) => errors.push(at.render(), msg),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &At::Index(at, i), env, errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                walk(v, &At::Key(at, k), env, errors);
            }
        }
        _ => {}
    }
}

/// Expands one string. `$${` is not special: only `${NAME}` and `${NAME:-default}` are.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated \"${{\" in {s:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid variable name {name:?} in \"${{{expr}}}\""));
        }
        match (env(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write ${{{name}:-default}} for a default)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_unset_and_default() {
        assert_eq!(expand("http://${HOST}/x", &env), Ok("http://example.com/x".into()));
        assert_eq!(expand("${NOPE:-fallback}", &env), Ok("fallback".into()));
        assert_eq!(expand("${HOST:-fallback}", &env), Ok("example.com".into()));
        assert_eq!(expand("${EMPTY:-d}", &env), Ok(String::new()));
        assert_eq!(expand("no vars", &env), Ok("no vars".into()));
        assert!(expand("${NOPE}", &env).unwrap_err().contains("NOPE is not set"));
        assert!(expand("${BAD NAME}", &env).is_err());
        assert!(expand("${OPEN", &env).is_err());
    }

    #[test]
    fn substitution_reports_the_location() {
        let mut v = crate::tree::from_yaml("a: { b: [x, '${NOPE}'] }").expect("yaml");
        let mut errors = ConfigErrors::default();
        substitute(&mut v, "", &env, &mut errors);
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].location, "a.b[1]");
    }
}
