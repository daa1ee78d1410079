//! A real gRPC server and client for the tests (tonic), on hand-written prost messages (no
//! protoc, no codegen). Included by `tests/grpc.rs` only: the other test binaries need none
//! of tonic.
//!
//! Service `test.Echo`:
//! - `Unary(Msg) -> Msg`: the text upper-cased; `n` = how many requests this server answered;
//!   the request metadata it saw comes back as response metadata `x-seen-<name>`.
//! - `Fail(Msg) -> error`: NOT_FOUND with message `msg.text` and metadata `x-detail: 42`.
//! - `Count(Msg) -> stream Msg`: `msg.n` messages, then trailers with `x-count: N`.
//! - `Chat(stream Msg) -> stream Msg`: each message upper-cased as it comes.
//!
//! And `grpc.health.v1.Health/Check`: SERVING, or NOT_SERVING after `set_serving(false)`.

use crate::support::upstream_tls::Leaf;
use http::uri::PathAndQuery;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::server::Grpc as GrpcServer;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// The one message type of the test service.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    #[prost(string, tag = "1")]
    pub text: String,
    #[prost(uint32, tag = "2")]
    pub n: u32,
}

pub fn msg(text: &str, n: u32) -> Msg {
    Msg { text: text.into(), n }
}

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthReq {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`: 1 = SERVING, 2 = NOT_SERVING.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthResp {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;

/// A running gRPC server (HTTP/2 only: h2c, or TLS with ALPN h2).
pub struct GrpcUpstream {
    addr: SocketAddr,
    state: Arc<Counters>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    calls: AtomicUsize,
    health_checks: AtomicUsize,
    not_serving: AtomicBool,
}

#[derive(Clone)]
struct EchoService(Arc<Counters>);

impl tower::Service<http::Request<Body>> for EchoService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let counters = self.0.clone();
        if req.uri().path() == "/grpc.health.v1.Health/Check" {
            counters.health_checks.fetch_add(1, Ordering::SeqCst);
            let status = if counters.not_serving.load(Ordering::SeqCst) {
                2
            } else {
                1
            };
            return Box::pin(async move {
                let mut grpc = GrpcServer::new(ProstCodec::<HealthResp, HealthReq>::default());
                let svc = tower::service_fn(move |_: Request<HealthReq>| async move {
                    Ok::<_, Status>(Response::new(HealthResp { status }))
                });
                Ok(grpc.unary(svc, req).await)
            });
        }
        let n = counters.calls.fetch_add(1, Ordering::SeqCst) as u32 + 1;
        Box::pin(async move {
            let mut grpc = GrpcServer::new(ProstCodec::<Msg, Msg>::default());
            let resp = match req.uri().path() {
                "/test.Echo/Unary" => {
                    grpc.unary(
                        tower::service_fn(move |r: Request<Msg>| async move {
                            let mut resp = Response::new(msg(&r.get_ref().text.to_uppercase(), n));
                            for kv in r.metadata().iter() {
                                if let tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv
                                    && let Ok(name) =
                                        format!("x-seen-{}", k.as_str()).parse::<tonic::metadata::AsciiMetadataKey>()
                                {
                                    resp.metadata_mut().insert(name, v.clone());
                                }
                            }
                            Ok::<_, Status>(resp)
                        }),
                        req,
                    )
                    .await
                }
                "/test.Echo/Fail" => {
                    grpc.unary(
                        tower::service_fn(|r: Request<Msg>| async move {
                            let mut md = MetadataMap::new();
                            md.insert("x-detail", MetadataValue::from_static("42"));
                            Err::<Response<Msg>, _>(Status::with_metadata(Code::NotFound, r.into_inner().text, md))
                        }),
                        req,
                    )
                    .await
                }
                "/test.Echo/Count" => {
                    grpc.server_streaming(
                        tower::service_fn(|r: Request<Msg>| async move {
                            let count = r.get_ref().n;
                            let items = (1..=count).map(|i| Ok(msg(&format!("item {i}"), i)));
                            // The stream ends with an OK status carrying metadata: tonic sends
                            // it as the trailers.
                            let mut md = MetadataMap::new();
                            md.insert("x-count", count.to_string().parse().unwrap());
                            let end = Err(Status::with_metadata(Code::Ok, "", md));
                            let s: MsgStream = Box::pin(tokio_stream::iter(items.chain(std::iter::once(end))));
                            Ok::<_, Status>(Response::new(s))
                        }),
                        req,
                    )
                    .await
                }
                "/test.Echo/Chat" => {
                    grpc.streaming(
                        tower::service_fn(|r: Request<Streaming<Msg>>| async move {
                            let s: MsgStream =
                                Box::pin(r.into_inner().map(|m| m.map(|m| msg(&m.text.to_uppercase(), m.n))));
                            Ok::<_, Status>(Response::new(s))
                        }),
                        req,
                    )
                    .await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(resp)
        })
    }
}

impl GrpcUpstream {
    /// A plaintext (h2c) server on a free loopback port.
    pub async fn start() -> GrpcUpstream {
        Self::start_with(None).await
    }

    /// With `Some(leaf)`: TLS with that certificate, ALPN `h2`.
    pub async fn start_with(tls: Option<&Leaf>) -> GrpcUpstream {
        let listener = crate::support::ports::bound_listener();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Counters::default());
        let svc = EchoService(state.clone());
        let counted = {
            let state = state.clone();
            TcpListenerStream::new(listener).map(move |c| {
                state.connections.fetch_add(1, Ordering::SeqCst);
                c
            })
        };
        let server = tonic::transport::Server::builder();
        let task = match tls {
            None => tokio::spawn(async move {
                let _ = server.serve_with_incoming(svc, counted).await;
            }),
            Some(leaf) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(leaf.server_config(None, &[b"h2"])));
                let incoming = counted
                    .then(move |c| {
                        let acceptor = acceptor.clone();
                        async move { acceptor.accept(c?).await }
                    })
                    // A failed handshake is that connection's problem, not the server's.
                    .filter(Result::is_ok);
                tokio::spawn(async move {
                    let _ = server.serve_with_incoming(svc, incoming).await;
                })
            }
        };
        GrpcUpstream { addr, state, task }
    }

    /// `127.0.0.1:PORT`, as a config's node address.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Calls served so far (health checks aside).
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// gRPC health checks answered so far.
    pub fn health_checks(&self) -> usize {
        self.state.health_checks.load(Ordering::SeqCst)
    }

    /// What the health check answers from now on: SERVING or NOT_SERVING.
    pub fn set_serving(&self, serving: bool) {
        self.state.not_serving.store(!serving, Ordering::SeqCst);
    }
}

impl Drop for GrpcUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A tonic client on one HTTP/2 connection (h2c, prior knowledge) to `addr`; clones share it.
#[derive(Clone)]
pub struct GrpcClient {
    inner: tonic::client::Grpc<tonic::transport::Channel>,
}

impl GrpcClient {
    pub async fn connect(addr: SocketAddr) -> GrpcClient {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        GrpcClient {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    async fn ready(&mut self) {
        self.inner.ready().await.unwrap();
    }

    /// `test.Echo/{method}` as a unary call.
    pub async fn unary(&mut self, method: &str, req: Request<Msg>) -> Result<Response<Msg>, Status> {
        self.ready().await;
        let path = PathAndQuery::try_from(format!("/test.Echo/{method}")).unwrap();
        self.inner.unary(req, path, ProstCodec::default()).await
    }

    /// `test.Echo/Count`: every message, then the trailers.
    pub async fn count(&mut self, n: u32) -> Result<(Vec<Msg>, MetadataMap), Status> {
        self.ready().await;
        let path = PathAndQuery::from_static("/test.Echo/Count");
        let mut stream = self
            .inner
            .server_streaming(Request::new(msg("count", n)), path, ProstCodec::default())
            .await?
            .into_inner();
        let mut got = Vec::new();
        while let Some(m) = stream.message().await? {
            got.push(m);
        }
        let trailers = stream.trailers().await?.unwrap_or_default();
        Ok((got, trailers))
    }

    /// `test.Echo/Chat`, fed by `outbound`.
    pub async fn chat(&mut self, outbound: impl Stream<Item = Msg> + Send + 'static) -> Result<Streaming<Msg>, Status> {
        self.ready().await;
        let path = PathAndQuery::from_static("/test.Echo/Chat");
        Ok(self
            .inner
            .streaming(Request::new(outbound), path, ProstCodec::default())
            .await?
            .into_inner())
    }
}
