//! The parts of a compact JWT that `jwt-auth` reads, parsed once per request: the header's
//! `alg` and `kid`, and the claims it checks (`exp`, `nbf`, `iss`, `aud`, `sub` and the
//! configured key claim). Everything else in the token is skipped unread.
//!
//! Signatures are verified by `jsonwebtoken` (see `jwt_auth`); this module only decodes, and
//! refuses what is ambiguous: not three parts, padded or non-URL-safe base64, a payload that
//! is not a JSON object, a claim it reads given twice.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// A compact JWS split in its three parts, with the header read.
#[derive(Debug)]
pub struct Token<'t> {
    /// `header.payload`: what the signature signs.
    pub message: &'t str,
    pub payload: &'t str,
    pub signature: &'t str,
    pub alg: String,
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
}

impl<'t> Token<'t> {
    pub fn parse(token: &'t str) -> Option<Self> {
        let (message, signature) = token.rsplit_once('.')?;
        let (header, payload) = message.split_once('.')?;
        if payload.contains('.') || signature.is_empty() {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
        let h: RawHeader = serde_json::from_slice(&bytes).ok()?;
        Some(Token {
            message,
            payload,
            signature,
            alg: h.alg.into_owned(),
            kid: h.kid.map(Cow::into_owned),
        })
    }

    /// The claims, with `key_claim` picked out too.
    pub fn claims(&self, key_claim: &str) -> Option<Claims> {
        let bytes = URL_SAFE_NO_PAD.decode(self.payload).ok()?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let claims = ClaimsSeed { key_claim }.deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(claims)
    }
}

/// A time claim as found.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub enum Time {
    #[default]
    Absent,
    At(f64),
    /// Present but not a JSON number (RFC 7519 4.1.4).
    Malformed,
}

/// The claims `jwt-auth` checks.
#[derive(Debug, Default)]
pub struct Claims {
    pub exp: Time,
    pub nbf: Time,
    pub iss: Option<Value>,
    pub aud: Option<Value>,
    pub sub: Option<Value>,
    /// The configured key claim's value, when it is a string.
    pub key: Option<String>,
}

struct ClaimsSeed<'k> {
    key_claim: &'k str,
}

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = Claims;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Claims, D::Error> {
        d.deserialize_map(self)
    }
}

fn time(v: Value) -> Time {
    v.as_f64().map_or(Time::Malformed, Time::At)
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        use serde::de::Error;
        let mut c = Claims::default();
        let mut seen = [false; 6];
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let slot = match &*name {
                n if n == self.key_claim => 5,
                "exp" => 0,
                "nbf" => 1,
                "iss" => 2,
                "aud" => 3,
                "sub" => 4,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(A::Error::custom("a claim given twice"));
            }
            let v: Value = map.next_value()?;
            // The key claim may also be one of the standard ones (`iss` by default).
            if slot == 5 {
                c.key = v.as_str().map(str::to_owned);
                match &*name {
                    "exp" => c.exp = time(v),
                    "nbf" => c.nbf = time(v),
                    "iss" => c.iss = Some(v),
                    "aud" => c.aud = Some(v),
                    "sub" => c.sub = Some(v),
                    _ => {}
                }
                continue;
            }
            match slot {
                0 => c.exp = time(v),
                1 => c.nbf = time(v),
                2 => c.iss = Some(v),
                3 => c.aud = Some(v),
                _ => c.sub = Some(v),
            }
        }
        Ok(c)
    }
}

/// What a route requires of a token's claims once its signature holds.
#[derive(Debug)]
pub struct Checks {
    pub exp: bool,
    pub nbf: bool,
    pub leeway: f64,
    pub audience: Option<Vec<String>>,
    pub issuer: Option<Vec<String>>,
}

impl Checks {
    /// `Err(why)` when a claim fails; `now` in seconds since the epoch.
    pub fn check(&self, c: &Claims, now: f64) -> Result<(), &'static str> {
        match c.exp {
            Time::Malformed if self.exp => return Err("invalid token"),
            Time::At(exp) if self.exp && exp < now - self.leeway => return Err("token expired"),
            _ => {}
        }
        match c.nbf {
            Time::Malformed if self.nbf => return Err("invalid token"),
            Time::At(nbf) if self.nbf && nbf > now + self.leeway => return Err("token not yet valid"),
            _ => {}
        }
        if let Some(allowed) = &self.issuer {
            match &c.iss {
                None => return Err("token misses a required claim"),
                Some(Value::String(iss)) if allowed.contains(iss) => {}
                Some(_) => return Err("invalid issuer"),
            }
        }
        if let Some(allowed) = &self.audience {
            let ok = match &c.aud {
                None => return Err("token misses a required claim"),
                Some(Value::String(a)) => allowed.contains(a),
                Some(Value::Array(list)) => list
                    .iter()
                    .any(|a| a.as_str().is_some_and(|a| allowed.iter().any(|x| x == a))),
                Some(_) => false,
            };
            if !ok {
                return Err("invalid audience");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", enc(header), enc(payload))
    }

    #[test]
    fn shapes_that_are_not_a_jws_are_refused() {
        let good = token(r#"{"alg":"HS256","kid":"k"}"#, r#"{"iss":"a"}"#);
        let t = Token::parse(&good).expect("parses");
        assert_eq!((t.alg.as_str(), t.kid.as_deref()), ("HS256", Some("k")));
        for bad in [
            String::new(),
            "a.b".to_owned(),
            format!("{good}.x"),
            format!("{}.", good.rsplit_once('.').expect("dot").0),
            format!("{}=.{}", enc(r#"{"alg":"HS256"}"#), "e30.c2ln"),
            token(r#"{"alg":"HS256","alg":"none"}"#, "{}"),
            token(r#"{"typ":"JWT"}"#, "{}"),
            format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(b"\x8a{\"alg\":\"HS256\"}")),
        ] {
            assert!(Token::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn claims_are_read_once_and_strictly() {
        let claims = |p: &str| {
            Token::parse(&token(r#"{"alg":"HS256"}"#, p))
                .expect("parses")
                .claims("key")
        };
        let c = claims(r#"{"key":"k1","exp":10,"nbf":1.5,"iss":"i","aud":["a","b"],"x":{"deep":[1]}}"#).expect("ok");
        assert_eq!(c.key.as_deref(), Some("k1"));
        assert_eq!((c.exp, c.nbf), (Time::At(10.0), Time::At(1.5)));
        assert!(claims(r#"{"key":"k1","key":"k2"}"#).is_none());
        assert!(claims(r#"{"exp":1,"exp":2}"#).is_none());
        assert!(claims("123").is_none());
        assert!(claims("foo").is_none());
        assert!(claims(r#"{} {}"#).is_none());
        assert_eq!(claims(r#"{"exp":"10"}"#).expect("ok").exp, Time::Malformed);
        let raw = token(r#"{"alg":"HS256"}"#, r#"{"iss":"app"}"#);
        let by_iss = Token::parse(&raw).expect("parses");
        let c = by_iss.claims("iss").expect("ok");
        assert_eq!(
            (c.key.as_deref(), c.iss.as_ref().and_then(|v| v.as_str())),
            (Some("app"), Some("app"))
        );
    }

    #[test]
    fn checks_follow_the_rfc() {
        let checks = Checks {
            exp: true,
            nbf: true,
            leeway: 5.0,
            audience: Some(vec!["api".into()]),
            issuer: None,
        };
        let c = |exp: Time, nbf: Time, aud: Value| Claims {
            exp,
            nbf,
            aud: Some(aud),
            ..Claims::default()
        };
        let api = || Value::from("api");
        assert_eq!(checks.check(&c(Time::At(100.0), Time::Absent, api()), 100.0), Ok(()));
        assert_eq!(checks.check(&c(Time::At(96.0), Time::Absent, api()), 100.0), Ok(()));
        assert_eq!(
            checks.check(&c(Time::At(94.0), Time::Absent, api()), 100.0),
            Err("token expired")
        );
        assert_eq!(
            checks.check(&c(Time::Malformed, Time::Absent, api()), 100.0),
            Err("invalid token")
        );
        assert_eq!(
            checks.check(&c(Time::Absent, Time::At(106.0), api()), 100.0),
            Err("token not yet valid")
        );
        let both = serde_json::json!(["web", "api"]);
        assert_eq!(checks.check(&c(Time::Absent, Time::Absent, both), 100.0), Ok(()));
        let wrong = Value::from("web");
        assert_eq!(
            checks.check(&c(Time::Absent, Time::Absent, wrong), 100.0),
            Err("invalid audience")
        );
        let none = Claims::default();
        assert_eq!(checks.check(&none, 100.0), Err("token misses a required claim"));
    }
}
