//! The upstream call: pick a node, take a pooled connection or open one, send, wait for the
//! response head within `timeout.read`, and try another node when that is safe.
//!
//! Safe means: the request was never sent (connect failure, or a pooled connection that the
//! upstream closed just before we used it), or it is idempotent, has no body, and the node
//! answered 502/503/504.

use crate::error::ProxyError;
use crate::forward::{self, Forwarded, Outgoing};
use crate::grpc;
use crate::h1::{self, Answer, SendError};
use crate::pool::{ConnectError, Key, Pool};
use crate::upgrade;
use http::{Method, Request, Response, Uri, Version, request};
use http_body::Body as _;
use hyper::client::conn::http2;
use hyper::upgrade::OnUpgrade;
use portico_config::Scheme;
use portico_plugins::{Body, Ctx};
use portico_upstream::{InFlight, Node, Upstream, us_at};
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
    fwd: Forwarded<'_>,
    parts: &mut request::Parts,
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
        let key = up.hash_on.key(parts, fwd.client_ip.as_bytes(), consumer);
        key.map_or_else(|| fwd.client_ip.as_bytes().to_vec(), |k| k.into_owned())
    } else {
        Vec::new()
    };
    let uri = origin_form(&parts.uri);
    let retry_on_status = !upgrade && idempotent(&parts.method) && body.is_end_stream();
    let attempts = up.retries.saturating_add(1);

    let mut outgoing = Outgoing::new(&parts.headers, cx, &fwd, upgrade);
    let start = Instant::now();
    let mut body = Some(body);
    let mut tried = Tried::default();
    let mut last_err = ProxyError::NoHealthyNode;
    for attempt in 1..=attempts {
        // One clock read serves the first attempt's pick, send time and the total.
        let sent_at = if attempt == 1 { start } else { Instant::now() };
        let Some(idx) = up.pick_at(&hash_key, tried.as_slice(), us_at(sent_at)) else {
            break;
        };
        tried.push(idx);
        let node = &up.nodes[idx];
        // In flight from here until the response head (least_connections and ewma read it).
        let _in_flight = InFlight::new(&node.state);
        info.addr = Some(node.address.clone());
        outgoing.set_host(cx, up, node);
        let may_retry = attempt < attempts && tried.len < up.nodes.len();

        let key = Key::new(node, up.read_timeout, up.send_timeout, h2);
        let mut pooled = if h2 {
            pool.checkout_h2(key).map(Link::H2)
        } else {
            h1::checkout(key).map(Link::H1)
        };
        let answer = loop {
            let fresh = pooled.is_none();
            let link = match pooled.take() {
                Some(l) => l,
                None => match Link::connect(pool, key, node, up.connect_timeout).await {
                    Ok(l) => l,
                    Err(e) => {
                        up.report(idx, None);
                        // Nothing was sent: the body stays for the next node.
                        last_err = e.into();
                        break None;
                    }
                },
            };
            // The socket's own timers bound the wait (see timed_io): no per-request timer here,
            // but on a shared HTTP/2 connection, where other streams' bytes keep the socket
            // busy, a stream waits for its response head at most `timeout.read`.
            let req_body = body.take().unwrap_or_default();
            let sent = match link {
                Link::H1(conn) => (conn.send(&parts.method, &uri, &parts.headers, Some(&outgoing), req_body)).await,
                Link::H2(sender) => send_h2(sender, parts, &outgoing, &uri, req_body, node, up.read_timeout).await,
            };
            match sent {
                Ok(answer) => break Some(answer),
                Err(SendError::Body(_)) => return Err(ProxyError::Malformed("invalid request body")),
                // The shared HTTP/2 connection closed before the request left: open a new one.
                Err(SendError::Unsent(b)) if !fresh => body = Some(b),
                // A pooled connection the upstream had just closed (the race every keep-alive
                // pool has): replay on a new connection when the request can be replayed, as
                // nginx does.
                Err(SendError::Closed) if !fresh && retry_on_status => body = Some(Body::Empty),
                Err(e) => {
                    tracing::debug!(target: "portico::proxy", node = %node.address, error = %e, "upstream failed");
                    up.report(idx, None);
                    let err = if e.is_timeout() {
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
        };
        let Some(answer) = answer else { continue };
        let status = match &answer {
            Answer::Response(r) => r.status(),
            Answer::Upgrade(p, _) => p.status,
        };
        up.report(idx, Some(status.as_u16()));
        let answered = Instant::now();
        node.state.observe_latency(answered - sent_at, us_at(answered));
        info.status = Some(status.as_u16());
        info.duration = Some(answered - start);
        if retry_on_status && may_retry && matches!(status.as_u16(), 502..=504) {
            last_err = ProxyError::UpstreamFailed;
            body = Some(Body::Empty);
            continue;
        }
        let resp = match answer {
            Answer::Upgrade(p, conn) => return Ok(upgrade::tunnel(client_upgrade, p, conn)),
            Answer::Response(r) => r,
        };
        // An HTTP/1.1 response head comes without its hop-by-hop headers (see h1::head).
        let (mut rparts, rbody) = resp.into_parts();
        if h2 {
            forward::response_headers(&mut rparts.headers);
        }
        return Ok(Response::from_parts(rparts, rbody));
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

/// A connection to send one request on.
enum Link {
    /// Exclusively this request's until its response body is read.
    H1(Box<h1::Conn>),
    /// A handle on the node's shared HTTP/2 connection (gRPC upstreams).
    H2(http2::SendRequest<Body>),
}

impl Link {
    async fn connect(pool: &Pool, key: Key, node: &Node, timeout: Duration) -> Result<Link, ConnectError> {
        if key.h2 {
            pool.connect_h2(key, node, timeout).await.map(Link::H2)
        } else {
            h1::Conn::connect(key, node, timeout).await.map(Link::H1)
        }
    }
}

/// One request as an HTTP/2 stream on the node's shared connection.
async fn send_h2(
    mut sender: http2::SendRequest<Body>,
    parts: &request::Parts,
    outgoing: &Outgoing<'_>,
    uri: &Uri,
    body: Body,
    node: &Node,
    read_timeout: Duration,
) -> Result<Answer, SendError> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = parts.headers.clone();
    outgoing.apply(req.headers_mut());
    grpc::prepare(&mut req, node.tls.is_some(), &node.address);
    match tokio::time::timeout(read_timeout, sender.try_send_request(req)).await {
        Err(_) => Err(SendError::Io(std::io::ErrorKind::TimedOut.into())),
        Ok(Ok(resp)) => Ok(Answer::Response(resp.map(Body::Incoming))),
        Ok(Err(mut e)) => match e.take_message() {
            Some(unsent) => Err(SendError::Unsent(unsent.into_body())),
            None if e.error().is_user() => Err(SendError::Body(e.into_error().into())),
            None => Err(SendError::Io(std::io::Error::other(e.into_error()))),
        },
    }
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
