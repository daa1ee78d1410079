//! `rate-limit`: at most `requests` per `window` per key (`ip`, `consumer`, `route`,
//! `header:NAME`), counted in this process (`policy: local`) or in Redis, shared by every
//! gateway node (`policy: redis`).
//!
//! Every response of a limited route carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (seconds until the limit is whole again): the request hook records the
//! verdict in the context and the response hook writes it, so upstream answers and the
//! gateway's own errors alike carry it. Past the limit: 429 with `Retry-After`.
//!
//! State is kept across reloads: a plugin whose settings did not change, on the same route,
//! gets its old table back ([`crate::shared_state`]). Counters are per place the plugin is
//! set: a route's count for that route; `global_plugins`' across every route; a consumer's
//! own `rate-limit` (its `plugins:`, which replaces the route's once it is authenticated)
//! across every route the consumer calls.
//!
//! `policy: redis` (`gateway.redis: { url: redis://HOST:PORT }`, or `{ urls: [...] }` for a
//! Redis Cluster) keeps the counters under `portico:rl:SCOPE:ALGORITHM:WINDOW_US:KEY`, each
//! with an expiry, so every gateway node with the same routes shares one limit. A request
//! waits for Redis at most `timeout` (default 5ms: a slow Redis adds at most that); past it, or while Redis is unreachable,
//! `fail_open: true` (default) lets it through without headers, `false` answers 503.

mod algo;
mod local;
mod redis;

use crate::ctx::{Ctx, RateLimitInfo};
use crate::limit_key::LimitKey;
use crate::phase::Phase;
use crate::plugin::{BuildEnv, Flow, Plugin};
use crate::{reply, shared_state};
use algo::{Algorithm, Rule};
use http::{HeaderName, HeaderValue, StatusCode, header, request, response};
use local::LocalTable;
use portico_config::Duration;
use redis::RedisClient;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per window (at least 1).
    requests: u64,
    /// The window, e.g. `1s`, `1m`.
    window: Duration,
    /// Default `ip`.
    #[serde(default)]
    key: LimitKey,
    /// Default `sliding_window`.
    #[serde(default)]
    algorithm: Algorithm,
    /// Default `local`.
    #[serde(default)]
    policy: Policy,
    /// `policy: redis`: let requests through while Redis is unreachable (true, default) or
    /// answer 503 (false).
    #[serde(default = "yes")]
    fail_open: bool,
    /// `policy: redis`: how long a request waits for Redis before it counts as unreachable.
    /// Default 5ms.
    #[serde(default = "default_timeout")]
    timeout: Duration,
    /// `policy: local`: keys remembered at most; past it the least recently useful are
    /// forgotten. Default 100000.
    #[serde(default = "default_max_keys")]
    max_keys: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Policy {
    #[default]
    Local,
    Redis,
}

fn yes() -> bool {
    true
}
fn default_timeout() -> Duration {
    Duration::from_millis(5)
}
fn default_max_keys() -> usize {
    local::DEFAULT_MAX_KEYS
}

#[derive(Debug)]
pub struct RateLimit {
    rule: Rule,
    key: LimitKey,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Local(Arc<LocalTable>),
    Redis {
        client: Arc<RedisClient>,
        /// `portico:rl:SCOPE:ALGORITHM:WINDOW:`; the request's key follows.
        prefix: String,
        fail_open: bool,
        timeout: std::time::Duration,
    },
}

impl RateLimit {
    /// Builds the plugin; `raw` (its YAML) and `env.scope` find its state of the last config.
    pub fn build(c: RateLimitConfig, env: &BuildEnv, raw: &serde_yaml::Value) -> Result<Self, String> {
        if c.requests == 0 {
            return Err("requests: must be at least 1".into());
        }
        let window_us = c.window.get().as_micros() as u64;
        if window_us < 1000 {
            return Err("window: must be at least 1ms".into());
        }
        let rule = Rule {
            algorithm: c.algorithm,
            limit: c.requests,
            window_us,
        };
        let backend = match c.policy {
            Policy::Local => {
                if c.max_keys == 0 {
                    return Err("max_keys: must be at least 1".into());
                }
                let key = shared_state::key("rate-limit", &env.scope, raw);
                Backend::Local(shared_state::shared(key, || LocalTable::new(c.max_keys)))
            }
            Policy::Redis => {
                let Some(config) = &env.redis else {
                    return Err("policy: redis needs `gateway.redis` (the Redis to share counters in)".into());
                };
                if c.timeout.get().is_zero() {
                    return Err("timeout: must be more than 0".into());
                }
                Backend::Redis {
                    client: RedisClient::shared(config),
                    prefix: format!("portico:rl:{}:{}:{}:", env.scope, c.algorithm.script_name(), window_us),
                    fail_open: c.fail_open,
                    timeout: c.timeout.get(),
                }
            }
        };
        Ok(Self {
            rule,
            key: c.key,
            backend,
        })
    }
}

impl Plugin for RateLimit {
    fn phase(&self) -> Phase {
        Phase::Limit
    }

    async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        let key = self.key.of(cx, req);
        let d = match &self.backend {
            Backend::Local(table) => table.check(&self.rule, &key),
            Backend::Redis {
                client,
                prefix,
                fail_open,
                timeout,
            } => {
                let r = &self.rule;
                match client
                    .check(redis_key(prefix, &key), r.limit, r.window_us, r.algorithm, *timeout)
                    .await
                {
                    Some(d) => d,
                    None if *fail_open => return Flow::Continue,
                    None => {
                        return Flow::Respond(reply::error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "rate limiter unavailable",
                            &cx.request_id,
                        ));
                    }
                }
            }
        };
        let info = RateLimitInfo {
            limit: d.limit,
            remaining: d.remaining,
            reset_secs: d.reset_secs(),
        };
        // With a global and a route limit both on, the headers tell the tighter one.
        if cx.rate_limit.is_none_or(|old| info.remaining <= old.remaining) {
            cx.rate_limit = Some(info);
        }
        if d.allowed {
            return Flow::Continue;
        }
        let mut resp = reply::error(StatusCode::TOO_MANY_REQUESTS, "too many requests", &cx.request_id);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(d.retry_secs()));
        Flow::Respond(resp)
    }

    fn has_response_hook(&self) -> bool {
        true
    }

    fn on_response(&self, cx: &mut Ctx, resp: &mut response::Parts) {
        if let Some(info) = cx.rate_limit {
            write_headers(&info, &mut resp.headers);
        }
    }
}

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

fn write_headers(info: &RateLimitInfo, headers: &mut http::HeaderMap) {
    headers.insert(LIMIT, HeaderValue::from(info.limit));
    headers.insert(REMAINING, HeaderValue::from(info.remaining));
    headers.insert(RESET, HeaderValue::from(info.reset_secs));
}

/// The Redis key of a request key: long keys (header values) are hashed to bound their size.
fn redis_key(prefix: &str, key: &str) -> String {
    if key.len() <= 64 {
        return format!("{prefix}{key}");
    }
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}#{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn plugin(yaml: &str, scope: &str) -> Result<RateLimit, String> {
        let raw: serde_yaml::Value = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        let c: RateLimitConfig = serde_yaml::from_value(raw.clone()).map_err(|e| e.to_string())?;
        let env = BuildEnv {
            scope: scope.into(),
            ..Default::default()
        };
        RateLimit::build(c, &env, &raw)
    }

    async fn statuses(p: &RateLimit, n: usize) -> Vec<u16> {
        let mut out = Vec::new();
        for _ in 0..n {
            let mut cx = Ctx::new(HeaderValue::from_static("id"), [10, 0, 0, 1].into(), "r".into());
            let (mut req, ()) = Request::new(()).into_parts();
            let status = match p.on_request(&mut cx, &mut req).await {
                Flow::Continue => 200,
                Flow::Respond(r) => r.status().as_u16(),
            };
            out.push(status);
        }
        out
    }

    #[tokio::test]
    async fn counts_survive_a_rebuild_of_the_same_config() {
        let yaml = "{ requests: 3, window: 1h, algorithm: fixed_window }";
        let a = plugin(yaml, "route:keep").expect("builds");
        assert_eq!(statuses(&a, 2).await, [200, 200]);
        let b = plugin(yaml, "route:keep").expect("builds");
        assert_eq!(statuses(&b, 2).await, [200, 429]);
        let other = plugin(yaml, "route:other").expect("builds");
        assert_eq!(statuses(&other, 1).await, [200]);
    }

    #[test]
    fn bad_settings_are_refused() {
        let err = |y: &str| plugin(y, "route:x").err().unwrap_or_default();
        assert!(err("{ requests: 0, window: 1s }").starts_with("requests:"));
        assert!(err("{ requests: 1, window: 1s, policy: redis }").contains("gateway.redis"));
        assert!(err("{ requests: 1, window: 1s, key: host }").contains("unknown key"));
        assert!(err("{ requests: 1, window: 1s, algorithm: leaky }").contains("unknown variant"));
        assert!(err("{ requests: 1, window: 1s, burst: 3 }").contains("unknown field"));
    }

    #[test]
    fn long_redis_keys_are_hashed() {
        assert_eq!(redis_key("p:", "ip:1.2.3.4"), "p:ip:1.2.3.4");
        let long = redis_key("p:", &"h".repeat(1000));
        assert_eq!(long.len(), "p:#".len() + 64);
    }
}
