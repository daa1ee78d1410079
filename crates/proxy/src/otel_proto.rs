//! Spans in the OTLP protobuf wire format (`ExportTraceServiceRequest`), written straight into
//! reused buffers with prost's varint helpers.
//!
//! Building `opentelemetry-proto`'s message structs first cost a dozen small allocations per
//! span (every attribute key and value a `String`), their length pass and their drop: more than
//! the request itself. Here a span is a few `extend_from_slice` calls. The field numbers are
//! those of `opentelemetry/proto/trace/v1/trace.proto` and `common/v1/common.proto`; the unit
//! tests decode the output with `opentelemetry-proto`.

use crate::otel::{HOST, PATH, SpanData};
use bytes::Bytes;
use http::Method;
use prost::encoding::{encode_varint, encoded_len_varint};
use std::net::IpAddr;
use std::sync::Arc;

/// A field's key byte: `field << 3 | wire type` (every field written here is below 16).
const fn key(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// Trace flags (sampled), and that the parent's remoteness is known (bit 8) and true (bit 9).
const FLAG_SAMPLED: u32 = 0x1;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;
const SPAN_KIND_SERVER: u8 = 2;
const STATUS_CODE_ERROR: u8 = 2;

/// What every export request wraps its spans in: the resource (the service name) and the
/// instrumentation scope.
pub struct Envelope {
    /// `ResourceSpans.resource` (field 1), complete.
    resource: Vec<u8>,
    /// `ScopeSpans.scope` (field 1), complete.
    scope: Vec<u8>,
}

/// A batch of encoded spans (`ScopeSpans.spans` fields, one after the other) after `room`
/// bytes left for the envelope's head, and how many spans.
#[derive(Debug, Default)]
pub struct Batch {
    pub spans: Vec<u8>,
    pub room: usize,
    pub count: usize,
}

/// Writes spans into a batch.
#[derive(Default)]
pub struct SpanWriter {
    batch: Batch,
    /// The last span's name and method and route attributes, and what they were made of:
    /// consecutive spans mostly share them.
    route: Option<(RouteKey, Vec<u8>)>,
    /// The last span's scheme, server and client address attributes, likewise.
    client: Option<(ClientKey, Vec<u8>)>,
}

#[derive(PartialEq)]
struct RouteKey {
    method: Method,
    route: Option<Arc<str>>,
    upstream: Option<Arc<str>>,
    node: Option<Arc<str>>,
}

#[derive(PartialEq)]
struct ClientKey {
    scheme: &'static str,
    host: Option<Vec<u8>>,
    ip: IpAddr,
}

impl Envelope {
    pub fn new(service_name: &str) -> Self {
        let mut attributes = Vec::new();
        string_attribute(&mut attributes, key(1, LEN), "service.name", service_name);
        let mut resource = Vec::new();
        bytes_field(&mut resource, key(1, LEN), &attributes);
        let mut scope_body = Vec::new();
        bytes_field(&mut scope_body, key(1, LEN), b"portico");
        bytes_field(&mut scope_body, key(2, LEN), env!("CARGO_PKG_VERSION").as_bytes());
        let mut scope = Vec::new();
        bytes_field(&mut scope, key(1, LEN), &scope_body);
        Envelope { resource, scope }
    }

    /// The room a batch leaves for [`Envelope::body`] to write the head in place.
    pub fn room(&self) -> usize {
        2 + 5 + 5 + self.resource.len() + self.scope.len()
    }

    /// Everything of the export request before `spans`, `len` bytes of them.
    fn head(&self, len: usize) -> Vec<u8> {
        let scope_spans = self.scope.len() + len;
        let resource_spans = self.resource.len() + 1 + encoded_len_varint(scope_spans as u64) + scope_spans;
        let mut out = Vec::with_capacity(self.room());
        out.push(key(1, LEN));
        encode_varint(resource_spans as u64, &mut out);
        out.extend_from_slice(&self.resource);
        out.push(key(2, LEN));
        encode_varint(scope_spans as u64, &mut out);
        out.extend_from_slice(&self.scope);
        out
    }

    /// The export request (`ExportTraceServiceRequest`) holding `spans`.
    fn request(&self, spans: &[u8]) -> Vec<u8> {
        let mut out = self.head(spans.len());
        out.extend_from_slice(spans);
        out
    }

    /// The export request holding `batch`'s spans, its head written in the room the batch
    /// left (no copy of the spans).
    pub fn body(&self, batch: Batch) -> Bytes {
        let spans = batch.spans.get(batch.room..).unwrap_or_default();
        let head = self.head(spans.len());
        match batch.room.checked_sub(head.len()) {
            Some(at) => {
                let mut all = batch.spans;
                all[at..batch.room].copy_from_slice(&head);
                Bytes::from(all).slice(at..)
            }
            None => Bytes::from(self.request(spans)),
        }
    }
}

impl SpanWriter {
    /// A writer whose batches leave `room` bytes in front (see [`Envelope::body`]).
    pub fn with_room(room: usize) -> Self {
        SpanWriter {
            batch: Batch {
                spans: vec![0; room],
                room,
                count: 0,
            },
            ..Default::default()
        }
    }

    /// Spans in the batch being written.
    pub fn len(&self) -> usize {
        self.batch.count
    }

    /// The batch written so far; the next one is sized like it.
    pub fn take(&mut self) -> Batch {
        let room = self.batch.room;
        let mut spans = Vec::with_capacity(self.batch.spans.len().max(room));
        spans.resize(room, 0);
        let next = Batch { spans, room, count: 0 };
        std::mem::replace(&mut self.batch, next)
    }

    /// Adds one span to the batch.
    pub fn push(&mut self, s: &SpanData) {
        let b = &mut self.batch.spans;
        // The span's key and a two-byte length (most spans take 128 to 16,383 bytes), fixed
        // below once the body is written.
        let start = b.len();
        b.extend_from_slice(&[key(2, LEN), 0, 0]);

        // trace_id (1), span_id (2), parent_span_id (4).
        let mut ids = [0u8; 38];
        ids[..2].copy_from_slice(&[key(1, LEN), 16]);
        ids[2..18].copy_from_slice(&s.trace_id);
        ids[18..20].copy_from_slice(&[key(2, LEN), 8]);
        ids[20..28].copy_from_slice(&s.span_id);
        let ids_len = match &s.parent {
            Some(parent) => {
                ids[28..30].copy_from_slice(&[key(4, LEN), 8]);
                ids[30..38].copy_from_slice(parent);
                38
            }
            None => 28,
        };
        b.extend_from_slice(&ids[..ids_len]);
        // kind (6), start (7) and end (8) times.
        let mut times = [0u8; 20];
        times[..3].copy_from_slice(&[key(6, VARINT), SPAN_KIND_SERVER, key(7, FIXED64)]);
        times[3..11].copy_from_slice(&s.start_unix_ns.to_le_bytes());
        times[11] = key(8, FIXED64);
        times[12..20].copy_from_slice(&s.end_unix_ns.to_le_bytes());
        b.extend_from_slice(&times);

        const ATTR: u8 = key(9, LEN);
        let same_route = self.route.as_ref().is_some_and(|(k, _)| {
            k.method == s.method && k.route == s.route && k.upstream == s.upstream && k.node == s.node
        });
        if !same_route {
            let k = RouteKey {
                method: s.method.clone(),
                route: s.route.clone(),
                upstream: s.upstream.clone(),
                node: s.node.clone(),
            };
            let block = route_block(&k);
            self.route = Some((k, block));
        }
        if let Some((_, block)) = &self.route {
            b.extend_from_slice(block);
        }
        let host = s.texts.bytes(HOST);
        let same_client = self
            .client
            .as_ref()
            .is_some_and(|(k, _)| k.scheme == s.scheme && k.ip == s.client_ip && k.host.as_deref() == host);
        if !same_client {
            let k = ClientKey {
                scheme: s.scheme,
                host: host.map(<[u8]>::to_vec),
                ip: s.client_ip,
            };
            let block = client_block(&k);
            self.client = Some((k, block));
        }
        if let Some((_, block)) = &self.client {
            b.extend_from_slice(block);
        }
        string_attribute(b, ATTR, "url.path", s.texts.bytes(PATH).unwrap_or_default());
        int_attribute(b, ATTR, "http.response.status_code", i64::from(s.status));
        if let Some(code) = s.upstream_status {
            int_attribute(b, ATTR, "portico.upstream.status_code", i64::from(code));
        }
        // Status (field 15): code ERROR (3) for a 5xx, else an empty message (code UNSET);
        // then the flags (field 16, fixed32: its key takes two varint bytes, 0x85 0x01).
        let remote = if s.parent.is_some() { FLAG_IS_REMOTE } else { 0 };
        let flags = (FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | remote).to_le_bytes();
        let mut tail = [
            key(15, LEN),
            2,
            key(3, VARINT),
            STATUS_CODE_ERROR,
            0x85,
            0x01,
            0,
            0,
            0,
            0,
        ];
        tail[6..].copy_from_slice(&flags);
        if s.status >= 500 {
            b.extend_from_slice(&tail);
        } else {
            tail[1] = 0;
            b.extend_from_slice(&tail[..2]);
            b.extend_from_slice(&tail[4..]);
        }

        let len = b.len() - start - 3;
        if (128..1 << 14).contains(&len) {
            b[start + 1] = (len as u8) | 0x80;
            b[start + 2] = (len >> 7) as u8;
        } else {
            let mut varint = Vec::with_capacity(5);
            encode_varint(len as u64, &mut varint);
            b.splice(start + 1..start + 3, varint);
        }
        self.batch.count += 1;
    }
}

/// A span's name (field 5: the method, and the route when one matched) and its method and
/// route attributes.
fn route_block(k: &RouteKey) -> Vec<u8> {
    const ATTR: u8 = key(9, LEN);
    let mut b = Vec::with_capacity(256);
    let method = k.method.as_str();
    match &k.route {
        Some(r) => {
            b.push(key(5, LEN));
            encode_varint((method.len() + 1 + r.len()) as u64, &mut b);
            b.extend_from_slice(method.as_bytes());
            b.push(b' ');
            b.extend_from_slice(r.as_bytes());
        }
        None => bytes_field(&mut b, key(5, LEN), method.as_bytes()),
    }
    string_attribute(&mut b, ATTR, "http.request.method", method);
    if let Some(r) = &k.route {
        string_attribute(&mut b, ATTR, "portico.route", &**r);
    }
    if let Some(u) = &k.upstream {
        string_attribute(&mut b, ATTR, "portico.upstream", &**u);
    }
    if let Some(n) = &k.node {
        string_attribute(&mut b, ATTR, "portico.upstream.address", &**n);
    }
    b
}

/// A span's scheme, server address and client address attributes.
fn client_block(k: &ClientKey) -> Vec<u8> {
    const ATTR: u8 = key(9, LEN);
    let mut b = Vec::with_capacity(128);
    string_attribute(&mut b, ATTR, "url.scheme", k.scheme);
    if let Some(host) = &k.host {
        string_attribute(&mut b, ATTR, "server.address", host);
    }
    string_attribute(&mut b, ATTR, "client.address", k.ip.to_string());
    b
}

/// A length-delimited field: key, length, bytes.
fn bytes_field(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A `KeyValue` field (under `key`) whose value is `AnyValue.string_value`.
fn string_attribute(out: &mut Vec<u8>, field: u8, name: &str, value: impl AsRef<[u8]>) {
    let value = value.as_ref();
    // Every length below 128 takes one byte: the usual case, written in four slices.
    let len = name.len() + value.len() + 6;
    if len < 128 {
        out.extend_from_slice(&[field, len as u8, key(1, LEN), name.len() as u8]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&[key(2, LEN), value.len() as u8 + 2, key(1, LEN), value.len() as u8]);
        out.extend_from_slice(value);
        return;
    }
    let any = 1 + encoded_len_varint(value.len() as u64) + value.len();
    keyvalue_head(out, field, name, any);
    bytes_field(out, key(1, LEN), value);
}

/// A `KeyValue` field (under `key`) whose value is `AnyValue.int_value`.
fn int_attribute(out: &mut Vec<u8>, field: u8, name: &str, value: i64) {
    // A status code: a two-byte varint, and one-byte lengths.
    if (128..1 << 14).contains(&value) && name.len() < 100 {
        let len = name.len() + 2 + 2 + 3;
        out.extend_from_slice(&[field, len as u8, key(1, LEN), name.len() as u8]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&[key(2, LEN), 3, key(3, VARINT), (value as u8) | 0x80, (value >> 7) as u8]);
        return;
    }
    let any = 1 + encoded_len_varint(value as u64);
    keyvalue_head(out, field, name, any);
    out.push(key(3, VARINT));
    encode_varint(value as u64, out);
}

/// A `KeyValue`'s field key and length, its `key`, and the head of its `value` (an `AnyValue`
/// of `any` bytes, which the caller writes next).
fn keyvalue_head(out: &mut Vec<u8>, field: u8, name: &str, any: usize) {
    let len = 1 + encoded_len_varint(name.len() as u64) + name.len() + 1 + encoded_len_varint(any as u64) + any;
    out.push(field);
    encode_varint(len as u64, out);
    bytes_field(out, key(1, LEN), name.as_bytes());
    out.push(key(2, LEN));
    encode_varint(any as u64, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copied::Copied;
    use http::Method;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
    use prost::Message;
    use std::sync::Arc;

    fn span(route: Option<&str>, parent: Option<[u8; 8]>, status: u16) -> SpanData {
        SpanData {
            trace_id: [7; 16],
            span_id: [9; 8],
            parent,
            start_unix_ns: 1_700_000_000_000_000_000,
            end_unix_ns: 1_700_000_000_000_250_000,
            method: Method::POST,
            texts: Copied::new([Some("api.test"), Some(&format!("/long/{}", "p".repeat(200)))]),
            scheme: "https",
            client_ip: "10.1.2.3".parse().unwrap(),
            route: route.map(Arc::from),
            upstream: route.map(|_| Arc::from("backend")),
            node: route.map(|_| Arc::from("127.0.0.1:9000")),
            upstream_status: route.map(|_| 503),
            status,
        }
    }

    fn attr(s: &Span, key: &str) -> Option<Value> {
        s.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    }

    /// Without room in front: the head is written in a copy.
    fn decode(mut w: SpanWriter) -> ExportTraceServiceRequest {
        let batch = w.take();
        ExportTraceServiceRequest::decode(Envelope::new("edge").body(batch)).unwrap()
    }

    fn text(v: &str) -> Option<Value> {
        Some(Value::StringValue(v.into()))
    }

    #[test]
    fn batches_decode_as_otlp_export_requests() {
        let envelope = Envelope::new("edge");
        let mut w = SpanWriter::with_room(envelope.room());
        for _ in 0..2 {
            w.push(&span(Some("r1"), Some([1; 8]), 502));
            w.push(&span(None, None, 404));
            assert_eq!(w.len(), 2);
            let batch = w.take();
            assert_eq!((batch.count, w.len()), (2, 0));
            let req = ExportTraceServiceRequest::decode(envelope.body(batch)).unwrap();
            let rs = &req.resource_spans[0];
            let service = &rs.resource.as_ref().unwrap().attributes[0];
            assert_eq!(service.key, "service.name");
            assert_eq!(service.value.clone().unwrap().value, text("edge"));
            let ss = &rs.scope_spans[0];
            let scope = ss.scope.as_ref().unwrap();
            assert_eq!(
                (scope.name.as_str(), scope.version.as_str()),
                ("portico", env!("CARGO_PKG_VERSION"))
            );
            assert_eq!(ss.spans.len(), 2);

            let s = &ss.spans[0];
            assert_eq!(
                (s.trace_id.as_slice(), s.span_id.as_slice()),
                (&[7; 16][..], &[9; 8][..])
            );
            assert_eq!(s.parent_span_id, vec![1; 8]);
            assert_eq!(s.flags, FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE);
            assert_eq!((s.name.as_str(), s.kind), ("POST r1", SpanKind::Server as i32));
            assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 250_000);
            assert_eq!(s.status.as_ref().unwrap().code, StatusCode::Error as i32);
            assert_eq!(attr(s, "http.request.method"), text("POST"));
            assert_eq!(attr(s, "url.path"), text(&format!("/long/{}", "p".repeat(200))));
            assert_eq!(attr(s, "url.scheme"), text("https"));
            assert_eq!(attr(s, "server.address"), text("api.test"));
            assert_eq!(attr(s, "client.address"), text("10.1.2.3"));
            assert_eq!(attr(s, "http.response.status_code"), Some(Value::IntValue(502)));
            assert_eq!(attr(s, "portico.route"), text("r1"));
            assert_eq!(attr(s, "portico.upstream"), text("backend"));
            assert_eq!(attr(s, "portico.upstream.address"), text("127.0.0.1:9000"));
            assert_eq!(attr(s, "portico.upstream.status_code"), Some(Value::IntValue(503)));

            let s = &ss.spans[1];
            assert!(s.parent_span_id.is_empty());
            assert_eq!(s.flags, FLAG_SAMPLED | FLAG_HAS_IS_REMOTE);
            assert_eq!(s.name, "POST");
            assert_eq!(s.status.as_ref().unwrap().code, StatusCode::Unset as i32);
            assert_eq!(attr(s, "portico.route"), None);
            assert_eq!(attr(s, "http.response.status_code"), Some(Value::IntValue(404)));
        }
    }

    #[test]
    fn a_span_longer_than_16k_is_framed_right() {
        let path = format!("/{}", "x".repeat(20_000));
        let mut e = SpanWriter::default();
        e.push(&SpanData {
            texts: Copied::new([None, Some(&path)]),
            ..span(Some("r"), None, 200)
        });
        e.push(&span(Some("r"), None, 200));
        let req = decode(e);
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(attr(&spans[0], "url.path"), text(&path));
        assert_eq!(attr(&spans[0], "server.address"), None);
        assert_eq!(attr(&spans[1], "server.address"), text("api.test"));
        assert_eq!(spans[1].name, "POST r");
    }

    #[test]
    fn integers_of_any_size() {
        use opentelemetry_proto::tonic::common::v1::KeyValue;
        for v in [0, 7, 127, 128, 200, 16_383, 16_384, 1 << 40, -1] {
            let mut b = Vec::new();
            int_attribute(&mut b, key(9, LEN), "n", v);
            // Skip the field key and length: the rest is the KeyValue.
            let kv = KeyValue::decode(&b[2..]).unwrap();
            assert_eq!(
                (kv.key.as_str(), kv.value.unwrap().value),
                ("n", Some(Value::IntValue(v)))
            );
        }
    }

    #[test]
    fn client_addresses_of_both_families() {
        let mut e = SpanWriter::default();
        for ip in ["10.1.2.3", "::1", "10.1.2.4"] {
            e.push(&SpanData {
                client_ip: ip.parse().unwrap(),
                ..span(None, None, 200)
            });
        }
        let req = decode(e);
        let ips: Vec<_> = req.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| attr(s, "client.address"))
            .collect();
        assert_eq!(ips, vec![text("10.1.2.3"), text("::1"), text("10.1.2.4")]);
    }
}
