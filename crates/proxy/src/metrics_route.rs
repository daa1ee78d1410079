//! One route's metric handles, resolved when the config is compiled, and what a request
//! records through them.
//!
//! The request counter has a series per (method class, status): the handles of the common
//! statuses are cached per route on first use (one `OnceLock` read after that); any other
//! status takes the family's labelled lookup, which hashes and takes a read lock.

use crate::metrics::families;
use crate::otel::Span;
use http::{Method, StatusCode};
use prometheus::{Histogram, IntCounter};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Method classes, the `method` label: the standard methods, and `OTHER` for the rest.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

/// The class of `m`, an index into [`METHODS`].
pub fn method_class(m: &Method) -> u8 {
    match m.as_str() {
        "GET" => 0,
        "HEAD" => 1,
        "POST" => 2,
        "PUT" => 3,
        "DELETE" => 4,
        "PATCH" => 5,
        "OPTIONS" => 6,
        "CONNECT" => 7,
        "TRACE" => 8,
        _ => 9,
    }
}

/// Statuses whose handles a route caches.
const COMMON: [u16; 30] = [
    100, 101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422,
    429, 499, 500, 501, 502, 503, 504,
];
const NO_SLOT: u8 = u8::MAX;
/// Status code → index into [`COMMON`], or [`NO_SLOT`].
static SLOT: [u8; 600] = {
    let mut t = [NO_SLOT; 600];
    let mut i = 0;
    while i < COMMON.len() {
        t[COMMON[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Plugins whose refusals count as auth failures.
const AUTH_PLUGINS: [&str; 4] = ["key-auth", "basic-auth", "jwt-auth", "acl"];

/// The handles of one route (or, with id `""`, of requests that matched none).
#[derive(Debug)]
pub struct RouteMetrics {
    id: Arc<str>,
    /// `[method * COMMON.len() + slot]`, filled on first use.
    requests: Box<[OnceLock<IntCounter>]>,
    duration: Histogram,
    upstream_duration: Histogram,
    bytes_received: IntCounter,
    bytes_sent: IntCounter,
    rate_limited: OnceLock<IntCounter>,
    auth_failures: [OnceLock<IntCounter>; AUTH_PLUGINS.len()],
}

impl RouteMetrics {
    /// The handles of route `id`: the same series as the last config's route of that id.
    pub fn new(id: &str) -> Arc<Self> {
        let f = families();
        let labels = [id];
        Arc::new(RouteMetrics {
            id: id.into(),
            requests: (0..METHODS.len() * COMMON.len()).map(|_| OnceLock::new()).collect(),
            duration: f.duration.with_label_values(&labels),
            upstream_duration: f.upstream_duration.with_label_values(&labels),
            bytes_received: f.bytes_received.with_label_values(&labels),
            bytes_sent: f.bytes_sent.with_label_values(&labels),
            rate_limited: OnceLock::new(),
            auth_failures: Default::default(),
        })
    }

    /// The handles of requests no route matched (and malformed ones), `route=""`.
    pub fn unrouted() -> &'static Arc<Self> {
        static NONE: OnceLock<Arc<RouteMetrics>> = OnceLock::new();
        NONE.get_or_init(|| RouteMetrics::new(""))
    }

    fn count_request(&self, method: u8, status: StatusCode) {
        let method = usize::from(method).min(METHODS.len() - 1);
        let slot = SLOT.get(usize::from(status.as_u16())).copied().unwrap_or(NO_SLOT);
        let labels = [&*self.id, METHODS[method], status.as_str()];
        match self.requests.get(method * COMMON.len() + usize::from(slot)) {
            Some(cell) if slot != NO_SLOT => {
                cell.get_or_init(|| families().requests.with_label_values(&labels))
                    .inc();
            }
            _ => families().requests.with_label_values(&labels).inc(),
        }
    }

    /// Records the upstream's time to response head.
    pub fn upstream_took(&self, d: Duration) {
        self.upstream_duration.observe(d.as_secs_f64());
    }

    /// Request body bytes received.
    pub fn received(&self, bytes: u64) {
        if bytes > 0 {
            self.bytes_received.inc_by(bytes);
        }
    }

    /// A plugin answered the request itself: a rate-limit 429 and an auth plugin's 401/403
    /// are counted; other answers (mock, redirect, cors preflight) are not refusals.
    pub fn answered_by(&self, plugin: &str, status: StatusCode) {
        let f = families();
        if plugin == "rate-limit" && status == StatusCode::TOO_MANY_REQUESTS {
            self.rate_limited
                .get_or_init(|| f.rate_limited.with_label_values(&[&*self.id]))
                .inc();
        } else if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
            && let Some(i) = AUTH_PLUGINS.iter().position(|p| *p == plugin)
        {
            self.auth_failures[i]
                .get_or_init(|| f.auth_failures.with_label_values(&[&*self.id, plugin]))
                .inc();
        }
    }
}

/// What the request path records once the response is done (metrics, and the trace span): kept by the response body until
/// its last byte is sent (or the client leaves).
#[derive(Debug)]
pub struct Sample {
    route: Arc<RouteMetrics>,
    method: u8,
    pub status: StatusCode,
    start: Instant,
    /// The request's trace span, when tracing is on.
    span: Option<Span>,
}

impl Sample {
    pub fn new(route: Arc<RouteMetrics>, method: u8, start: Instant, span: Option<Span>) -> Self {
        Sample {
            route,
            method,
            status: StatusCode::OK,
            start,
            span,
        }
    }

    /// Counts the request, its duration until now (returned), and the response body bytes
    /// sent; ends the span.
    pub fn finish(self, bytes_sent: u64) -> Duration {
        let took = self.start.elapsed();
        if let Some(span) = self.span {
            span.end(self.status.as_u16(), took);
        }
        let r = &self.route;
        r.count_request(self.method, self.status);
        r.duration.observe(took.as_secs_f64());
        if bytes_sent > 0 {
            r.bytes_sent.inc_by(bytes_sent);
        }
        took
    }
}
