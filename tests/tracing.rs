//! OpenTelemetry tracing through the real binary: a span per request reaches a small OTLP/HTTP
//! collector started by the test (decoding the protobuf with `opentelemetry-proto`), continuing
//! the caller's `traceparent`, and the upstream receives the span's own context.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use support::{Client, DEADLINE, Gateway, Upstream, eventually, refused_addr};

/// An OTLP/HTTP traces receiver keeping every span it is sent, with its resource's service name.
struct Collector {
    addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans: Arc<Mutex<Vec<(String, Span)>>> = Arc::default();
        let kept = spans.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/v1/traces");
                            assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let export = ExportTraceServiceRequest::decode(body).unwrap();
                            for rs in export.resource_spans {
                                let service = rs
                                    .resource
                                    .iter()
                                    .flat_map(|r| &r.attributes)
                                    .find(|kv| kv.key == "service.name")
                                    .and_then(|kv| string(kv.value.as_ref()?.value.as_ref()?))
                                    .unwrap_or_default();
                                for ss in rs.scope_spans {
                                    for s in ss.spans {
                                        kept.lock().unwrap().push((service.clone(), s));
                                    }
                                }
                            }
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Collector { addr, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// The span of trace `trace_id` (hex), once it has arrived.
    async fn span_of(&self, trace_id: &str) -> (String, Span) {
        eventually(&format!("a span of trace {trace_id}"), DEADLINE, || {
            let spans = self.spans.lock().unwrap();
            spans.iter().find(|(_, s)| hex(&s.trace_id) == trace_id).cloned()
        })
        .await
    }

    fn has_trace(&self, trace_id: &str) -> bool {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .any(|(_, s)| hex(&s.trace_id) == trace_id)
    }
}

fn string(v: &Any) -> Option<String> {
    match v {
        Any::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A span attribute as text (strings as they are, integers in decimal).
fn attr(span: &Span, key: &str) -> Option<String> {
    let v = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    match v {
        Any::IntValue(i) => Some(i.to_string()),
        other => string(other),
    }
}

/// `(trace id, span id, flags)` of a `traceparent` value.
fn parts(traceparent: &str) -> (String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((p.len(), p[0]), (4, "00"), "{traceparent}");
    (p[1].to_owned(), p[2].to_owned(), p[3].to_owned())
}

async fn traced_gateway(collector: &Collector, up: &Upstream, sample_ratio: &str) -> Gateway {
    Gateway::builder(
        r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 1
  access_log: { path: "off" }
  tracing:
    endpoint: "{{collector}}"
    service_name: edge-test
    sample_ratio: {{ratio}}
    batch: { delay: 50ms, max_spans: 64 }
upstreams: [{ id: backend, nodes: [{ address: "{{up}}" }] }]
routes:
  - { id: traced, paths: ["/traced/*"], upstream: backend }
  - { id: broken, paths: ["/broken"], upstream: { nodes: [{ address: "{{refused}}" }] } }
"#,
    )
    .var("collector", &collector.endpoint())
    .var("up", &up.address())
    .var("ratio", sample_ratio)
    .var("refused", &refused_addr())
    .start()
    .await
}

#[tokio::test]
async fn a_callers_trace_is_continued_and_its_span_exported_with_route_upstream_and_status() {
    let collector = Collector::start().await;
    let up = Upstream::start("backend").await;
    let gw = traced_gateway(&collector, &up, "1.0").await;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let resp = Client::new()
        .get(&gw.url("/traced/a?key=secret"))
        .host("api.test:8080")
        .header("traceparent", &format!("00-{trace}-{caller}-01"))
        .send()
        .await;
    assert_eq!(resp.status, 200);
    let sent = resp
        .echo()
        .header("traceparent")
        .expect("the upstream gets a traceparent");
    let (up_trace, up_parent, flags) = parts(&sent);
    assert_eq!(up_trace, trace, "same trace upstream");
    assert_ne!(up_parent, caller, "the upstream's parent is the gateway's span");
    assert_eq!(flags, "01");

    let (service, span) = collector.span_of(trace).await;
    assert_eq!(service, "edge-test");
    assert_eq!(hex(&span.span_id), up_parent, "the span the upstream was told about");
    assert_eq!(hex(&span.parent_span_id), caller);
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.name, "GET traced");
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano && span.start_time_unix_nano > 0);
    assert_eq!(attr(&span, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(&span, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(&span, "url.path").as_deref(), Some("/traced/a"), "never the query");
    assert_eq!(attr(&span, "server.address").as_deref(), Some("api.test"));
    assert_eq!(attr(&span, "portico.route").as_deref(), Some("traced"));
    assert_eq!(attr(&span, "portico.upstream").as_deref(), Some("backend"));
    assert_eq!(attr(&span, "portico.upstream.address"), Some(up.address()));
    assert_eq!(attr(&span, "portico.upstream.status_code").as_deref(), Some("200"));
    assert_ne!(span.status.unwrap().code, StatusCode::Error as i32);
}

#[tokio::test]
async fn without_a_valid_traceparent_a_new_trace_starts() {
    let collector = Collector::start().await;
    let up = Upstream::start("backend").await;
    let gw = traced_gateway(&collector, &up, "1.0").await;
    let c = Client::new();

    for incoming in [
        None,
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        Some("garbage"),
    ] {
        let mut req = c.get(&gw.url("/traced/new"));
        if let Some(v) = incoming {
            req = req.header("traceparent", v);
        }
        let resp = req.send().await;
        let (trace, span_id, flags) = parts(&resp.echo().header("traceparent").unwrap());
        assert_eq!(flags, "01");
        let (_, span) = collector.span_of(&trace).await;
        assert_eq!(hex(&span.span_id), span_id);
        assert!(span.parent_span_id.is_empty(), "a root span for {incoming:?}");
    }

    // A failed upstream is an error span; a request no route matched still gets a span.
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let resp = c
        .get(&gw.url("/broken"))
        .header("traceparent", &format!("00-{trace}-b7ad6b7169203331-01"))
        .send()
        .await;
    assert_eq!(resp.status, 502);
    let (_, span) = collector.span_of(trace).await;
    assert_eq!(attr(&span, "http.response.status_code").as_deref(), Some("502"));
    assert_eq!(span.status.unwrap().code, StatusCode::Error as i32);

    let trace = "11f7651916cd43dd8448eb211c80319c";
    let resp = c
        .get(&gw.url("/nowhere"))
        .header("traceparent", &format!("00-{trace}-b7ad6b7169203331-01"))
        .send()
        .await;
    assert_eq!(resp.status, 404);
    let (_, span) = collector.span_of(trace).await;
    assert_eq!(span.name, "GET");
    assert_eq!(attr(&span, "portico.route"), None);
}

#[tokio::test]
async fn unsampled_traces_are_propagated_but_not_exported() {
    let collector = Collector::start().await;
    let up = Upstream::start("backend").await;
    let gw = traced_gateway(&collector, &up, "0.0").await;
    let c = Client::new();

    // sample_ratio 0: a new trace is not recorded, but the upstream still gets a context.
    let resp = c.get(&gw.url("/traced/zero")).send().await;
    let (unsampled_new, _, flags) = parts(&resp.echo().header("traceparent").unwrap());
    assert_eq!(flags, "00");
    // A caller that did not sample is followed.
    let unsampled_caller = "5bf92f3577b34da6a3ce929d0e0e4736";
    let resp = c
        .get(&gw.url("/traced/no"))
        .header("traceparent", &format!("00-{unsampled_caller}-00f067aa0ba902b7-00"))
        .send()
        .await;
    let (trace, _, flags) = parts(&resp.echo().header("traceparent").unwrap());
    assert_eq!((trace.as_str(), flags.as_str()), (unsampled_caller, "00"));
    // A caller that sampled is followed too, whatever the ratio; spans leave in order, so once
    // this one has arrived the earlier ones would have.
    let sampled = "6bf92f3577b34da6a3ce929d0e0e4736";
    c.get(&gw.url("/traced/yes"))
        .header("traceparent", &format!("00-{sampled}-00f067aa0ba902b7-01"))
        .send()
        .await;
    collector.span_of(sampled).await;
    assert!(!collector.has_trace(unsampled_caller));
    assert!(!collector.has_trace(&unsampled_new));
}

#[tokio::test]
async fn an_unreachable_collector_never_fails_a_request() {
    let up = Upstream::start("backend").await;
    let gw = Gateway::builder(
        r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 1
  access_log: { path: "off" }
  tracing: { endpoint: "http://{{collector}}/v1/traces", batch: { delay: 10ms, timeout: 200ms } }
routes: [{ id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{up}}" }] } }]
"#,
    )
    .var("collector", &refused_addr())
    .var("up", &up.address())
    .start()
    .await;
    for _ in 0..20 {
        assert_eq!(Client::new().get(&gw.url("/x")).send().await.status, 200);
    }
    gw.wait_stderr("span export failed").await;
}

#[tokio::test]
async fn spans_still_queued_at_shutdown_are_sent_before_exit() {
    let collector = Collector::start().await;
    let up = Upstream::start("backend").await;
    let mut gw = Gateway::builder(
        r#"
gateway:
  listeners: [{ address: "{{listen}}" }]
  workers: 1
  access_log: { path: "off" }
  tracing: { endpoint: "{{collector}}", batch: { delay: 1h } }
routes: [{ id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{up}}" }] } }]
"#,
    )
    .var("collector", &collector.endpoint())
    .var("up", &up.address())
    .start()
    .await;
    let resp = Client::new().get(&gw.url("/last")).send().await;
    let (trace, _, _) = parts(&resp.echo().header("traceparent").unwrap());
    assert!(!collector.has_trace(&trace), "held for the hour-long batch");
    gw.sigterm();
    let status = gw.wait_exit(DEADLINE).await.expect("the gateway exits");
    assert!(status.success());
    collector.span_of(&trace).await;
}

#[test]
fn tracing_settings_are_validated_with_locations() {
    let (code, out) = support::validate(
        r#"
gateway:
  listeners: [{ address: "127.0.0.1:1" }]
  tracing: { endpoint: "https://collector:4318/v1/traces", sample_ratio: 2, batch: { max_spans: 0 } }
"#,
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("gateway.tracing.endpoint: not supported yet: https"),
        "{out}"
    );
    assert!(
        out.contains("gateway.tracing.sample_ratio: must be between 0.0 and 1.0"),
        "{out}"
    );
    assert!(out.contains("gateway.tracing.batch.max_spans:"), "{out}");
    let (code, out) =
        support::validate("gateway: { listeners: [{ address: \"127.0.0.1:1\" }], tracing: { endpont: x } }");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("endpont"), "{out}");
}
