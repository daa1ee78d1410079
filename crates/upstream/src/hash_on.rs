//! What `consistent_hash` hashes: `ip`, `uri`, `consumer`, `header:NAME`, `cookie:NAME`, `query:NAME`.

use http::{HeaderName, header, request};
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    Ip,
    Uri,
    Consumer,
    Header(HeaderName),
    Cookie(String),
    Query(String),
}

impl std::str::FromStr for HashOn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: write ip, uri, consumer, header:NAME, cookie:NAME or query:NAME");
        Ok(match s.split_once(':') {
            None if s == "ip" => HashOn::Ip,
            None if s == "uri" => HashOn::Uri,
            None if s == "consumer" => HashOn::Consumer,
            Some(("header", n)) => HashOn::Header(HeaderName::from_bytes(n.as_bytes()).map_err(|_| bad())?),
            Some(("cookie", n)) if !n.is_empty() => HashOn::Cookie(n.to_owned()),
            Some(("query", n)) if !n.is_empty() => HashOn::Query(n.to_owned()),
            _ => return Err(bad()),
        })
    }
}

impl HashOn {
    /// The bytes to hash for this request; `None` when the request lacks them (the caller
    /// then hashes the client address, so a request without the key still sticks somewhere).
    pub fn key<'a>(
        &self,
        req: &'a request::Parts,
        client_ip: &'a [u8],
        consumer: Option<&'a str>,
    ) -> Option<Cow<'a, [u8]>> {
        match self {
            HashOn::Ip => Some(Cow::Borrowed(client_ip)),
            HashOn::Uri => Some(Cow::Borrowed(req.uri.path().as_bytes())),
            HashOn::Consumer => consumer.map(|c| Cow::Borrowed(c.as_bytes())),
            HashOn::Header(n) => req.headers.get(n).map(|v| Cow::Borrowed(v.as_bytes())),
            HashOn::Cookie(name) => req
                .headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| Cow::Borrowed(v.as_bytes())),
            HashOn::Query(name) => req.uri.query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| Cow::Owned(v.into_owned().into_bytes()))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut b = http::Request::builder().uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn keys_come_from_where_the_config_says() {
        let p = parts("/a/b?user=42&x=1", &[("x-user", "7"), ("cookie", "a=1; session=abc")]);
        let key = |h: &str| {
            h.parse::<HashOn>()
                .expect("parses")
                .key(&p, b"10.0.0.1", Some("alice"))
                .map(|k| k.into_owned())
        };
        assert_eq!(key("ip").as_deref(), Some(&b"10.0.0.1"[..]));
        assert_eq!(key("uri").as_deref(), Some(&b"/a/b"[..]));
        assert_eq!(key("consumer").as_deref(), Some(&b"alice"[..]));
        assert_eq!(key("header:x-user").as_deref(), Some(&b"7"[..]));
        assert_eq!(key("cookie:session").as_deref(), Some(&b"abc"[..]));
        assert_eq!(key("query:user").as_deref(), Some(&b"42"[..]));
        assert_eq!(key("header:x-missing"), None);
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in ["", "ips", "header:", "cookie:", "query:", "header:bad name", "body:x"] {
            assert!(bad.parse::<HashOn>().is_err(), "{bad}");
        }
    }
}
