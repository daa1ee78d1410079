//! Secrets masked out of everything the admin API shows: the one place that decides what is
//! a secret.
//!
//! The rule, applied to the config as JSON:
//! 1. **Known secrets**: `gateway.admin.api_key`; in consumers' `credentials`, every value
//!    except the ones that are public by design (`username`, `algorithm`, `public_key`, and
//!    jwt-auth's `key`, which names the credential inside every token); in a `jwk`, every
//!    member but the public ones (`kty`, `kid`, `n`, `e`, `x`, `y`, ...), so an `oct` key's
//!    `k` and a private key's `d`, `p`, `q`, ... are hidden. Credentials are deny-by-default:
//!    a credential type added later is masked whole until it is listed here.
//! 2. **Secret-looking names, anywhere** (plugin configs, header maps, route header matches):
//!    every string or number under a key whose name contains `secret`, `password`, `passwd`,
//!    `token`, `private`, `api_key`/`apikey`/`api-key`, `authorization`, `cookie` or
//!    `session` (case-insensitive). This covers `add_headers: { Authorization: ... }`,
//!    `x-api-key` header matches and any plugin field named like a secret; it also hides a
//!    few names that are not secrets (jwt-auth's `cookie: NAME`), which is the safe side.
//! 3. **URLs and keys, anywhere**: the password of `scheme://user:password@host` (the whole
//!    userinfo when it has no `:`), query parameters named as in rule 2 (`?access_token=...`),
//!    and any PEM private key (`-----BEGIN ... PRIVATE KEY-----`) written inline.
//! 4. **The same values elsewhere**: any string that contains a secret found by rules 1–3
//!    (6 characters or more) has it replaced too, so a key reused in a mock body or a header
//!    does not leak.
//!
//! A masked value reads [`MASK`]. A write may send a masked value back unchanged: [`restore`]
//! puts the stored secret back in its place, so a read-modify-write never stores `******`.

use portico_config::error::join;
use portico_config::{ConfigErrors, error::ConfigError};
use serde_json::Value;

/// What a masked secret reads as.
pub const MASK: &str = "******";

/// Secrets shorter than this are masked where they sit but not searched for elsewhere (rule 4).
const MIN_REUSED: usize = 6;

/// Credential fields that are public by design.
const PUBLIC_CREDENTIAL_FIELDS: [&str; 3] = ["username", "algorithm", "public_key"];

/// JWK members that never hold private key material (RFC 7517, RFC 7518).
const PUBLIC_JWK_MEMBERS: [&str; 14] = [
    "kty", "use", "key_ops", "alg", "kid", "crv", "n", "e", "x", "y", "x5u", "x5c", "x5t", "x5t#S256",
];

/// Words that make a key name secret (matched lower-case, `-` read as `_`).
const SECRET_WORDS: [&str; 10] = [
    "secret",
    "password",
    "passwd",
    "token",
    "private",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
];

/// Masks every secret of a whole config, as JSON (`serde_json::to_value(&Config)`).
pub fn config(v: &mut Value) {
    let mut found = Vec::new();
    if let Some(key) = v.pointer_mut("/gateway/admin/api_key") {
        hide_all(key, &mut found);
    }
    if let Some(Value::Array(consumers)) = v.get_mut("consumers") {
        for c in consumers {
            if let Some(Value::Object(creds)) = c.get_mut("credentials") {
                for (kind, cred) in creds.iter_mut() {
                    credential(kind, cred, &mut found);
                }
            }
        }
    }
    walk(v, &mut found);
    found.retain(|s| s.len() >= MIN_REUSED);
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    if !found.is_empty() {
        replace_reused(v, &found);
    }
}

/// Whether a key name marks its value as secret (rule 2).
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    SECRET_WORDS.iter().any(|w| n.contains(w))
}

/// Puts stored secrets back where a write sent their masked form unchanged.
///
/// `new` is the item the caller sent; `old` the stored item and `old_masked` what a read of
/// it showed (`None` when the item is new). Every string of `new` that contains [`MASK`] must
/// equal the masked value at the same place, and then takes the stored value; any other is an
/// error at its location (under `at`): a masked value cannot be stored as a secret.
pub fn restore(new: &mut Value, old: Option<&Value>, old_masked: Option<&Value>, at: &str, errors: &mut ConfigErrors) {
    match new {
        Value::String(s) if s.contains(MASK) => match (old, old_masked) {
            (Some(o), Some(Value::String(m))) if m == s => *new = o.clone(),
            _ => errors.0.push(ConfigError::new(
                at,
                format!(
                    "holds a masked value ({MASK}) where no stored secret is masked the same way; send the real value"
                ),
            )),
        },
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                restore(
                    child,
                    old.and_then(|o| o.get(k)),
                    old_masked.and_then(|m| m.get(k)),
                    &join(at, k),
                    errors,
                );
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                restore(
                    child,
                    old.and_then(|o| o.get(i)),
                    old_masked.and_then(|m| m.get(i)),
                    &format!("{at}[{i}]"),
                    errors,
                );
            }
        }
        _ => {}
    }
}

/// Rule 1 for one entry of a consumer's `credentials`.
fn credential(kind: &str, cred: &mut Value, found: &mut Vec<String>) {
    let Value::Object(fields) = cred else {
        hide_all(cred, found);
        return;
    };
    for (name, value) in fields.iter_mut() {
        let public = PUBLIC_CREDENTIAL_FIELDS.contains(&name.as_str()) || (kind == "jwt-auth" && name == "key");
        if name == "jwk" {
            jwk(value, found);
        } else if !public {
            hide_all(value, found);
        }
    }
}

fn jwk(v: &mut Value, found: &mut Vec<String>) {
    let Value::Object(members) = v else {
        hide_all(v, found);
        return;
    };
    for (name, value) in members.iter_mut() {
        if !PUBLIC_JWK_MEMBERS.contains(&name.as_str()) {
            hide_all(value, found);
        }
    }
}

/// Rules 2 and 3 over a whole tree.
fn walk(v: &mut Value, found: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if is_secret_name(k) {
                    hide_all(child, found);
                } else {
                    walk(child, found);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| walk(i, found)),
        Value::String(s) if s.contains("PRIVATE KEY-----") => hide_all(v, found),
        Value::String(s) => {
            if let Some(masked) = mask_url(s, found) {
                *s = masked;
            }
        }
        _ => {}
    }
}

/// Replaces every string and number under `v` with [`MASK`], remembering the originals.
fn hide_all(v: &mut Value, found: &mut Vec<String>) {
    match v {
        Value::String(s) if s == MASK => {}
        Value::String(s) => {
            found.push(std::mem::take(s));
            *v = Value::String(MASK.into());
        }
        Value::Number(n) => {
            found.push(n.to_string());
            *v = Value::String(MASK.into());
        }
        Value::Object(map) => map.values_mut().for_each(|c| hide_all(c, found)),
        Value::Array(items) => items.iter_mut().for_each(|c| hide_all(c, found)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// Rule 3: `s` with its URL password and secret query parameters masked, if it has any.
fn mask_url(s: &str, found: &mut Vec<String>) -> Option<String> {
    let scheme_end = s.find("://")?;
    let rest = &s[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..scheme_end + 3]);
    let mut changed = false;
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, password)) if !password.is_empty() => {
                    found.push(password.to_owned());
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                    changed = true;
                }
                None if !userinfo.is_empty() => {
                    found.push(userinfo.to_owned());
                    out.push_str(MASK);
                    changed = true;
                }
                _ => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, value)) if is_secret_name(name) && !value.is_empty() => {
                        found.push(value.to_owned());
                        out.push_str(name);
                        out.push('=');
                        out.push_str(MASK);
                        changed = true;
                    }
                    _ => out.push_str(pair),
                }
            }
            if let Some(f) = fragment {
                out.push('#');
                out.push_str(f);
            }
        }
        None => out.push_str(tail),
    }
    changed.then_some(out)
}

/// Rule 4: every occurrence of a found secret in any string.
fn replace_reused(v: &mut Value, secrets: &[String]) {
    match v {
        Value::String(s) => {
            for secret in secrets {
                if s.contains(secret.as_str()) {
                    *s = s.replace(secret.as_str(), MASK);
                }
            }
        }
        Value::Object(map) => map.values_mut().for_each(|c| replace_reused(c, secrets)),
        Value::Array(items) => items.iter_mut().for_each(|c| replace_reused(c, secrets)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every secret place of the schema, each holding a distinctive value.
    fn secret_config() -> Value {
        let cfg = portico_config::parse::parse(
            r#"
gateway:
  listeners: [{ address: "127.0.0.1:8080" }]
  admin: { address: "127.0.0.1:9180", api_key: ADMINKEY-0001-abcdef }
  redis: { url: "redis://user:REDISPASS-0002@127.0.0.1:6379/0" }
upstreams:
  - { id: u, nodes: [{ address: "127.0.0.1:9001" }] }
consumers:
  - username: alice
    groups: [gold]
    credentials:
      key-auth: { key: KEYAUTH-0003-xyz }
      basic-auth: { username: alice-login, password: BASICPASS-0004 }
      jwt-auth: { key: alice-app, algorithm: HS256, secret: JWTSECRET-0005 }
      future-auth: { whatever: FUTURE-0006-zz }
    plugins:
      request-transformer: { set_headers: { X-Upstream-Token: UPTOKEN-0007 } }
  - username: bob
    credentials:
      jwt-auth:
        key: bob-app
        jwk: { kty: oct, kid: k1, k: OCTKEY-0008-b64 }
      basic-auth: { password: 123456789 }
routes:
  - id: r
    paths: [/]
    headers: { x-api-key: MATCHKEY-0009 }
    upstream: u
    plugins:
      request-transformer: { add_headers: { Authorization: "Bearer BEARER-0010" } }
      jwt-auth: { jwks_uri: "https://idp.example/jwks?access_token=QUERYTOK-0011&x=1" }
      mock: { body: "echo KEYAUTH-0003-xyz back", headers: { x-pem: "-----BEGIN PRIVATE KEY-----PEMKEY-0014-----END PRIVATE KEY-----" } }
global_plugins:
  some-plugin: { client_secret: CLIENTSECRET-0012, nested: { db_password: DBPASS-0013 } }
"#,
            &|_| None,
        )
        .expect("parses");
        serde_json::to_value(&cfg).expect("json")
    }

    const SECRETS: [&str; 15] = [
        "ADMINKEY-0001-abcdef",
        "REDISPASS-0002",
        "KEYAUTH-0003-xyz",
        "BASICPASS-0004",
        "JWTSECRET-0005",
        "FUTURE-0006-zz",
        "UPTOKEN-0007",
        "OCTKEY-0008-b64",
        "123456789",
        "MATCHKEY-0009",
        "BEARER-0010",
        "QUERYTOK-0011",
        "CLIENTSECRET-0012",
        "DBPASS-0013",
        "PEMKEY-0014",
    ];

    #[test]
    fn no_secret_survives_and_public_fields_stay() {
        let mut v = secret_config();
        config(&mut v);
        let text = v.to_string();
        for s in SECRETS {
            assert!(!text.contains(s), "{s} leaked in {text}");
        }
        let alice = &v["consumers"][0]["credentials"];
        assert_eq!(alice["basic-auth"]["username"], "alice-login");
        assert_eq!(alice["jwt-auth"]["key"], "alice-app");
        assert_eq!(alice["jwt-auth"]["algorithm"], "HS256");
        assert_eq!(alice["key-auth"]["key"], MASK);
        let bob = &v["consumers"][1]["credentials"]["jwt-auth"]["jwk"];
        assert_eq!((bob["kty"].as_str(), bob["kid"].as_str()), (Some("oct"), Some("k1")));
        assert_eq!(
            v["gateway"]["redis"]["url"],
            format!("redis://user:{MASK}@127.0.0.1:6379/0")
        );
        assert_eq!(
            v["routes"][0]["plugins"]["jwt-auth"]["jwks_uri"],
            format!("https://idp.example/jwks?access_token={MASK}&x=1")
        );
        assert_eq!(v["routes"][0]["plugins"]["mock"]["body"], format!("echo {MASK} back"));
        // Not secrets: left as they are.
        assert_eq!(v["routes"][0]["paths"][0], "/");
        assert_eq!(v["upstreams"][0]["nodes"][0]["address"], "127.0.0.1:9001");
        assert_eq!(v["consumers"][0]["groups"][0], "gold");
    }

    #[test]
    fn names_and_urls() {
        for name in [
            "secret",
            "client_secret",
            "X-Api-Key",
            "apikey",
            "Authorization",
            "db-password",
            "access_token",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "key",
            "header",
            "query",
            "hide_credentials",
            "key_claim",
            "jwks_uri",
            "username",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
        let mut found = Vec::new();
        assert_eq!(mask_url("redis://127.0.0.1:6379", &mut found), None);
        assert_eq!(mask_url("redis://:@h:1", &mut found), None);
        assert_eq!(
            mask_url("redis://tok@h:1", &mut found).as_deref(),
            Some("redis://******@h:1")
        );
        assert_eq!(
            mask_url("http://u:p@h/x@y?a=1#f", &mut found).as_deref(),
            Some("http://u:******@h/x@y?a=1#f")
        );
        assert_eq!(found, vec!["tok".to_owned(), "p".to_owned()]);
        assert_eq!(mask_url("not a url", &mut found), None);
    }

    #[test]
    fn restore_puts_back_only_unchanged_masks() {
        let old = json!({ "credentials": { "key-auth": { "key": "real-key-1" } }, "url": "redis://u:pw@h" });
        let mut masked = old.clone();
        hide_all(&mut masked["credentials"], &mut Vec::new());
        masked["url"] = json!("redis://u:******@h");

        let mut new = masked.clone();
        new["groups"] = json!(["x"]);
        let mut errors = ConfigErrors::default();
        restore(&mut new, Some(&old), Some(&masked), "consumers/a", &mut errors);
        assert!(errors.is_empty(), "{errors}");
        assert_eq!(new["credentials"]["key-auth"]["key"], "real-key-1");
        assert_eq!(new["url"], "redis://u:pw@h");

        let mut moved = json!({ "credentials": { "basic-auth": { "password": MASK } } });
        restore(&mut moved, Some(&old), Some(&masked), "consumers/a", &mut errors);
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].location, "consumers/a.credentials.basic-auth.password");

        let mut fresh = json!({ "credentials": { "key-auth": { "key": MASK } } });
        let mut errors = ConfigErrors::default();
        restore(&mut fresh, None, None, "consumers/b", &mut errors);
        assert_eq!(errors.0.len(), 1, "a new item has nothing to restore");
    }
}
