//! Cross-checks a parsed [`Config`]: unique ids, references that resolve, values in range,
//! and features that are not built yet refused out loud rather than ignored.

use crate::error::{ConfigErrors, join};
use crate::model::{
    Admin, Balancer, Config, ConfigStore, PassHost, Redis, Scheme, StoreKind, Upstream, UpstreamRef, UpstreamTls,
};
use rustc_hash::FxHashSet;
use std::collections::HashSet;
use std::net::SocketAddr;

/// Plugins that answer a request themselves, so their route needs no upstream.
const ANSWERING_PLUGINS: [&str; 2] = ["mock", "redirect"];

/// Every semantic problem of `config`, each with its location.
pub fn validate(config: &Config) -> ConfigErrors {
    let mut errors = ConfigErrors::default();
    gateway(config, &mut errors);

    // Locations are only written out for an error: a config of 10,000 valid routes makes
    // no strings here.
    let mut upstream_ids = FxHashSet::default();
    for (i, u) in config.upstreams.iter().enumerate() {
        let at = format!("upstreams[{i}]");
        if u.id.is_empty() {
            errors.push(join(&at, "id"), "an upstream needs an id");
        } else if !upstream_ids.insert(u.id.as_str()) {
            errors.push(join(&at, "id"), format!("duplicate upstream id {:?}", u.id));
        }
        upstream(u, &at, &mut errors);
    }

    let mut usernames = FxHashSet::default();
    for (i, c) in config.consumers.iter().enumerate() {
        let at = || format!("consumers[{i}]");
        if c.username.is_empty() {
            errors.push(join(&at(), "username"), "a consumer needs a username");
        } else if !usernames.insert(c.username.as_str()) {
            errors.push(join(&at(), "username"), format!("duplicate username {:?}", c.username));
        }
    }

    let mut route_ids = FxHashSet::default();
    for (i, r) in config.routes.iter().enumerate() {
        let at = || format!("routes[{i}]");
        if r.id.is_empty() {
            errors.push(join(&at(), "id"), "a route needs an id");
        } else if !route_ids.insert(r.id.as_str()) {
            errors.push(join(&at(), "id"), format!("duplicate route id {:?}", r.id));
        }
        if r.paths.is_empty() {
            errors.push(join(&at(), "paths"), "a route needs at least one path");
        }
        for (j, m) in r.methods.iter().enumerate() {
            if http_method(m).is_none() {
                errors.push(format!("{}.methods[{j}]", at()), format!("unknown method {m:?}"));
            }
        }
        for name in r.headers.keys() {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                errors.push(join(&at(), "headers"), format!("invalid header name {name:?}"));
            }
        }
        for (j, h) in r.hosts.iter().enumerate() {
            if let Err(msg) = host_pattern(h) {
                errors.push(format!("{}.hosts[{j}]", at()), msg);
            }
        }
        match &r.upstream {
            Some(UpstreamRef::Id(id)) if !upstream_ids.contains(id.as_str()) => {
                errors.push(join(&at(), "upstream"), format!("unknown upstream {id:?}"));
            }
            Some(UpstreamRef::Inline(u)) => upstream(u, &join(&at(), "upstream"), &mut errors),
            Some(UpstreamRef::Id(_)) => {}
            None if !r.plugins.keys().any(|p| ANSWERING_PLUGINS.contains(&p.as_str())) => {
                errors.push(
                    join(&at(), "upstream"),
                    "missing: name an upstream, or add a plugin that answers (mock, redirect)",
                );
            }
            None => {}
        }
    }
    errors
}

fn gateway(config: &Config, errors: &mut ConfigErrors) {
    let g = &config.gateway;
    if g.listeners.is_empty() {
        errors.push("gateway.listeners", "at least one listener is required");
    }
    let mut seen = HashSet::new();
    for (i, l) in g.listeners.iter().enumerate() {
        let at = format!("gateway.listeners[{i}]");
        match l.address.parse::<SocketAddr>() {
            Ok(a) if !seen.insert(a) => errors.push(join(&at, "address"), format!("{a} is listed twice")),
            Ok(_) => {}
            Err(_) => errors.push(
                join(&at, "address"),
                format!("invalid address {:?}; write IP:PORT", l.address),
            ),
        }
        if let Some(tls) = &l.tls
            && tls.certificates.is_empty()
        {
            errors.push(join(&at, "tls.certificates"), "at least one certificate is required");
        }
    }
    if let Some(a) = &g.admin {
        admin(a, &seen, errors);
    }
    if let Some(r) = &g.redis {
        redis(r, errors);
    }
    if let Some(t) = &g.tracing {
        crate::otel::validate(t, "gateway.tracing", errors);
    }
    if g.config_store.kind == StoreKind::Etcd {
        etcd_store(&g.config_store, errors);
    } else if !g.config_store.endpoints.is_empty() || g.config_store.prefix.is_some() || g.config_store.cache.is_some()
    {
        errors.push(
            "gateway.config_store",
            "endpoints, prefix and cache only apply to type: etcd",
        );
    }
    if g.access_log.format != "json" {
        errors.push(
            "gateway.access_log.format",
            format!("unknown format {:?}; only json", g.access_log.format),
        );
    }
    if g.access_log.path.is_empty() {
        errors.push("gateway.access_log.path", "write stdout, stderr, off or a file path");
    }
    match g.workers {
        Some(0) => errors.push("gateway.workers", "must be at least 1"),
        Some(n) if n > 1024 => errors.push("gateway.workers", "at most 1024"),
        _ => {}
    }
}

fn upstream(u: &Upstream, at: &str, errors: &mut ConfigErrors) {
    if u.nodes.is_empty() {
        errors.push(join(at, "nodes"), "an upstream needs at least one node");
    }
    for (i, n) in u.nodes.iter().enumerate() {
        if let Err(msg) = node_address(&n.address) {
            errors.push(format!("{at}.nodes[{i}].address"), msg);
        }
        if n.weight > 10_000 {
            errors.push(format!("{at}.nodes[{i}].weight"), "at most 10000");
        }
    }
    if !u.nodes.is_empty() && u.nodes.iter().all(|n| n.weight == 0) {
        errors.push(join(at, "nodes"), "every node has weight 0: nothing could be served");
    }
    if u.hash_on.is_some() && u.balancer != Balancer::ConsistentHash {
        errors.push(join(at, "hash_on"), "only applies to balancer: consistent_hash");
    }
    if let Some(tls) = &u.tls {
        upstream_tls(u.scheme, tls, &join(at, "tls"), errors);
    }
    match (u.pass_host, &u.upstream_host) {
        (PassHost::Rewrite, None) => errors.push(join(at, "upstream_host"), "required by pass_host: rewrite"),
        (PassHost::Rewrite, Some(h))
            if h.is_empty() || h.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) =>
        {
            errors.push(join(at, "upstream_host"), format!("invalid host {h:?}"));
        }
        (PassHost::Pass | PassHost::Node, Some(_)) => {
            errors.push(join(at, "upstream_host"), "only applies to pass_host: rewrite");
        }
        _ => {}
    }
    for (name, d) in [
        ("connect", u.timeout.connect),
        ("send", u.timeout.send),
        ("read", u.timeout.read),
    ] {
        if d.0.is_zero() {
            errors.push(format!("{at}.timeout.{name}"), "must be more than 0");
        }
    }
}

/// `tls` of an upstream: only with a TLS scheme, `cert` and `key` together. The files are read
/// (and their errors located) when the config is compiled.
fn upstream_tls(scheme: Scheme, tls: &UpstreamTls, at: &str, errors: &mut ConfigErrors) {
    if !matches!(scheme, Scheme::Https | Scheme::Grpcs) {
        errors.push(at, "only applies to scheme: https or grpcs");
    }
    match (&tls.cert, &tls.key) {
        (Some(_), None) => errors.push(join(at, "key"), "required with cert (the client certificate's key)"),
        (None, Some(_)) => errors.push(join(at, "cert"), "required with key (the client certificate)"),
        _ => {}
    }
    if !tls.verify && tls.ca.is_some() {
        errors.push(join(at, "ca"), "has no effect with verify: false");
    }
    for (name, v) in [
        ("ca", &tls.ca),
        ("cert", &tls.cert),
        ("key", &tls.key),
        ("sni", &tls.sni),
    ] {
        if v.as_deref().is_some_and(str::is_empty) {
            errors.push(join(at, name), "must not be empty");
        }
    }
}

/// `HOST:PORT` with a non-empty host and a port in 1..=65535.
fn node_address(a: &str) -> Result<(), String> {
    if a.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || format!("invalid address {a:?}; write HOST:PORT");
    let (host, port) = a.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if port_ok && host_ok { Ok(()) } else { Err(bad()) }
}

/// An exact host name or a `*.suffix` wildcard.
fn host_pattern(h: &str) -> Result<(), String> {
    let name = h.strip_prefix("*.").unwrap_or(h);
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !name.starts_with('.')
        && !name.ends_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid host {h:?}; write a name like api.example.com or *.example.com"
        ))
    }
}

/// The canonical upper-case form of a method name, if it is one.
pub fn http_method(m: &str) -> Option<String> {
    let up = m.to_ascii_uppercase();
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN.contains(&up.as_str()).then_some(up)
}

/// RFC 9110 `tchar`.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The shortest admin API key accepted: 16 characters (128 bits as hex from `openssl rand -hex 16`
/// is 32). A short key is refused, not warned about: the admin API shows the whole config.
pub const ADMIN_KEY_MIN: usize = 16;

/// `gateway.admin`: an `IP:PORT` of its own, and a key that can be sent as a header value.
/// The key itself never appears in a message.
fn admin(a: &Admin, listeners: &HashSet<SocketAddr>, errors: &mut ConfigErrors) {
    match a.address.parse::<SocketAddr>() {
        Ok(addr) if listeners.contains(&addr) => errors.push(
            "gateway.admin.address",
            format!("{addr} is also a listener; give the admin API its own port"),
        ),
        Ok(_) => {}
        Err(_) => errors.push(
            "gateway.admin.address",
            format!("invalid address {:?}; write IP:PORT", a.address),
        ),
    }
    let key = &a.api_key;
    if key.is_empty() {
        errors.push("gateway.admin.api_key", "required (sent by clients as X-API-Key)");
    } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
        errors.push(
            "gateway.admin.api_key",
            "only visible ASCII characters (no spaces): it is sent as a header value",
        );
    } else if key.len() < ADMIN_KEY_MIN {
        errors.push(
            "gateway.admin.api_key",
            format!(
                "too short ({} characters): at least {ADMIN_KEY_MIN}; generate one with `openssl rand -hex 32`",
                key.len()
            ),
        );
    }
}

/// `gateway.redis`: one `url`, or cluster seed `urls`; every URL `redis://`.
fn redis(r: &Redis, errors: &mut ConfigErrors) {
    match (&r.url, r.urls.is_empty()) {
        (None, true) => errors.push(
            "gateway.redis",
            "needs `url` (one server) or `urls` (cluster seed nodes)",
        ),
        (Some(_), false) => errors.push("gateway.redis", "give either `url` or `urls`, not both"),
        _ => {}
    }
    let at = |i: Option<usize>| match i {
        None => "gateway.redis.url".to_owned(),
        Some(i) => format!("gateway.redis.urls[{i}]"),
    };
    let urls = r
        .url
        .iter()
        .map(|u| (None, u))
        .chain(r.urls.iter().enumerate().map(|(i, u)| (Some(i), u)));
    for (i, u) in urls {
        let rest = u.strip_prefix("redis://").unwrap_or_default();
        if rest.is_empty() || rest.starts_with('/') {
            errors.push(
                at(i),
                format!("invalid Redis URL {:?}; write redis://HOST:PORT", mask(u)),
            );
        }
    }
}

/// `type: etcd`: at least one `http://HOST:PORT` endpoint; a prefix like `/portico`.
fn etcd_store(s: &ConfigStore, errors: &mut ConfigErrors) {
    if s.endpoints.is_empty() {
        errors.push(
            "gateway.config_store.endpoints",
            "at least one etcd endpoint is required",
        );
    }
    for (i, e) in s.endpoints.iter().enumerate() {
        let at = format!("gateway.config_store.endpoints[{i}]");
        match e.strip_prefix("http://") {
            Some(rest) if !rest.is_empty() && !rest.contains(['/', '@', '?']) && rest.contains(':') => {}
            _ if e.starts_with("https://") => errors.push(at, "not supported yet: TLS to etcd; write http://HOST:PORT"),
            _ => errors.push(
                at,
                format!("invalid etcd endpoint {:?}; write http://HOST:PORT", mask(e)),
            ),
        }
    }
    if let Some(p) = &s.prefix {
        let ok = p.starts_with('/')
            && p.len() > 1
            && !p.ends_with('/')
            && !p.contains("//")
            && !p.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            errors.push(
                "gateway.config_store.prefix",
                format!("invalid prefix {p:?}; write an absolute key path without a trailing slash, like /portico"),
            );
        }
    }
    if s.cache.as_deref() == Some("") {
        errors.push(
            "gateway.config_store.cache",
            "write a file path (or leave it out for the default)",
        );
    }
}

/// A URL with any password replaced, for error messages.
fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn errors_of(text: &str) -> Vec<String> {
        let cfg = parse(text, &|_| None).expect("parses");
        validate(&cfg).0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn unknown_upstream_is_located() {
        let errs = errors_of(
            r#"
gateway: { listeners: [{ address: "127.0.0.1:8080" }] }
upstreams: [{ id: users, nodes: [{ address: "127.0.0.1:9001" }] }]
routes:
  - { id: a, paths: [/a], upstream: users }
  - { id: b, paths: [/b], upstream: users }
  - { id: c, paths: [/c], upstream: users2 }
"#,
        );
        assert_eq!(errs, vec![r#"routes[2].upstream: unknown upstream "users2""#]);
    }

    #[test]
    fn upstream_tls_needs_a_tls_scheme_and_a_whole_client_certificate() {
        let errs = errors_of(
            r#"
gateway: { listeners: [{ address: "127.0.0.1:8080" }] }
upstreams:
  - { id: a, nodes: [{ address: "h:1" }], tls: { ca: ca.pem } }
  - { id: b, scheme: https, nodes: [{ address: "h:1" }], tls: { key: k.pem } }
  - { id: c, scheme: https, nodes: [{ address: "h:1" }], tls: { ca: ca.pem, verify: false, sni: "" } }
  - { id: d, scheme: https, nodes: [{ address: "h:1" }], tls: { ca: ca.pem, cert: c.pem, key: k.pem, sni: h } }
"#,
        );
        assert_eq!(
            errs,
            vec![
                "upstreams[0].tls: only applies to scheme: https or grpcs",
                "upstreams[1].tls.cert: required with key (the client certificate)",
                "upstreams[2].tls.ca: has no effect with verify: false",
                "upstreams[2].tls.sni: must not be empty",
            ]
        );
    }

    #[test]
    fn etcd_store_endpoints_and_prefix_are_checked() {
        let ok = errors_of(
            r#"
gateway:
  listeners: [{ address: "127.0.0.1:8080" }]
  config_store: { type: etcd, endpoints: ["http://127.0.0.1:2379"], prefix: /portico }
"#,
        );
        assert!(ok.is_empty(), "{ok:?}");
        let errs = errors_of(
            r#"
gateway:
  listeners: [{ address: "127.0.0.1:8080" }]
  config_store: { type: etcd, endpoints: ["127.0.0.1:2379", "https://e:2379"], prefix: portico/ }
"#,
        )
        .join("\n");
        for want in [
            "gateway.config_store.endpoints[0]: invalid etcd endpoint",
            "gateway.config_store.endpoints[1]: not supported yet",
            "gateway.config_store.prefix: invalid prefix",
        ] {
            assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
        }
        let none =
            errors_of("gateway: { listeners: [{ address: \"127.0.0.1:8080\" }], config_store: { type: etcd } }\n");
        assert_eq!(
            none,
            vec!["gateway.config_store.endpoints: at least one etcd endpoint is required"]
        );
    }

    #[test]
    fn admin_is_checked_and_its_key_never_shown() {
        let base = r#"gateway: { listeners: [{ address: "127.0.0.1:8080" }], admin: ADMIN }"#;
        let errs = |admin: &str| errors_of(&base.replace("ADMIN", admin)).join("\n");
        assert_eq!(errs(r#"{ address: "127.0.0.1:9180", api_key: 0123456789abcdef }"#), "");
        assert!(errs(r#"{ address: "127.0.0.1:8080", api_key: 0123456789abcdef }"#).contains("also a listener"));
        assert!(
            errs(r#"{ address: "localhost", api_key: 0123456789abcdef }"#).contains("gateway.admin.address: invalid")
        );
        assert!(errs(r#"{ address: "127.0.0.1:9180", api_key: "" }"#).contains("gateway.admin.api_key: required"));
        let spaced = errs(r#"{ address: "127.0.0.1:9180", api_key: "secret with spaces!" }"#);
        assert!(
            spaced.contains("visible ASCII") && !spaced.contains("secret with"),
            "{spaced}"
        );
        let short = errs(r#"{ address: "127.0.0.1:9180", api_key: s3cr3t }"#);
        assert!(short.contains("too short") && !short.contains("s3cr3t"), "{short}");
    }

    #[test]
    fn every_error_at_once() {
        let errs = errors_of(
            r#"
gateway: { listeners: [{ address: "nope" }], workers: 0, admin: { address: "127.0.0.1:9180", api_key: short } }
upstreams:
  - { id: u, nodes: [{ address: "127.0.0.1" }], pass_host: rewrite }
  - { id: u, nodes: [{ address: "h:1" }], scheme: grpc }
routes:
  - { id: r, paths: [/a], methods: [FETCH] }
  - { id: r, paths: [/b], hosts: ["*"], upstream: u }
"#,
        );
        let joined = errs.join("\n");
        for want in [
            "gateway.listeners[0].address: invalid address",
            "gateway.admin.api_key: too short (5 characters)",
            "gateway.workers: must be at least 1",
            "upstreams[0].nodes[0].address: invalid address",
            "upstreams[0].upstream_host: required by pass_host: rewrite",
            "upstreams[1].id: duplicate upstream id",
            "routes[0].methods[0]: unknown method",
            "routes[0].upstream: missing",
            "routes[1].id: duplicate route id",
            "routes[1].hosts[0]: invalid host",
        ] {
            assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
        }
    }
}
