//! `gateway.tracing`: validation, and the collector endpoint split into what a client needs.

use crate::error::join;
use crate::{ConfigErrors, Tracing};

/// A collector endpoint: `http://HOST[:PORT][/PATH]`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST:PORT` (port 80 when the URL has none), to connect to and send as `Host`.
    pub authority: String,
    /// The request path; `/v1/traces` when the URL has none.
    pub path: String,
}

/// Splits an endpoint URL; the error says what is wrong with it.
pub fn endpoint(url: &str) -> Result<Endpoint, String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.starts_with("https://") {
            "not supported yet: https collectors; write an http:// endpoint".into()
        } else {
            format!("invalid endpoint {url:?}; write http://HOST:PORT/v1/traces")
        });
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let valid_host = |h: &str| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    if !valid_host(host) || authority.contains('@') {
        return Err(format!(
            "invalid endpoint {url:?}: no usable host; write http://HOST:PORT/v1/traces"
        ));
    }
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid endpoint {url:?}: bad port {p:?}"))?,
    };
    if path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!("invalid endpoint {url:?}: bad path"));
    }
    Ok(Endpoint {
        authority: format!("{host}:{port}"),
        path: if path.is_empty() {
            "/v1/traces".into()
        } else {
            path.into()
        },
    })
}

/// Checks `gateway.tracing` at `at`.
pub fn validate(t: &Tracing, at: &str, errors: &mut ConfigErrors) {
    if let Err(e) = endpoint(&t.endpoint) {
        errors.push(join(at, "endpoint"), e);
    }
    if t.service_name.trim().is_empty() {
        errors.push(join(at, "service_name"), "must not be empty");
    }
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        errors.push(join(at, "sample_ratio"), "must be between 0.0 and 1.0");
    }
    let b = &t.batch;
    if !(1..=65_536).contains(&b.max_spans) {
        errors.push(join(at, "batch.max_spans"), "must be between 1 and 65536");
    }
    if b.queue < b.max_spans || b.queue > 1 << 20 {
        errors.push(
            join(at, "batch.queue"),
            "must be at least batch.max_spans and at most 1048576",
        );
    }
    if b.delay.get().is_zero() {
        errors.push(join(at, "batch.delay"), "must be more than 0s");
    }
    if b.timeout.get().is_zero() {
        errors.push(join(at, "batch.timeout"), "must be more than 0s");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_split() {
        let e = endpoint("http://127.0.0.1:4318/v1/traces").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("127.0.0.1:4318", "/v1/traces")
        );
        let e = endpoint("http://collector").unwrap();
        assert_eq!((e.authority.as_str(), e.path.as_str()), ("collector:80", "/v1/traces"));
        assert_eq!(endpoint("http://[::1]:4318/x").unwrap().authority, "[::1]:4318");
        for bad in [
            "collector:4318",
            "https://c:4318",
            "http://:4318/",
            "http://c:99999/",
            "http://u@c/",
            "http://c/a b",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_error_is_located() {
        let text = r#"
gateway:
  listeners: [{ address: "127.0.0.1:8080" }]
  tracing: { endpoint: "ftp://x", service_name: " ", sample_ratio: 1.5, batch: { max_spans: 0, delay: 0s, queue: 1 } }
"#;
        let config = crate::parse::parse(text, &|_| None).unwrap();
        let errors: Vec<String> = crate::validate::validate(&config)
            .0
            .iter()
            .map(|e| e.to_string())
            .collect();
        for at in [
            "endpoint",
            "service_name",
            "sample_ratio",
            "batch.max_spans",
            "batch.delay",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(&format!("gateway.tracing.{at}:"))),
                "{at}: {errors:?}"
            );
        }
        let ok = "gateway: { listeners: [{ address: \"127.0.0.1:8080\" }], tracing: { endpoint: \"http://127.0.0.1:4318/v1/traces\" } }";
        let config = crate::parse::parse(ok, &|_| None).unwrap();
        assert!(crate::validate::validate(&config).is_empty());
    }
}
