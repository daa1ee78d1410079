//! The upstream call: pick a node, take a pooled connection or open one, send, wait for the
//! response head within `timeout.read`, and try another node when that is safe.
//!
//! Safe means: the request was never sent (connect failure, or a pooled connection that the
//! upstream closed just before we used it), or it is idempotent, has no body, and the node
//! answered 502/503/504.

use crate::error::ProxyError;
use crate::forward;
use crate::grpc;
use crate::pool::{ConnectError, Key, Pool};
use crate::timed_io;
use crate::upgrade;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, request};
use http_body::Body as _;
use hyper::upgrade::OnUpgrade;
use portico_config::Scheme;
use portico_plugins::{Body, Ctx};
use portico_upstream::{InFlight, Node, Upstream, now_us};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the access log needs to know of the upstream side.
#[derive(Debug, Default)]
pub struct UpstreamInfo {
    pub addr: Option<Arc<str>>,
    pub status: Option<u16>,
    pub duration: Option<Duration>,
}

impl From<ConnectError> for ProxyError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Refused => ProxyError::UpstreamFailed,
            ConnectError::Timeout => ProxyError::UpstreamTimeout,
            ConnectError::Tls => ProxyError::UpstreamFailed,
        }
    }
}

pub async fn call(
    pool: &Pool,
    up: &Upstream,
    cx: &Ctx,
    client_ip: &HeaderValue,
    mut parts: request::Parts,
    body: Body,
    info: &mut UpstreamInfo,
) -> Result<Response<Body>, ProxyError> {
    // gRPC upstreams are spoken to in HTTP/2, which has no `Upgrade`.
    let h2 = matches!(up.scheme, Scheme::Grpc | Scheme::Grpcs);
    let upgrade = !h2 && parts.version == Version::HTTP_11 && forward::is_upgrade(&parts.headers);
    let client_upgrade = if upgrade {
        parts.extensions.remove::<OnUpgrade>()
    } else {
        None
    };
    // The consistent-hash key is read from the request as the client sent it.
    let hash_key: Vec<u8> = if up.hashes() {
        let consumer = cx.consumer.as_deref().map(|c| &*c.username);
        let key = up.hash_on.key(&parts, client_ip.as_bytes(), consumer);
        key.map_or_else(|| client_ip.as_bytes().to_vec(), |k| k.into_owned())
    } else {
        Vec::new()
    };
    forward::request_headers(&mut parts.headers, cx, client_ip, upgrade);
    let uri = origin_form(&parts.uri);
    let retry_on_status = !upgrade && idempotent(&parts.method) && body.is_end_stream();
    let attempts = up.retries.saturating_add(1);

    let start = Instant::now();
    let mut body = Some(body);
    let mut tried = Tried::default();
    let mut last_err = ProxyError::NoHealthyNode;
    for attempt in 1..=attempts {
        let Some(idx) = up.pick(&hash_key, tried.as_slice()) else {
            break;
        };
        tried.push(idx);
        let node = &up.nodes[idx];
        // In flight from here until the response head (least_connections and ewma read it).
        let _in_flight = InFlight::new(&node.state);
        let sent_at = Instant::now();
        info.addr = Some(node.address.clone());
        forward::upstream_host(&mut parts.headers, cx, up, node);
        let may_retry = attempt < attempts && tried.len < up.nodes.len();

        let key = Key::new(node, up.read_timeout, up.send_timeout, h2);
        let mut pooled = pool.checkout(key);
        // A replayable request keeps a copy of its headers for a replay: on the next node after
        // a 502-504, or on a new connection when a pooled one turns out closed by the upstream
        // (the race every keep-alive pool has; nginx replays in that case too).
        let keep = retry_on_status && (may_retry || pooled.is_some());
        let mut req = build(
            &mut parts,
            &uri,
            body.take().unwrap_or_default(),
            keep,
            h2.then_some(node),
        );
        let resp = loop {
            let fresh = pooled.is_none();
            let mut sender = match pooled.take() {
                Some(s) => s,
                None => match pool.connect(key, node, up.connect_timeout).await {
                    Ok(s) => s,
                    Err(e) => {
                        up.report(idx, None);
                        // Nothing was sent: hand the request back for the next node.
                        let (p, b) = req.into_parts();
                        parts.headers = p.headers;
                        body = Some(b);
                        last_err = e.into();
                        break None;
                    }
                },
            };
            // The socket's own timers bound the wait (see timed_io): no per-request timer here,
            // but on a shared HTTP/2 connection, where other streams' bytes keep the socket
            // busy, a stream waits for its response head at most `timeout.read`.
            let sent = if h2 {
                match tokio::time::timeout(up.read_timeout, sender.send(req)).await {
                    Ok(sent) => sent,
                    Err(_) => {
                        tracing::debug!(target: "portico::proxy", node = %node.address, "upstream stream timed out");
                        up.report(idx, None);
                        info.duration = Some(start.elapsed());
                        return Err(ProxyError::UpstreamTimeout);
                    }
                }
            } else {
                sender.send(req).await
            };
            match sent {
                Ok(resp) => {
                    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                        pool.put(key, sender);
                    }
                    break Some(resp);
                }
                Err(mut e) => {
                    let timed_out = timed_io::is_timeout(e.error());
                    match e.take_message() {
                        // A pooled connection closed under us before the request left: open a new one.
                        Some(unsent) if !fresh => req = unsent,
                        _ if e.error().is_user() => return Err(ProxyError::Malformed("invalid request body")),
                        // A pooled connection the upstream had just closed: replay on a new one.
                        None if !fresh && !timed_out && retry_on_status => {
                            req = build(&mut parts, &uri, Body::Empty, may_retry, h2.then_some(node));
                        }
                        _ => {
                            tracing::debug!(target: "portico::proxy", node = %node.address, error = %e.error(), "upstream failed");
                            up.report(idx, None);
                            let err = if timed_out {
                                ProxyError::UpstreamTimeout
                            } else {
                                ProxyError::UpstreamFailed
                            };
                            if retry_on_status && may_retry {
                                // Idempotent, no body, no response yet: another node may answer
                                // (as nginx's default `proxy_next_upstream error timeout`).
                                last_err = err;
                                body = Some(Body::Empty);
                                break None;
                            }
                            return Err(err);
                        }
                    }
                }
            }
        };
        let Some(resp) = resp else { continue };

        let status = resp.status();
        up.report(idx, Some(status.as_u16()));
        node.state.observe_latency(sent_at.elapsed(), now_us());
        info.status = Some(status.as_u16());
        info.duration = Some(start.elapsed());
        if retry_on_status && may_retry && matches!(status.as_u16(), 502..=504) {
            last_err = ProxyError::UpstreamFailed;
            body = Some(Body::Empty);
            continue;
        }
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(upgrade::tunnel(client_upgrade, resp));
        }
        let (mut rparts, rbody) = resp.into_parts();
        forward::response_headers(&mut rparts.headers, false);
        return Ok(Response::from_parts(rparts, Body::Incoming(rbody)));
    }
    info.duration = Some(start.elapsed());
    Err(last_err)
}

/// Nodes already tried for one request, on the stack for the usual few attempts.
#[derive(Default)]
struct Tried {
    inline: [usize; 4],
    len: usize,
    more: Vec<usize>,
}

impl Tried {
    fn push(&mut self, idx: usize) {
        if self.len < self.inline.len() {
            self.inline[self.len] = idx;
        } else {
            if self.more.is_empty() {
                self.more.extend_from_slice(&self.inline);
            }
            self.more.push(idx);
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[usize] {
        if self.len <= self.inline.len() {
            &self.inline[..self.len]
        } else {
            &self.more
        }
    }
}

/// The upstream request for one attempt; the headers are moved out of `parts` unless `keep`.
/// `h2_node`: the node of a gRPC upstream, whose request is made an HTTP/2 one.
fn build(parts: &mut request::Parts, uri: &Uri, body: Body, keep: bool, h2_node: Option<&Node>) -> Request<Body> {
    let headers = if keep {
        parts.headers.clone()
    } else {
        std::mem::take(&mut parts.headers)
    };
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers;
    if let Some(node) = h2_node {
        grpc::prepare(&mut req, node.tls.is_some(), &node.address);
    }
    req
}

/// The path and query only: an upstream gets origin-form even if the client sent absolute-form.
fn origin_form(uri: &Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri.clone();
    }
    let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
    pq.parse().unwrap_or_else(|_| Uri::from_static("/"))
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}
