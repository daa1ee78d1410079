//! The admin API's paths: one request in, one response out, whatever the input.

use crate::auth::key_matches;
use crate::edit::{self, EditError, Proposal};
use crate::healthz::Health;
use crate::kind::Kind;
use crate::reply::{self, Body};
use crate::writer::{ConfigWriter, WriteError};
use crate::{mask, node_health};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use portico_config::{Config, StoreKind};
use portico_proxy::Snapshot;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The largest request body the admin API reads: 1 MiB.
pub const MAX_BODY: usize = 1 << 20;
/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = portico_proxy::metrics::CONTENT_TYPE;

/// The live snapshot, read per request: answers follow reloads.
pub type Live = Arc<dyn Fn() -> Arc<Snapshot> + Send + Sync>;
/// Renders the Prometheus exposition text.
pub type Metrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the admin API answers from.
pub struct Admin {
    /// The key the gateway started with; a reload that changes `gateway.admin.api_key`
    /// takes over from it (the address needs a restart).
    started_key: String,
    live: Live,
    writer: Arc<dyn ConfigWriter>,
    health: Health,
    metrics: Metrics,
    store: StoreKind,
}

impl Admin {
    /// An admin API reading `live`, writing through `writer`; `/metrics` empty and no
    /// `/healthz` detail until set with [`Admin::metrics`] and [`Admin::health`].
    pub fn new(api_key: &str, store: StoreKind, live: Live, writer: Arc<dyn ConfigWriter>) -> Self {
        Self {
            started_key: api_key.to_owned(),
            live,
            writer,
            health: Health::default(),
            metrics: Arc::new(String::new),
            store,
        }
    }

    /// Where `/healthz` detail comes from.
    pub fn health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// What `/metrics` renders.
    pub fn metrics(mut self, render: Metrics) -> Self {
        self.metrics = render;
        self
    }
}

/// Answers one request. Never panics on any input; every error is JSON.
pub async fn handle<B>(admin: &Admin, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let request_id = request_id(req.headers());
    let mut resp = route(admin, req, &request_id).await;
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn route<B>(admin: &Admin, req: Request<B>, rid: &str) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Some(segments) = segments(req.uri().path()) else {
        return reply::error(StatusCode::NOT_FOUND, "not found", rid);
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    match segs.as_slice() {
        ["healthz"] if read => healthz(admin),
        ["metrics"] if read => reply::text(METRICS_CONTENT_TYPE, (admin.metrics)()),
        ["healthz"] | ["metrics"] => reply::method_not_allowed("GET, HEAD", rid),
        ["admin", rest @ ..] => {
            let snapshot = (admin.live)();
            let key = snapshot
                .config
                .gateway
                .admin
                .as_ref()
                .map_or(admin.started_key.as_str(), |a| a.api_key.as_str());
            let sent = req.headers().get("x-api-key").map(|v| v.as_bytes());
            if !key_matches(sent, key) {
                tracing::info!(target: "portico::admin", method = %method, path = %req.uri().path(), "refused: missing or wrong X-API-Key");
                return reply::error(StatusCode::UNAUTHORIZED, "missing or wrong X-API-Key", rid);
            }
            let config = &snapshot.config;
            match rest {
                ["config"] if read => whole_config(&snapshot, rid),
                ["config"] => reply::method_not_allowed("GET, HEAD", rid),
                [section] => match Kind::from_section(section) {
                    Some(kind) if read => list(config, kind, &snapshot.hash, rid),
                    Some(_) => reply::method_not_allowed("GET, HEAD", rid),
                    None => reply::error(StatusCode::NOT_FOUND, "not found", rid),
                },
                [section, id] => match Kind::from_section(section) {
                    Some(kind) if read => one(config, kind, id, rid),
                    Some(kind) if method == Method::PUT || method == Method::DELETE => {
                        write(admin, req, snapshot.clone(), kind, id, rid).await
                    }
                    Some(_) => reply::method_not_allowed("GET, HEAD, PUT, DELETE", rid),
                    None => reply::error(StatusCode::NOT_FOUND, "not found", rid),
                },
                ["upstreams", id, "health"] if read => match config.upstreams.iter().find(|u| u.id == *id) {
                    Some(u) => reply::json(StatusCode::OK, &node_health::report(u)),
                    None => reply::error(StatusCode::NOT_FOUND, &format!("no upstream {id:?}"), rid),
                },
                ["upstreams", _, "health"] => reply::method_not_allowed("GET, HEAD", rid),
                _ => reply::error(StatusCode::NOT_FOUND, "not found", rid),
            }
        }
        _ => reply::error(StatusCode::NOT_FOUND, "not found", rid),
    }
}

fn healthz(admin: &Admin) -> Response<Body> {
    let snapshot = (admin.live)();
    let c = &snapshot.config;
    reply::json(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "config": {
                "hash": snapshot.hash,
                "store": store_name(admin.store),
                "routes": c.routes.len(),
                "upstreams": c.upstreams.len(),
                "consumers": c.consumers.len(),
            },
            "detail": admin.health.detail(),
        }),
    )
}

fn store_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::File => "file",
        StoreKind::Etcd => "etcd",
    }
}

/// The whole config as JSON with every secret masked; `None` (logged) when it cannot be shown.
fn masked(config: &Config) -> Option<Value> {
    match serde_json::to_value(config) {
        Ok(mut v) => {
            mask::config(&mut v);
            Some(v)
        }
        Err(e) => {
            tracing::error!(target: "portico::admin", error = %e, "cannot show the config as JSON");
            None
        }
    }
}

fn unshowable(rid: &str) -> Response<Body> {
    reply::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the config cannot be shown as JSON",
        rid,
    )
}

fn whole_config(snapshot: &Snapshot, rid: &str) -> Response<Body> {
    let Some(v) = masked(&snapshot.config) else {
        return unshowable(rid);
    };
    reply::json(StatusCode::OK, &json!({ "hash": snapshot.hash, "config": v }))
}

fn list(config: &Config, kind: Kind, hash: &str, rid: &str) -> Response<Body> {
    let Some(mut v) = masked(config) else {
        return unshowable(rid);
    };
    let items = v.get_mut(kind.section()).map(Value::take).unwrap_or(json!([]));
    let count = items.as_array().map_or(0, Vec::len);
    reply::json(
        StatusCode::OK,
        &json!({ kind.section(): items, "count": count, "hash": hash }),
    )
}

fn one(config: &Config, kind: Kind, id: &str, rid: &str) -> Response<Body> {
    let not_found = || reply::error(StatusCode::NOT_FOUND, &format!("no {} {id:?}", kind.singular()), rid);
    let Some(i) = kind.position(config, id) else {
        return not_found();
    };
    let Some(mut v) = masked(config) else {
        return unshowable(rid);
    };
    match v.get_mut(kind.section()).and_then(|s| s.get_mut(i)) {
        Some(item) => reply::json(StatusCode::OK, item),
        None => not_found(),
    }
}

/// PUT or DELETE: refused at once by a read-only store; else the body is read, the resulting
/// config validated and compiled (on the blocking pool: compiling resolves node names), and
/// only then handed to the store.
async fn write<B>(
    admin: &Admin,
    req: Request<B>,
    live: Arc<Snapshot>,
    kind: Kind,
    id: &str,
    rid: &str,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some(why) = admin.writer.read_only() {
        return reply::error(StatusCode::CONFLICT, &why, rid);
    }
    let expected = match if_match(req.headers()) {
        Ok(e) => e,
        Err(msg) => return reply::error(StatusCode::BAD_REQUEST, msg, rid),
    };
    let is_put = req.method() == Method::PUT;
    let body = if is_put {
        match read_json(req.into_body()).await {
            Ok(v) => Some(v),
            Err((status, msg)) => return reply::error(status, &msg, rid),
        }
    } else {
        None
    };
    let id_owned = id.to_owned();
    let checked = tokio::task::spawn_blocking(move || match body {
        Some(body) => edit::put(&live, kind, &id_owned, body),
        None => edit::delete(&live, kind, &id_owned),
    })
    .await;
    let proposal: Proposal = match checked {
        Ok(Ok(p)) => p,
        Ok(Err(EditError::Invalid(errors))) => return reply::invalid(&errors, rid),
        Ok(Err(EditError::NotFound(msg))) => return reply::error(StatusCode::NOT_FOUND, &msg, rid),
        Err(e) => {
            tracing::error!(target: "portico::admin", error = %e, "validating a write failed");
            return reply::error(StatusCode::INTERNAL_SERVER_ERROR, "validation failed", rid);
        }
    };
    let stored = match &proposal.item {
        Some(item) => admin.writer.put(kind, id, item, expected).await,
        None => admin.writer.delete(kind, id, expected).await,
    };
    match stored {
        Ok(w) => {
            tracing::info!(target: "portico::admin", kind = %kind, id, put = is_put, revision = ?w.revision, "config write stored");
            let status = if w.created || (is_put && proposal.created) {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let item = proposal.item.map_or(Value::Null, |item| {
                // Shown as a read would show it, in its section: its secrets masked.
                let mut wrapper = json!({ kind.section(): [item] });
                mask::config(&mut wrapper);
                wrapper[kind.section()][0].take()
            });
            reply::json(
                status,
                &json!({ "kind": kind.section(), "id": id, "revision": w.revision, "item": item }),
            )
        }
        Err(WriteError::Invalid(errors)) => reply::invalid(&errors, rid),
        Err(e) => reply::error(e.status(), &e.to_string(), rid),
    }
}

/// `If-Match: 42` (or `"42"`): the store revision a write is based on.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let Some(v) = headers.get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .map(|s| s.trim().trim_matches('"'))
        .and_then(|s| s.parse::<u64>().ok())
        .map(Some)
        .ok_or("If-Match must be a store revision (a decimal number)")
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes within [`BODY_TIMEOUT`].
async fn read_json<B>(body: B) -> Result<Value, (StatusCode, String)>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await;
    let bytes = match collected {
        Err(_) => return Err((StatusCode::REQUEST_TIMEOUT, "the body took too long".into())),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {MAX_BODY} bytes"),
            ));
        }
        Ok(Err(_)) => return Err((StatusCode::BAD_REQUEST, "cannot read the body".into())),
        Ok(Ok(c)) => c.to_bytes(),
    };
    serde_json::from_slice(&bytes).map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))
}

/// The request's own `X-Request-Id` when it is a sane one, else a new UUID.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The path's segments, percent-decoded; a trailing `/` is ignored. `None` when a segment
/// is not UTF-8 once decoded, or is empty.
fn segments(path: &str) -> Option<Vec<String>> {
    let trimmed = path
        .strip_prefix('/')?
        .strip_suffix('/')
        .unwrap_or(path.strip_prefix('/')?);
    trimmed
        .split('/')
        .map(|s| {
            let decoded = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
            (!decoded.is_empty()).then(|| decoded.into_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests;
