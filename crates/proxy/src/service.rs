//! The request path: framing checks, routing, the route's plugins, the upstream call, the
//! response hooks, the request id, and the access-log record — in that order.

use crate::access_log::Record;
use crate::conn_watch::{Activity, Busy};
use crate::dispatch::{self, UpstreamInfo};
use crate::error::ProxyError;
use crate::forward::{Forwarded, X_REQUEST_ID};
use crate::logged_body::{LoggedBody, Pending};
use crate::metrics::{self, RouteMetrics, Sample};
use crate::worker::Worker;
use crate::{framing, path};
use http::{HeaderValue, Request, Response, Uri};
use http_body::Body as _;
use hyper::body::Incoming;
use portico_plugins::{Body, Ctx, ctx::strip_port, reply};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The downstream peer, as known once per connection.
pub struct Peer {
    pub ip: IpAddr,
    /// `ip` as a header value for `X-Forwarded-For`, formatted once.
    pub ip_header: HeaderValue,
    /// `http` or `https`: how the client reached the gateway.
    pub scheme: &'static str,
    /// Whether the connection has a request in progress (for the idle timeout).
    pub activity: Arc<Activity>,
}

impl Peer {
    pub fn new(ip: IpAddr, scheme: &'static str) -> Self {
        let ip_header = HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"));
        Self {
            ip,
            ip_header,
            scheme,
            activity: Arc::default(),
        }
    }
}

/// A request body as the listener received it.
pub enum Inbound {
    /// The head said there is none.
    Empty,
    /// A small body read whole with its head (by the gateway's own HTTP/1 reader).
    Full(bytes::Bytes),
    /// Read by hyper (HTTP/2, or HTTP/1 with a body).
    Hyper(Incoming),
}

impl Inbound {
    fn exact_len(&self) -> u64 {
        match self {
            Inbound::Empty => 0,
            Inbound::Full(b) => b.len() as u64,
            Inbound::Hyper(b) => b.size_hint().exact().unwrap_or(0),
        }
    }
}

/// One request, from its head to the response the client receives.
pub async fn handle(w: &Worker, req: Request<Inbound>, peer: &Peer) -> Response<LoggedBody> {
    // The connection is busy until the response body is done (or dropped with this future).
    let busy = Busy::new(&peer.activity);
    let client_ip = peer.ip;
    let start = Instant::now();
    let method = metrics::method_class(req.method());
    let scan = framing::scan(&req);
    let request_id = request_id(scan.request_id);
    // HTTP/2 requests carry the host in `:authority`, and may have no Host header.
    let host = match scan.host {
        Some(h) => Some(h.clone()),
        None => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    // A gRPC client gets the gateway's own errors as gRPC statuses (see `finish`).
    let (grpc, verdict) = (scan.grpc, scan.verdict);
    let mut span = (w.shared.tracer.as_ref()).map(|t| {
        t.start_span(
            req.headers(),
            host.as_ref(),
            req.method(),
            req.uri(),
            peer.scheme,
            client_ip,
        )
    });
    let mut pending = w.shared.log.as_ref().map(|log| {
        Box::new(Pending {
            log: log.clone(),
            record: Record::new(
                SystemTime::now(),
                &request_id,
                client_ip,
                req.method(),
                host.as_ref(),
                req.uri(),
            ),
        })
    });

    if let Err(why) = verdict {
        return finish(
            ProxyError::Malformed(why).into_response(&request_id),
            &request_id,
            pending,
            Sample::new(RouteMetrics::unrouted().clone(), method, start, span),
            grpc,
            busy,
        );
    }

    let snapshot = w.snapshot();
    let normalized = path::normalize(req.uri().path());
    let route_host = req
        .uri()
        .host()
        .or_else(|| host.as_ref().and_then(|h| h.to_str().ok()).map(strip_port));
    let Some(route) = snapshot
        .router
        .find(route_host, req.method(), &normalized, req.headers())
    else {
        let sample = Sample::new(RouteMetrics::unrouted().clone(), method, start, span);
        return finish(
            ProxyError::NoRoute.into_response(&request_id),
            &request_id,
            pending,
            sample,
            grpc,
            busy,
        );
    };
    let new_uri = match normalized {
        Cow::Borrowed(_) => None,
        Cow::Owned(p) => with_path(req.uri(), &p),
    };

    let mut cx = Ctx {
        scheme: peer.scheme,
        host,
        ..Ctx::new(request_id.clone(), client_ip, route.id.clone())
    };
    let (mut parts, body) = req.into_parts();
    if let Some(uri) = new_uri {
        parts.uri = uri;
    }
    let mut info = UpstreamInfo::default();
    let resp = match route.chain.run_request(&mut cx, &mut parts).await {
        Some(answer) => {
            route.metrics.answered_by(answer.plugin, answer.response.status());
            answer.response
        }
        // traffic-split may have chosen another upstream than the route's.
        None => match cx.upstream.as_ref().or(route.upstream.as_ref()) {
            Some(up) => {
                route.metrics.received(body.exact_len());
                let fwd = Forwarded {
                    client_ip: &peer.ip_header,
                    traceparent: span.as_ref().map(|s| s.traceparent()),
                };
                // request-size-limit on a body of unknown length: count it as it streams.
                let (body, limit) = match (body, cx.body_limit) {
                    (Inbound::Empty, _) => (Body::Empty, None),
                    (Inbound::Full(b), _) => (Body::Full(Some(b)), None),
                    (Inbound::Hyper(body), Some(max)) if !body.is_end_stream() => {
                        let (b, flag) = Body::limited(body, max);
                        (b, Some(flag))
                    }
                    (Inbound::Hyper(body), _) => (Body::Incoming(body), None),
                };
                let answer = dispatch::call(&w.pool, up, &cx, fwd, &mut parts, body, &mut info).await;
                crate::header_maps::give(std::mem::take(&mut parts.headers));
                answer.unwrap_or_else(|e| match limit {
                    Some(flag) if flag.exceeded() => reply::too_large(&request_id),
                    _ => e.into_response(&request_id),
                })
            }
            None => ProxyError::NoUpstream.into_response(&request_id),
        },
    };

    if let Some(d) = info.duration {
        route.metrics.upstream_took(d);
    }
    let (mut rparts, rbody) = resp.into_parts();
    route.chain.run_response(&mut cx, &mut rparts);
    if let Some(s) = span.as_mut() {
        let upstream = cx.upstream.as_ref().or(route.upstream.as_ref()).map(|u| &u.id);
        s.set_route(&route.id, upstream, info.addr.as_ref(), info.status);
    }
    if let Some(p) = pending.as_mut() {
        let r = &mut p.record;
        r.route_id = Some(route.id.clone());
        r.consumer = cx.consumer.as_ref().map(|c| c.username.clone());
        r.upstream = cx.upstream.as_ref().or(route.upstream.as_ref()).map(|u| u.id.clone());
        r.upstream_addr = info.addr;
        r.upstream_status = info.status;
        r.upstream_duration_ms = info.duration.map(|d| d.as_secs_f64() * 1000.0);
    }
    let sample = Sample::new(route.metrics.clone(), method, start, span);
    let mut resp = finish(
        Response::from_parts(rparts, rbody),
        &request_id,
        pending,
        sample,
        grpc,
        busy,
    );
    // limit-conn's places are held until the body is done (or dropped with it).
    resp.body_mut().hold(std::mem::take(&mut cx.conn_slots));
    resp
}

/// Every response carries the request id; its record and metrics sample learn the final
/// status. The gateway's own errors take their final shape here, last, so that no later step
/// reshapes them: a gRPC status for a gRPC request, else the spec's JSON.
fn finish(
    mut resp: Response<Body>,
    request_id: &HeaderValue,
    mut pending: Option<Box<Pending>>,
    mut sample: Sample,
    grpc: bool,
    busy: Busy,
) -> Response<LoggedBody> {
    if grpc {
        resp = reply::for_grpc(resp);
    }
    resp.headers_mut().insert(X_REQUEST_ID, request_id.clone());
    if let Some(p) = pending.as_mut() {
        p.record.status = resp.status().as_u16();
        if grpc {
            p.record.grpc_status = crate::grpc::status(resp.headers());
        }
    }
    sample.status = resp.status();
    resp.map(|b| LoggedBody::new(b, pending, sample, busy))
}

/// The client's `X-Request-Id` when it is a sane token, else a new UUID v4.
fn request_id(sent: Option<&HeaderValue>) -> HeaderValue {
    if let Some(v) = sent {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-"))
}

/// `uri` with its path replaced and its query kept.
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    pq.parse().ok()
}
