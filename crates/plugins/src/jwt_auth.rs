//! `jwt-auth`: a signed JWT from `Authorization: Bearer` (or another header, or a cookie).
//!
//! With consumers, the token's `key_claim` (default `iss`) names the consumer credential whose
//! key and algorithm verify it; with `jwks_uri`, the token's `kid` names a key of the JWKS.
//! Either way the algorithm comes from the gateway's side (the credential, the JWK), never from
//! the token: `alg: none` and HS256-signed-with-the-RSA-public-key are refused before any
//! signature check. Signatures are verified by `jsonwebtoken`; the token is decoded once
//! (`jwt_token`) and its `exp`, `nbf`, `aud`, `iss` checked after the signature holds.

use crate::consumers::Consumer;
use crate::ctx::Ctx;
use crate::jwks::{self, Jwks};
use crate::jwt_token::{Checks, Token};
use crate::phase::Phase;
use crate::plugin::{BuildEnv, Flow, Plugin};
use crate::reply;
use http::{HeaderName, HeaderValue, StatusCode, header, request};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use portico_config::Duration;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::str::FromStr;
use std::sync::Arc;

/// Longer tokens are refused unread.
const MAX_TOKEN: usize = 8 * 1024;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthConfig {
    /// Default `Authorization` (with the `Bearer ` scheme).
    #[serde(default = "authorization")]
    header: String,
    /// A cookie to read the token from when the header is absent.
    #[serde(default)]
    cookie: Option<String>,
    /// The claim naming the consumer credential. Default `iss`.
    #[serde(default = "iss")]
    key_claim: String,
    /// Accepted `aud` values; when set, tokens must carry a matching `aud`.
    #[serde(default)]
    audience: Option<OneOrMany>,
    /// Accepted `iss` values; when set, tokens must carry a matching `iss`.
    #[serde(default)]
    issuer: Option<OneOrMany>,
    /// Clock skew allowed on `exp` and `nbf`. Default 0s.
    #[serde(default)]
    leeway: Option<Duration>,
    /// Time claims checked when present. Default `[exp, nbf]`.
    #[serde(default = "exp_nbf")]
    claims_to_verify: Vec<String>,
    /// Keys from this JWKS endpoint instead of consumers.
    #[serde(default)]
    jwks_uri: Option<String>,
    /// Remove the token (its header, or its cookie) before the request goes upstream. Default
    /// false: upstreams often read it.
    #[serde(default)]
    hide_credentials: bool,
}

fn authorization() -> String {
    "authorization".into()
}
fn iss() -> String {
    "iss".into()
}
fn exp_nbf() -> Vec<String> {
    vec!["exp".into(), "nbf".into()]
}

/// A consumer's `credentials.jwt-auth`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The `key_claim` value that names this credential.
    key: String,
    /// Default HS256, or the `jwk`'s `alg`.
    #[serde(default)]
    algorithm: Option<String>,
    /// HS256/384/512.
    #[serde(default)]
    secret: Option<String>,
    /// `secret` is standard base64 of the real key bytes.
    #[serde(default)]
    base64_secret: bool,
    /// RS*, PS*, ES*, EdDSA: a PEM public key.
    #[serde(default)]
    public_key: Option<String>,
    /// Any algorithm: the key as a JWK.
    #[serde(default)]
    jwk: Option<Jwk>,
}

#[derive(Clone)]
struct Entry {
    key: DecodingKey,
    alg: Algorithm,
    consumer: Arc<Consumer>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entry({:?}, {})", self.alg, self.consumer.username)
    }
}

/// Every consumer's jwt-auth credential, by key.
#[derive(Debug, Default)]
pub struct Index {
    by_key: FxHashMap<Box<str>, Entry>,
}

impl Index {
    pub fn add(&mut self, c: Credential, consumer: &Arc<Consumer>) -> Result<(), Vec<(String, String)>> {
        let at = |field: &str, m: String| vec![(field.to_owned(), m)];
        if c.key.is_empty() {
            return Err(at("key", "must not be empty".into()));
        }
        if let Some(e) = self.by_key.get(c.key.as_str()) {
            return Err(at(
                "key",
                format!(
                    "already used by consumer {:?}; keys must be unique",
                    e.consumer.username
                ),
            ));
        }
        let alg = match (&c.algorithm, &c.jwk) {
            (Some(a), _) => Algorithm::from_str(a).map_err(|_| {
                at(
                    "algorithm",
                    format!(
                        "unknown algorithm {a:?}; use HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 or EdDSA"
                    ),
                )
            })?,
            (None, Some(jwk)) => {
                jwks::algorithm_of(jwk).ok_or_else(|| at("jwk", "has no usable alg; set algorithm".into()))?
            }
            (None, None) => Algorithm::HS256,
        };
        let key = key_of(&c, alg).map_err(|(f, m)| at(f, m))?;
        let entry = Entry {
            key,
            alg,
            consumer: consumer.clone(),
        };
        self.by_key.insert(c.key.into(), entry);
        Ok(())
    }
}

/// The verification key a credential describes, checked against its algorithm.
fn key_of(c: &Credential, alg: Algorithm) -> Result<DecodingKey, (&'static str, String)> {
    use jsonwebtoken::AlgorithmFamily as F;
    let given = [c.secret.is_some(), c.public_key.is_some(), c.jwk.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(("", "set exactly one of secret, public_key, jwk".into()));
    }
    if c.base64_secret && c.secret.is_none() {
        return Err(("base64_secret", "only applies to secret".into()));
    }
    let key = if let Some(jwk) = &c.jwk {
        if let Some(a) = jwk.common.key_algorithm
            && Algorithm::try_from(a).ok() != Some(alg)
        {
            return Err(("jwk", format!("its alg {a} differs from algorithm {alg:?}")));
        }
        DecodingKey::from_jwk(jwk).map_err(|e| ("jwk", format!("not a usable key: {e}")))?
    } else if let Some(secret) = &c.secret {
        if secret.is_empty() {
            return Err(("secret", "must not be empty".into()));
        }
        if c.base64_secret {
            DecodingKey::from_base64_secret(secret).map_err(|_| ("secret", "is not valid base64".into()))?
        } else {
            DecodingKey::from_secret(secret.as_bytes())
        }
    } else {
        let pem = c.public_key.as_deref().unwrap_or_default().as_bytes();
        let parsed = match alg.family() {
            F::Rsa => DecodingKey::from_rsa_pem(pem),
            F::Ec => DecodingKey::from_ec_pem(pem),
            F::Ed => DecodingKey::from_ed_pem(pem),
            F::Hmac => return Err(("public_key", format!("{alg:?} takes a secret, not a public key"))),
        };
        parsed.map_err(|e| ("public_key", format!("not a {alg:?} public key: {e}")))?
    };
    if key.family() != alg.family() {
        return Err(("algorithm", format!("{alg:?} does not match the key's type")));
    }
    Ok(key)
}

#[derive(Debug)]
enum Keys {
    Consumers(BuildEnv),
    Jwks(Jwks),
}

#[derive(Debug)]
pub struct JwtAuth {
    header: HeaderName,
    bearer: bool,
    cookie: Option<String>,
    key_claim: String,
    checks: Checks,
    keys: Keys,
    hide: bool,
}

/// The name a JWS header writes for `alg` (RFC 7518), compared byte for byte.
fn alg_name(alg: Algorithm) -> Option<&'static str> {
    Some(match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => return None,
    })
}

impl JwtAuth {
    pub fn build(c: JwtAuthConfig, env: &BuildEnv) -> Result<Self, String> {
        let header = HeaderName::from_bytes(c.header.as_bytes())
            .map_err(|_| format!("header: invalid header name {:?}", c.header))?;
        if c.key_claim.is_empty() {
            return Err("key_claim: must not be empty".into());
        }
        if let Some(ck) = &c.cookie
            && (ck.is_empty() || ck.bytes().any(|b| !portico_config::validate::is_token_byte(b)))
        {
            return Err(format!("cookie: invalid cookie name {ck:?}"));
        }
        let (mut exp, mut nbf) = (false, false);
        for (i, claim) in c.claims_to_verify.iter().enumerate() {
            match claim.as_str() {
                "exp" => exp = true,
                "nbf" => nbf = true,
                other => return Err(format!("claims_to_verify[{i}]: {other:?}; use exp or nbf")),
            }
        }
        let checks = Checks {
            exp,
            nbf,
            leeway: c.leeway.map_or(0.0, |d| d.get().as_secs_f64()),
            audience: c.audience.map(OneOrMany::into_vec),
            issuer: c.issuer.map(OneOrMany::into_vec),
        };
        let keys = match c.jwks_uri {
            Some(uri) => Keys::Jwks(Jwks::start(&uri)?),
            None => Keys::Consumers(env.clone()),
        };
        let bearer = header == header::AUTHORIZATION;
        Ok(Self {
            header,
            bearer,
            cookie: c.cookie,
            key_claim: c.key_claim,
            checks,
            keys,
            hide: c.hide_credentials,
        })
    }

    /// The token, from the header (without `Bearer `) or else the cookie.
    fn token<'r>(&self, req: &'r request::Parts) -> Option<(&'r str, bool)> {
        if let Some(v) = req.headers.get(&self.header).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            match v.get(..7) {
                Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => return Some((v[7..].trim_start(), true)),
                _ if !self.bearer => return Some((v, true)),
                // Another scheme (Basic, say): not ours; the cookie may still hold a token.
                _ => {}
            }
        }
        let name = self.cookie.as_deref()?;
        req.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == name).then_some((v.trim_matches('"'), false))
            })
    }

    /// The consumer a token proves (none for a JWKS token without a `sub`), or why not.
    fn verify(&self, token: &str) -> Result<Option<Arc<Consumer>>, &'static str> {
        if token.len() > MAX_TOKEN {
            return Err("token too large");
        }
        let t = Token::parse(token).ok_or("invalid token")?;
        let claims = t.claims(&self.key_claim).ok_or("invalid token")?;
        let jwks_keys;
        let (key, alg, consumer) = match &self.keys {
            Keys::Consumers(env) => {
                let name = claims.key.as_deref().ok_or("token names no key")?;
                let e = env.consumers.jwt_auth.by_key.get(name).ok_or("unknown key")?;
                (&e.key, e.alg, Some(&e.consumer))
            }
            Keys::Jwks(jwks) => {
                jwks_keys = jwks.keys();
                let Some(k) = jwks_keys.find(t.kid.as_deref()) else {
                    jwks.request_refresh();
                    return Err("unknown key id");
                };
                (&k.key, k.alg, None)
            }
        };
        // The gateway's algorithm, not the token's: checked before any signature work.
        if Some(t.alg.as_str()) != alg_name(alg) {
            return Err("algorithm not allowed");
        }
        if !jsonwebtoken::crypto::verify(t.signature, t.message.as_bytes(), key, alg).unwrap_or(false) {
            return Err("invalid token");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.checks.check(&claims, now)?;
        Ok(match consumer {
            Some(c) => Some(c.clone()),
            // JWKS mode: the token's subject is the caller; without one it stays anonymous.
            None => match claims.sub.as_ref().and_then(|v| v.as_str()) {
                Some(sub) if !sub.is_empty() => Some(Arc::new(Consumer::new(sub, &[], Arc::from([])))),
                _ => None,
            },
        })
    }
}

fn unauthorized(message: &str, error: bool, cx: &Ctx) -> Flow {
    let mut resp = reply::error(StatusCode::UNAUTHORIZED, message, &cx.request_id);
    let challenge = if error {
        HeaderValue::from_static("Bearer realm=\"portico\", error=\"invalid_token\"")
    } else {
        HeaderValue::from_static("Bearer realm=\"portico\"")
    };
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
    Flow::Respond(resp)
}

/// Drops the cookie `name` from every `Cookie` header, keeping the others as they were.
fn remove_cookie(headers: &mut http::HeaderMap, name: &str) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').is_none_or(|(k, _)| k != name))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

impl Plugin for JwtAuth {
    fn phase(&self) -> Phase {
        Phase::Auth
    }

    async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        let Some((token, in_header)) = self.token(req) else {
            return unauthorized("missing token", false, cx);
        };
        match self.verify(token) {
            Ok(consumer) => {
                cx.consumer = consumer;
                if self.hide {
                    match (in_header, self.cookie.as_deref()) {
                        (true, _) => drop(req.headers.remove(&self.header)),
                        (false, Some(name)) => remove_cookie(&mut req.headers, name),
                        (false, None) => {}
                    }
                }
                Flow::Continue
            }
            Err(why) => unauthorized(why, true, cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    fn plugin(yaml: &str, consumers: &str) -> JwtAuth {
        let list: Vec<portico_config::Consumer> = serde_yaml::from_str(consumers).expect("yaml");
        let mut errors = portico_config::ConfigErrors::default();
        let env = BuildEnv {
            consumers: crate::consumers::compile(&list, &mut errors),
            ..Default::default()
        };
        assert!(errors.is_empty(), "{errors}");
        JwtAuth::build(serde_yaml::from_str(yaml).expect("yaml"), &env).expect("builds")
    }

    fn hs256(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encodes")
    }

    const ALICE: &str = "[{ username: alice, credentials: { jwt-auth: { key: alice-app, secret: s3cret } } }]";

    #[test]
    fn good_tokens_pass_and_bad_ones_say_why() {
        let p = plugin("{ audience: api }", ALICE);
        let ok = hs256(
            serde_json::json!({"iss": "alice-app", "aud": "api", "exp": 4102444800u64}),
            "s3cret",
        );
        assert_eq!(
            p.verify(&ok).map(|c| c.map(|c| c.username.to_string())),
            Ok(Some("alice".into()))
        );
        let cases = [
            (
                serde_json::json!({"iss": "alice-app", "aud": "api", "exp": 1}),
                "s3cret",
                "token expired",
            ),
            (
                serde_json::json!({"iss": "alice-app", "aud": "web"}),
                "s3cret",
                "invalid audience",
            ),
            (
                serde_json::json!({"iss": "alice-app"}),
                "s3cret",
                "token misses a required claim",
            ),
            (
                serde_json::json!({"iss": "bob-app", "aud": "api"}),
                "s3cret",
                "unknown key",
            ),
            (serde_json::json!({"aud": "api"}), "s3cret", "token names no key"),
            (
                serde_json::json!({"iss": "alice-app", "aud": "api"}),
                "other",
                "invalid token",
            ),
            (
                serde_json::json!({"iss": "alice-app", "aud": "api", "nbf": 4102444800u64}),
                "s3cret",
                "token not yet valid",
            ),
        ];
        for (claims, secret, why) in cases {
            assert_eq!(p.verify(&hs256(claims.clone(), secret)).err(), Some(why), "{claims}");
        }
        assert_eq!(p.verify(&"a".repeat(9000)).err(), Some("token too large"));
        assert_eq!(p.verify("not.a.token").err(), Some("invalid token"));
        assert_eq!(p.verify("").err(), Some("invalid token"));
    }

    #[test]
    fn the_algorithm_is_the_credentials() {
        let p = plugin("{}", ALICE);
        let mut h = Header::new(Algorithm::HS512);
        h.typ = None;
        let t = encode(
            &h,
            &serde_json::json!({"iss": "alice-app"}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .expect("enc");
        assert_eq!(p.verify(&t).err(), Some("algorithm not allowed"));
    }

    #[test]
    fn credentials_are_checked_at_compile_time() {
        let bad = |yaml: &str| {
            let c: Credential = serde_yaml::from_str(yaml).expect("yaml");
            let owner = Arc::new(Consumer::new("c", &[], Arc::from([])));
            Index::default().add(c, &owner).expect_err("refused")[0].clone()
        };
        assert_eq!(bad("{ key: k, algorithm: none, secret: s }").0, "algorithm");
        assert_eq!(bad("{ key: k, algorithm: RS256, secret: s }").0, "algorithm");
        assert_eq!(bad("{ key: k, algorithm: RS256, public_key: nope }").0, "public_key");
        assert_eq!(bad("{ key: k, algorithm: HS256, public_key: nope }").0, "public_key");
        assert_eq!(bad("{ key: k }").0, "");
        assert_eq!(bad("{ key: k, secret: '!!', base64_secret: true }").0, "secret");
    }

    #[test]
    fn a_hidden_cookie_leaves_the_others() {
        let mut h = http::HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; jwt=secret"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        remove_cookie(&mut h, "jwt");
        assert_eq!(h.get_all(header::COOKIE).iter().collect::<Vec<_>>(), ["a=1; b=2"]);
        let mut only = http::HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("jwt=secret"));
        remove_cookie(&mut only, "jwt");
        assert!(only.is_empty());
    }

    #[test]
    fn tokens_come_from_bearer_or_cookie() {
        let p = plugin("{ cookie: jwt }", ALICE);
        let req = |h: &[(&str, &str)]| {
            let mut b = http::Request::builder();
            for (n, v) in h {
                b = b.header(*n, *v);
            }
            b.body(()).expect("req").into_parts().0
        };
        assert_eq!(p.token(&req(&[("authorization", "Bearer abc")])), Some(("abc", true)));
        assert_eq!(p.token(&req(&[("authorization", "bearer  abc")])), Some(("abc", true)));
        assert_eq!(p.token(&req(&[("authorization", "Basic abc")])), None);
        assert_eq!(
            p.token(&req(&[("authorization", "Basic abc"), ("cookie", "jwt=t")])),
            Some(("t", false))
        );
        assert_eq!(p.token(&req(&[("cookie", "a=1; jwt=xyz")])), Some(("xyz", false)));
        assert_eq!(p.token(&req(&[])), None);
    }
}
