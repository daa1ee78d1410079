//! Upstream test servers: in-process hyper 1.x HTTP/1.1 servers on `127.0.0.1:0` that answer
//! with a JSON echo of what they received, and can be told to answer with a fixed status,
//! extra headers, a large body, a delay, or to hold every request until the test releases it.
//! A request carrying `Upgrade: websocket` is answered `101` and its bytes are echoed back.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A running upstream server. Stopped (listener closed, connections dropped) on [`Upstream::stop`]
/// or on drop.
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    task: Option<JoinHandle<()>>,
}

/// Options for an [`Upstream`] before it starts.
pub struct UpstreamBuilder {
    name: String,
    status: u16,
    headers: Vec<(String, String)>,
    body_size: Option<usize>,
    delay: Option<Duration>,
    hold: bool,
}

struct State {
    name: String,
    status: AtomicU16,
    headers: Vec<(String, String)>,
    body_size: Option<usize>,
    delay: Option<Duration>,
    hold: bool,
    released: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    kick: watch::Sender<u64>,
    heads: AtomicUsize,
    connections: AtomicUsize,
    records: Mutex<Vec<Value>>,
}

// === impl Upstream ===

impl Upstream {
    /// An echo server named `name` (the name is in every echo and in the `X-Upstream` header).
    pub async fn start(name: &str) -> Upstream {
        Self::builder(name).start().await
    }

    pub fn builder(name: &str) -> UpstreamBuilder {
        UpstreamBuilder {
            name: name.to_owned(),
            status: 200,
            headers: Vec::new(),
            body_size: None,
            delay: None,
            hold: false,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, as a config's node address.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Request heads received so far (counted before the body is read).
    pub fn requests(&self) -> usize {
        self.state.heads.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Requests whose head and whole body were received, oldest first.
    pub fn received(&self) -> Vec<Echo> {
        self.state.records.lock().unwrap().iter().cloned().map(Echo).collect()
    }

    /// Number of requests received completely.
    pub fn completed(&self) -> usize {
        self.state.records.lock().unwrap().len()
    }

    /// Lets every held request (see [`UpstreamBuilder::hold`]) answer, now and from now on.
    pub fn release(&self) {
        self.state.released.send_replace(true);
    }

    /// Answers with `status` from now on (a node that starts failing, or recovers).
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::Relaxed);
    }

    /// Drops every open connection (idle or not) but keeps listening, as a server restarting
    /// its workers or closing idle keep-alive connections does.
    pub fn drop_connections(&self) {
        self.state.kick.send_modify(|n| *n += 1);
    }

    /// Closes the listener and drops every open connection; returns once the port is closed.
    pub async fn stop(&mut self) {
        self.state.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.state.shutdown.send_replace(true);
    }
}

// === impl UpstreamBuilder ===

impl UpstreamBuilder {
    /// Answer every request with this status (the body is still the echo).
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Add a header to every response.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answer with `n` bytes of `x` instead of the echo.
    pub fn body_size(mut self, n: usize) -> Self {
        self.body_size = Some(n);
        self
    }

    /// Wait this long before answering.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }

    /// Hold every request (after it was recorded) until [`Upstream::release`] is called.
    pub fn hold(mut self) -> Self {
        self.hold = true;
        self
    }

    pub async fn start(self) -> Upstream {
        // A port from `free_port`, so no gateway of a parallel test is handed the same one.
        let listener = loop {
            if let Ok(l) = TcpListener::bind(("127.0.0.1", crate::support::free_port())).await {
                break l;
            }
        };
        let addr = listener.local_addr().expect("upstream addr");
        let state = Arc::new(State {
            name: self.name,
            status: AtomicU16::new(self.status),
            headers: self.headers,
            body_size: self.body_size,
            delay: self.delay,
            hold: self.hold,
            released: watch::channel(false).0,
            shutdown: watch::channel(false).0,
            kick: watch::channel(0).0,
            heads: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            records: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(serve(listener, state.clone()));
        Upstream {
            addr,
            state,
            task: Some(task),
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut shutdown = state.shutdown.subscribe();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                state.connections.fetch_add(1, Ordering::SeqCst);
                let state = state.clone();
                let mut kick = state.kick.subscribe();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(state.clone(), req));
                    let conn = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        _ = kick.changed() => {}
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn handle(state: Arc<State>, mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    state.heads.fetch_add(1, Ordering::SeqCst);
    let mut headers = Map::new();
    for (name, value) in req.headers() {
        let list = headers
            .entry(name.as_str().to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()));
        }
    }
    let mut record = json!({
        "server": state.name,
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "version": format!("{:?}", req.version()),
        "headers": headers,
    });

    let websocket = req
        .headers()
        .get(hyper::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if websocket {
        let upgrade = hyper::upgrade::on(&mut req);
        let mut shutdown = state.shutdown.subscribe();
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
            tokio::select! {
                _ = tokio::io::copy(&mut r, &mut w) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        });
        record["body_len"] = json!(0);
        state.records.lock().unwrap().push(record);
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("x-upstream", state.name.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap();
        return Ok(resp);
    }

    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let resp = Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .body(Full::new(Bytes::from_static(b"upstream: broken request body")))
                .unwrap();
            return Ok(resp);
        }
    };
    record["body_len"] = json!(body.len());
    state.records.lock().unwrap().push(record.clone());

    if state.hold {
        let mut released = state.released.subscribe();
        let _ = released.wait_for(|r| *r).await;
    }
    if let Some(d) = state.delay {
        tokio::time::sleep(d).await;
    }

    let mut resp = Response::builder()
        .status(state.status.load(Ordering::Relaxed))
        .header("x-upstream", state.name.as_str());
    for (k, v) in &state.headers {
        resp = resp.header(k.as_str(), v.as_str());
    }
    let body = match state.body_size {
        Some(n) => Bytes::from(vec![b'x'; n]),
        None => {
            resp = resp.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(&record).unwrap())
        }
    };
    Ok(resp.body(Full::new(body)).unwrap())
}

/// What an upstream received, as it echoed it.
#[derive(Debug, Clone)]
pub struct Echo(pub Value);

// === impl Echo ===

impl Echo {
    pub fn server(&self) -> &str {
        self.0["server"].as_str().unwrap_or_default()
    }

    pub fn method(&self) -> &str {
        self.0["method"].as_str().unwrap_or_default()
    }

    pub fn path(&self) -> &str {
        self.0["path"].as_str().unwrap_or_default()
    }

    pub fn query(&self) -> Option<&str> {
        self.0["query"].as_str()
    }

    /// Every value of header `name`, in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.0["headers"][name.to_ascii_lowercase()]
            .as_array()
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The values of header `name` joined by `, `, or `None` when it was absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let all = self.headers(name);
        (!all.is_empty()).then(|| all.join(", "))
    }

    pub fn body_len(&self) -> u64 {
        self.0["body_len"].as_u64().unwrap_or_default()
    }
}
