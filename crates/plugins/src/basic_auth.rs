//! `basic-auth`: `Authorization: Basic base64(username:password)` checked against a consumer's
//! password, stored as a PHC hash (argon2, bcrypt) or as plain text.
//!
//! Hashing is deliberately slow, so it runs on tokio's blocking pool (never on the worker that
//! serves other requests) and at most one hash per CPU at a time. Once a password has verified,
//! its salted digest is kept with the credential: the next request with the same password pays
//! one SHA-256, not the hash. The cache is bounded by construction (one slot per credential).

use crate::consumers::Consumer;
use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{BuildEnv, Flow, Plugin};
use crate::reply;
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use http::{HeaderValue, Response, StatusCode, header, request};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

const CHALLENGE: HeaderValue = HeaderValue::from_static("Basic realm=\"portico\"");
/// Longer `Authorization` values are refused before decoding.
const MAX_HEADER: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// Remove `Authorization` before the request goes upstream. Default true.
    #[serde(default = "yes")]
    hide_credentials: bool,
}

fn yes() -> bool {
    true
}

/// A consumer's `credentials.basic-auth`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Default: the consumer's username.
    #[serde(default)]
    username: Option<String>,
    /// A PHC string (`$argon2id$...`, `$2b$...`) or the plain password.
    password: String,
}

#[derive(Debug)]
enum Password {
    Plain(Box<[u8]>),
    Argon2(Arc<str>),
    Bcrypt(Arc<str>),
}

#[derive(Debug)]
struct Entry {
    password: Password,
    consumer: Arc<Consumer>,
    /// Salted digest of the password that last verified against the hash.
    verified: OnceLock<[u8; 32]>,
}

/// Every consumer's basic-auth credential, by username.
#[derive(Debug, Default)]
pub struct Index {
    by_user: FxHashMap<Box<str>, Entry>,
    /// A configured hash that an unknown username is checked against (and always fails), so
    /// an unknown username costs the same time as a wrong password: no username probing.
    decoy: Option<(bool, Arc<str>)>,
}

impl Index {
    pub fn add(&mut self, c: Credential, consumer: &Arc<Consumer>) -> Result<(), Vec<(String, String)>> {
        let username = c.username.unwrap_or_else(|| consumer.username.to_string());
        let fail = |at: &str, m: String| Err(vec![(at.to_owned(), m)]);
        if username.is_empty() || username.contains(':') {
            return fail("username", "must be non-empty and without ':'".into());
        }
        if let Some(e) = self.by_user.get(username.as_str()) {
            return fail(
                "username",
                format!("{username:?} already belongs to consumer {:?}", e.consumer.username),
            );
        }
        let p = c.password;
        let password = if p.starts_with("$argon2") {
            let parsed = PasswordHash::new(&p)
                .map_err(|e| vec![("password".to_owned(), format!("invalid argon2 hash: {e}"))])?;
            if parsed.hash.is_none() || parsed.salt.is_none() {
                return fail("password", "invalid argon2 hash: no salt or hash".into());
            }
            Password::Argon2(p.into())
        } else if ["$2a$", "$2b$", "$2x$", "$2y$"].iter().any(|v| p.starts_with(v)) {
            if p.len() != 60 {
                return fail("password", "invalid bcrypt hash: expected 60 characters".into());
            }
            Password::Bcrypt(p.into())
        } else if p.is_empty() {
            return fail("password", "must not be empty".into());
        } else {
            Password::Plain(p.into_bytes().into())
        };
        if self.decoy.is_none() {
            self.decoy = match &password {
                Password::Argon2(h) => Some((true, h.clone())),
                Password::Bcrypt(h) => Some((false, h.clone())),
                Password::Plain(_) => None,
            };
        }
        let entry = Entry {
            password,
            consumer: consumer.clone(),
            verified: OnceLock::new(),
        };
        self.by_user.insert(username.into(), entry);
        Ok(())
    }
}

#[derive(Debug)]
pub struct BasicAuth {
    hide: bool,
    env: BuildEnv,
    /// At most this many hashes verify at once, whatever the number of requests.
    hashing: Semaphore,
}

impl BasicAuth {
    pub fn build(c: BasicAuthConfig, env: &BuildEnv) -> Result<Self, String> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            hide: c.hide_credentials,
            env: env.clone(),
            hashing: Semaphore::new(cpus),
        })
    }

    async fn verify(&self, entry: &Entry, password: String) -> bool {
        let phc = match &entry.password {
            Password::Plain(p) => return bool::from(p.ct_eq(password.as_bytes())),
            Password::Argon2(h) | Password::Bcrypt(h) => h.clone(),
        };
        let digest: [u8; 32] = Sha256::new()
            .chain_update(phc.as_bytes())
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if let Some(known) = entry.verified.get()
            && bool::from(known.ct_eq(&digest))
        {
            return true;
        }
        let ok = self.hash_matches(argon_of(&entry.password), phc, password).await;
        if ok {
            let _ = entry.verified.set(digest);
        }
        ok
    }
}

impl BasicAuth {
    /// Verifies `password` against a PHC hash off the worker, at most one hash per CPU at once.
    async fn hash_matches(&self, argon: bool, phc: Arc<str>, password: String) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            if argon {
                PasswordHash::new(&phc)
                    .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
            } else {
                bcrypt::verify(password.as_bytes(), &phc).unwrap_or(false)
            }
        })
        .await
        .unwrap_or(false)
    }
}

fn argon_of(p: &Password) -> bool {
    matches!(p, Password::Argon2(_))
}

fn unauthorized(message: &str, cx: &Ctx) -> Flow {
    let mut resp: Response<_> = reply::error(StatusCode::UNAUTHORIZED, message, &cx.request_id);
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, CHALLENGE);
    Flow::Respond(resp)
}

/// `(username, password)` from an `Authorization: Basic ...` value.
fn parse(value: &HeaderValue) -> Option<(String, String)> {
    let v = value.as_bytes();
    if v.len() > MAX_HEADER || v.len() < 6 || !v[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(v[6..].trim_ascii())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

impl Plugin for BasicAuth {
    fn phase(&self) -> Phase {
        Phase::Auth
    }

    async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        let Some(value) = req.headers.get(header::AUTHORIZATION) else {
            return unauthorized("missing basic credentials", cx);
        };
        let Some((user, password)) = parse(value) else {
            return unauthorized("invalid basic credentials", cx);
        };
        let index = &self.env.consumers.basic_auth;
        let Some(entry) = index.by_user.get(user.as_str()) else {
            if let Some((argon, phc)) = &index.decoy {
                // Spend what a wrong password would; the answer is 401 whatever it says.
                let _ = self.hash_matches(*argon, phc.clone(), password).await;
            }
            return unauthorized("invalid username or password", cx);
        };
        if !self.verify(entry, password).await {
            return unauthorized("invalid username or password", cx);
        }
        cx.consumer = Some(entry.consumer.clone());
        if self.hide {
            req.headers.remove(header::AUTHORIZATION);
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;

    fn index_with(password: String) -> (Index, BasicAuth) {
        let mut index = Index::default();
        let alice = Arc::new(Consumer::new("alice", &[], Arc::from([])));
        index
            .add(
                Credential {
                    username: None,
                    password,
                },
                &alice,
            )
            .expect("adds");
        let auth = BasicAuth::build(BasicAuthConfig { hide_credentials: true }, &BuildEnv::default()).expect("builds");
        (index, auth)
    }

    #[tokio::test]
    async fn argon2_bcrypt_and_plain_verify_and_cache() {
        let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0").expect("salt");
        let argon = Argon2::default()
            .hash_password(b"pw-1", &salt)
            .expect("hash")
            .to_string();
        let bcrypt = bcrypt::hash("pw-1", 4).expect("bcrypt");
        for stored in [argon, bcrypt, "pw-1".to_owned()] {
            let (index, auth) = index_with(stored.clone());
            let entry = &index.by_user["alice"];
            assert!(!auth.verify(entry, "pw-2".into()).await, "{stored}");
            assert!(entry.verified.get().is_none());
            assert!(auth.verify(entry, "pw-1".into()).await, "{stored}");
            assert!(auth.verify(entry, "pw-1".into()).await, "{stored} (cached)");
            assert!(!auth.verify(entry, "pw-1x".into()).await, "{stored}");
        }
    }

    #[test]
    fn unknown_usernames_are_checked_against_a_decoy_hash() {
        let bcrypt = bcrypt::hash("pw", 4).expect("hash");
        assert!(
            matches!(index_with(bcrypt).0.decoy, Some((false, _))),
            "a hashed credential is the decoy"
        );
        assert!(
            index_with("plain-pw".into()).0.decoy.is_none(),
            "plain passwords compare in constant time"
        );
    }

    #[test]
    fn headers_parse_strictly() {
        let v = |s: &str| HeaderValue::from_str(s).expect("value");
        assert_eq!(
            parse(&v("Basic YWxpY2U6cHc6eA==")),
            Some(("alice".into(), "pw:x".into()))
        );
        assert_eq!(parse(&v("basic YWxpY2U6cHc=")), Some(("alice".into(), "pw".into())));
        assert_eq!(parse(&v("Bearer YWxpY2U6cHc=")), None);
        assert_eq!(parse(&v("Basic !!!")), None);
        assert_eq!(parse(&v("Basic YWxpY2U=")), None);
    }

    #[test]
    fn bad_hashes_are_config_errors() {
        let mut index = Index::default();
        let c = Arc::new(Consumer::new("c", &[], Arc::from([])));
        for bad in ["$argon2id$nope", "$2b$04$short", ""] {
            let cred = Credential {
                username: None,
                password: bad.into(),
            };
            assert!(index.add(cred, &c).is_err(), "{bad}");
        }
    }
}
