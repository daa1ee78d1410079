//! The span exporter: one thread that batches finished spans and posts them to the collector
//! as OTLP/HTTP protobuf (encoded by `otel_proto` as they arrive, sent with hyper).
//!
//! Requests hand spans over a bounded channel and never wait: when the channel is full the
//! span is dropped and counted (`portico_tracing_spans_dropped_total`). A failed export drops
//! its batch (counted too) rather than holding memory for a collector that is down.

use crate::metrics::families;
use crate::otel::SpanData;
use crate::otel_proto::Encoder;
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use portico_config::Tracing;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

/// While a batch fills, the exporter naps this long between looks at the queue rather than
/// block on it: a sender that finds no one waiting wakes no one (see the access log's note).
const NAP: Duration = Duration::from_millis(10);

struct Exporter {
    authority: String,
    path: String,
    encoder: Encoder,
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
        encoder: Encoder::new(&config.service_name),
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
        loop {
            let mut ack = None;
            match rx.recv() {
                Ok(Msg::Span(s)) => self.encoder.push(&s),
                Ok(Msg::Flush(a)) => ack = Some(a),
                Err(_) => return,
            }
            // Fill the batch until it is full, its first span has waited `delay`, or a flush.
            let deadline = Instant::now() + self.delay;
            let mut open = true;
            while ack.is_none() {
                while self.encoder.len() < self.max_spans {
                    match rx.try_recv() {
                        Ok(Msg::Span(s)) => self.encoder.push(&s),
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
                if ack.is_some() || !open || self.encoder.len() >= self.max_spans || now >= deadline {
                    break;
                }
                std::thread::sleep(NAP.min(deadline - now));
            }
            if !self.encoder.is_empty() {
                self.export(rt);
            }
            if let Some(a) = ack {
                let _ = a.send(());
            }
            if !open {
                return;
            }
        }
    }

    /// Sends the batch (emptying it); counts what the collector took or what was lost.
    fn export(&mut self, rt: &tokio::runtime::Runtime) {
        let n = self.encoder.len() as u64;
        let body = Bytes::from(self.encoder.finish());
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
#[derive(Debug)]
pub enum Msg {
    /// Boxed since the request began: a pointer is cheaper to pass on than the span.
    Span(Box<SpanData>),
    /// Export everything queued before this now, then answer.
    Flush(SyncSender<()>),
}
