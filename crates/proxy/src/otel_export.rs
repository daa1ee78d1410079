//! The span exporter: one thread that batches finished spans and posts them to the collector
//! as OTLP/HTTP protobuf (`opentelemetry-proto` messages, encoded with prost, sent with hyper).
//!
//! Requests hand spans over a bounded channel and never wait: when the channel is full the
//! span is dropped and counted (`portico_tracing_spans_dropped_total`). A failed export drops
//! its batch (counted too) rather than holding memory for a collector that is down.

use crate::metrics::families;
use crate::otel::SpanData;
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use portico_config::Tracing;
use prost::Message;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

/// While a batch fills, the exporter naps this long between looks at the queue rather than
/// block on it: a sender that finds no one waiting wakes no one (see the access log's note).
const NAP: Duration = Duration::from_millis(10);

struct Exporter {
    authority: String,
    path: String,
    resource: Resource,
    max_spans: usize,
    delay: Duration,
    timeout: Duration,
    conn: Option<SendRequest<Full<Bytes>>>,
}

/// Starts the exporter thread; spans sent to the returned channel are exported.
pub fn spawn(config: &Tracing) -> std::io::Result<SyncSender<Msg>> {
    let endpoint = portico_config::otel::endpoint(&config.endpoint)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let (tx, rx) = sync_channel(config.batch.queue);
    let exporter = Exporter {
        authority: endpoint.authority,
        path: endpoint.path,
        resource: Resource {
            attributes: vec![string("service.name", &config.service_name)],
            ..Default::default()
        },
        max_spans: config.batch.max_spans,
        delay: config.batch.delay.get(),
        timeout: config.batch.timeout.get(),
        conn: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new()
        .name("span-export".into())
        .spawn(move || exporter.run(&rt, &rx))?;
    Ok(tx)
}

impl Exporter {
    fn run(mut self, rt: &tokio::runtime::Runtime, rx: &Receiver<Msg>) {
        let mut batch = Vec::with_capacity(self.max_spans);
        loop {
            let mut ack = None;
            match rx.recv() {
                Ok(Msg::Span(s)) => batch.push(s),
                Ok(Msg::Flush(a)) => ack = Some(a),
                Err(_) => return,
            }
            // Fill the batch until it is full, its first span has waited `delay`, or a flush.
            let deadline = Instant::now() + self.delay;
            let mut open = true;
            while ack.is_none() {
                while batch.len() < self.max_spans {
                    match rx.try_recv() {
                        Ok(Msg::Span(s)) => batch.push(s),
                        Ok(Msg::Flush(a)) => {
                            ack = Some(a);
                            break;
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                let now = Instant::now();
                if ack.is_some() || !open || batch.len() >= self.max_spans || now >= deadline {
                    break;
                }
                std::thread::sleep(NAP.min(deadline - now));
            }
            if !batch.is_empty() {
                self.export(rt, &mut batch);
            }
            if let Some(a) = ack {
                let _ = a.send(());
            }
            if !open {
                return;
            }
        }
    }

    /// Sends `batch` (emptying it); counts what the collector took or what was lost.
    fn export(&mut self, rt: &tokio::runtime::Runtime, batch: &mut Vec<SpanData>) {
        let n = batch.len() as u64;
        let body = Bytes::from(encode(&self.resource, batch.drain(..)));
        let f = families();
        match rt.block_on(self.post(body)) {
            Ok(()) => f.spans_exported.inc_by(n),
            Err(why) => {
                self.conn = None;
                f.spans_dropped.inc_by(n);
                f.span_export_failures.inc();
                let failures = f.span_export_failures.get();
                if failures.is_power_of_two() {
                    tracing::warn!(target: "portico::tracing", collector = %self.authority, error = %why, failures, "span export failed; batch dropped");
                }
            }
        }
    }

    /// Posts one encoded batch within the timeout: on the kept connection, and once more on a
    /// new one if the kept one turns out closed (collectors close idle connections).
    async fn post(&mut self, body: Bytes) -> Result<(), String> {
        let timeout = self.timeout;
        let attempt = async {
            if let Some(kept) = self.conn.take()
                && kept.is_ready()
                && let Ok(kept) = self.send(kept, body.clone()).await
            {
                self.conn = Some(kept);
                return Ok(());
            }
            let fresh = self.connect().await?;
            let fresh = self.send(fresh, body).await?;
            self.conn = Some(fresh);
            Ok(())
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// One POST; the connection comes back when it can carry the next one.
    async fn send(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        body: Bytes,
    ) -> Result<SendRequest<Full<Bytes>>, String> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(&self.path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body))
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender.send_request(req).await.map_err(|e| format!("send: {e}"))?;
        let status = resp.status();
        // Read the answer to the end so the connection can carry the next batch.
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(sender)
        } else {
            Err(format!("collector answered {status}"))
        }
    }
}

/// What the request path and shutdown send the exporter.
///
/// Spans travel by value: the channel's slots are allocated once, so a span costs no
/// allocation of its own (boxing it would add one per request for a rare flush's sake).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Msg {
    Span(SpanData),
    /// Export everything queued before this now, then answer.
    Flush(SyncSender<()>),
}

/// One export request holding `spans`.
fn encode(resource: &Resource, spans: impl Iterator<Item = SpanData>) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "portico".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: spans.map(to_proto).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    request.encode_to_vec()
}

/// Trace flags (sampled), and that the parent's remoteness is known (bit 8) and true (bit 9).
const FLAG_SAMPLED: u32 = 0x1;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// A span as OTLP writes it, with the HTTP semantic-convention attributes.
fn to_proto(s: SpanData) -> Span {
    let mut attributes = Vec::with_capacity(12);
    attributes.push(string("http.request.method", s.method.as_str()));
    attributes.push(string("url.path", s.uri.path()));
    attributes.push(string("url.scheme", s.scheme));
    if let Some(host) = s.host.as_ref().and_then(|h| h.to_str().ok()) {
        attributes.push(string("server.address", portico_plugins::ctx::strip_port(host)));
    }
    attributes.push(string("client.address", &s.client_ip.to_string()));
    attributes.push(int("http.response.status_code", i64::from(s.status)));
    if let Some(r) = &s.route {
        attributes.push(string("portico.route", r));
    }
    if let Some(u) = &s.upstream {
        attributes.push(string("portico.upstream", u));
    }
    if let Some(n) = &s.node {
        attributes.push(string("portico.upstream.address", n));
    }
    if let Some(code) = s.upstream_status {
        attributes.push(int("portico.upstream.status_code", i64::from(code)));
    }
    let name = match &s.route {
        Some(r) => format!("{} {r}", s.method),
        None => s.method.to_string(),
    };
    let error = s.status >= 500;
    Span {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags: FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | if s.parent.is_some() { FLAG_IS_REMOTE } else { 0 },
        name,
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: s.start_unix_ns,
        end_time_unix_nano: s.end_unix_ns,
        attributes,
        status: Some(Status {
            code: if error {
                status::StatusCode::Error
            } else {
                status::StatusCode::Unset
            } as i32,
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}
