//! OpenTelemetry tracing of requests: W3C trace context in and out, one server span per
//! request, handed to the exporter thread (see `otel_export`) when the response is done.
//!
//! Off unless `gateway.tracing` is set; then the request path pays one branch. On, a request
//! makes two random ids, formats one `traceparent` for its upstream, and when it is done
//! encodes its span into its worker's batch (`otel_batch`); the exporter thread posts the
//! batches.

use crate::copied::Copied;
use crate::otel_export::Handle;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use portico_config::Tracing;
use portico_plugins::ctx::strip_port;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The request path's side of tracing: starts spans and queues finished ones.
pub struct Tracer {
    exporter: Handle,
    /// A new trace is sampled when its id's low 64 bits fall below this.
    threshold: u64,
}

/// A W3C trace context: `00-<trace id>-<parent id>-<flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

/// One finished (or finishing) request span: what the exporter turns into an OTLP span.
#[derive(Debug)]
pub struct SpanData {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The caller's span, when the request came with a valid `traceparent`.
    pub parent: Option<[u8; 8]>,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub method: Method,
    /// [`HOST`]: the Host without its port (when it is text), [`PATH`]: the path (no query).
    pub texts: Copied<2>,
    pub scheme: &'static str,
    pub client_ip: IpAddr,
    pub route: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    pub node: Option<Arc<str>>,
    pub upstream_status: Option<u16>,
    pub status: u16,
}

/// Indexes into [`SpanData::texts`].
pub const HOST: usize = 0;
pub const PATH: usize = 1;

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// A request's span while the request runs.
#[derive(Debug)]
pub struct Span {
    tracer: Arc<Tracer>,
    /// `None` when the trace is not sampled: the context still goes upstream, nothing is exported.
    /// Boxed: moved with the response body, it is a pointer rather than 300 bytes.
    data: Option<Box<SpanData>>,
    context: Context,
}

impl Tracer {
    /// Starts the exporter thread for `config`; the tracer sends it finished spans.
    pub fn start(config: &Tracing) -> std::io::Result<Arc<Tracer>> {
        Ok(Arc::new(Tracer {
            exporter: crate::otel_export::spawn(config)?,
            threshold: threshold(config.sample_ratio),
        }))
    }

    /// A span for a request with these headers (and this Host, or HTTP/2 authority): continuing the caller's trace when it sent a
    /// valid `traceparent` (and following its sampled flag), else a new trace.
    pub fn start_span(
        self: &Arc<Self>,
        headers: &HeaderMap,
        host: Option<&HeaderValue>,
        method: &Method,
        uri: &Uri,
        scheme: &'static str,
        client_ip: IpAddr,
    ) -> Span {
        let parent = headers.get(TRACEPARENT).and_then(|v| parse_traceparent(v.as_bytes()));
        let span_id = nonzero_u64().to_be_bytes();
        let (trace_id, sampled) = match parent {
            Some(p) => (p.trace_id, p.sampled),
            None => {
                let id = nonzero_u128();
                (
                    id.to_be_bytes(),
                    (id as u64) < self.threshold || self.threshold == u64::MAX,
                )
            }
        };
        let data = sampled.then(|| {
            Box::new(SpanData {
                trace_id,
                span_id,
                parent: parent.map(|p| p.span_id),
                start_unix_ns: unix_ns(),
                end_unix_ns: 0,
                method: method.clone(),
                texts: Copied::new([host.and_then(|h| h.to_str().ok()).map(strip_port), Some(uri.path())]),
                scheme,
                client_ip,
                route: None,
                upstream: None,
                node: None,
                upstream_status: None,
                status: 0,
            })
        });
        Span {
            tracer: self.clone(),
            data,
            context: Context {
                trace_id,
                span_id,
                sampled,
            },
        }
    }

    fn send(&self, span: &SpanData) {
        if !self.exporter.batches.push(span) {
            let dropped = &crate::metrics::families().spans_dropped;
            dropped.inc();
            let n = dropped.get();
            if n.is_power_of_two() {
                tracing::warn!(target: "portico::tracing", dropped = n, "span export queue full; spans dropped");
            }
        }
    }
}

impl Tracer {
    /// Exports every span queued so far, waiting at most `timeout`; false if that was not enough.
    /// For shutdown, once no request is left to add spans.
    pub fn flush(&self, timeout: Duration) -> bool {
        let flushed = self.exporter.flusher.flush(timeout);
        let f = crate::metrics::families();
        tracing::info!(
            target: "portico::tracing",
            flushed,
            exported = f.spans_exported.get(),
            dropped = f.spans_dropped.get(),
            "span exporter flushed"
        );
        flushed
    }
}

impl Span {
    /// This span's context, for the upstream.
    pub fn context(&self) -> Context {
        self.context
    }

    /// This span's `traceparent`, for the upstream request (replacing the caller's).
    pub fn traceparent(&self) -> [u8; 55] {
        format_traceparent(&self.context)
    }

    /// Fills in what routing and the upstream call learned.
    pub fn set_route(
        &mut self,
        route: &Arc<str>,
        upstream: Option<&Arc<str>>,
        node: Option<&Arc<str>>,
        upstream_status: Option<u16>,
    ) {
        if let Some(d) = self.data.as_mut() {
            d.route = Some(route.clone());
            d.upstream = upstream.cloned();
            d.node = node.cloned();
            d.upstream_status = upstream_status;
        }
    }

    /// Ends the span, `took` after its request started, with the response's status, and
    /// queues it for export.
    pub fn end(self, status: u16, took: Duration) {
        if let Some(mut d) = self.data {
            d.status = status;
            d.end_unix_ns = d.start_unix_ns + took.as_nanos() as u64;
            self.tracer.send(&d);
        }
    }
}

/// `ratio` of the u64 range; `u64::MAX` means every trace.
fn threshold(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        u64::MAX
    } else if ratio <= 0.0 {
        0
    } else {
        (ratio * u64::MAX as f64) as u64
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn nonzero_u64() -> u64 {
    fastrand::u64(1..)
}

fn nonzero_u128() -> u128 {
    fastrand::u128(1..)
}

/// A `traceparent` value, if it is a valid version-00 (or later, read as 00) context.
pub fn parse_traceparent(v: &[u8]) -> Option<Context> {
    // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex::<1>(&v[0..2])?[0];
    // Version ff is invalid; version 00 is exactly 55 bytes; a later version may append "-...".
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id = hex::<16>(&v[3..35])?;
    let span_id = hex::<8>(&v[36..52])?;
    let flags = hex::<1>(&v[53..55])?[0];
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Context {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// `00-<trace id>-<span id>-<flags>`, lowercase hex.
pub fn format_traceparent(c: &Context) -> [u8; 55] {
    let mut out = [b'-'; 55];
    out[0] = b'0';
    out[1] = b'0';
    put_hex(&mut out[3..35], &c.trace_id);
    put_hex(&mut out[36..52], &c.span_id);
    put_hex(&mut out[53..55], &[u8::from(c.sampled)]);
    out
}

/// Lowercase hex of `bytes` into `out` (twice as long).
pub fn put_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// `N` bytes from `2N` lowercase hex digits (W3C trace context allows lowercase only).
fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    if s.len() != 2 * N {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparents_round_trip() {
        let c = parse_traceparent(VALID.as_bytes()).unwrap();
        assert!(c.sampled);
        assert_eq!(c.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(&format_traceparent(&c)[..], VALID.as_bytes());
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes";
        assert!(!parse_traceparent(later.as_bytes()).unwrap().sampled);
    }

    #[test]
    fn ratios_become_thresholds() {
        assert_eq!(threshold(1.0), u64::MAX);
        assert_eq!(threshold(0.0), 0);
        let half = threshold(0.5);
        assert!(half > u64::MAX / 2 - 2048 && half < u64::MAX / 2 + 2048);
    }
}
