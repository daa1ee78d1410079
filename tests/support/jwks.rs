//! A small JWKS endpoint on loopback: serves a document that a test may replace, counts its
//! fetches, and can be told to fail.

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

struct State {
    doc: Mutex<String>,
    hits: AtomicUsize,
    failing: AtomicBool,
}

/// A running JWKS server; stops on drop.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl JwksServer {
    /// Serves `doc` (a JWKS JSON document) at `/jwks.json`.
    pub async fn start(doc: &str) -> JwksServer {
        let listener = loop {
            if let Ok(l) = TcpListener::bind(("127.0.0.1", crate::support::free_port())).await {
                break l;
            }
        };
        let addr = listener.local_addr().expect("jwks addr");
        let state = Arc::new(State {
            doc: Mutex::new(doc.to_owned()),
            hits: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(state.clone(), req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        JwksServer { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Serves `doc` from now on.
    pub fn set(&self, doc: &str) {
        *self.state.doc.lock().unwrap() = doc.to_owned();
    }

    /// Answers 500 (true) or the document (false) from now on.
    pub fn fail(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// How many requests it has answered.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let (status, body) = if state.failing.load(Ordering::SeqCst) {
        (500, String::from("boom"))
    } else if req.uri().path() == "/jwks.json" {
        (200, state.doc.lock().unwrap().clone())
    } else {
        (404, String::new())
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    Ok(resp)
}
