//! The span exporter: one thread that takes the batches of finished spans the workers encoded
//! (`otel_batch`, `otel_proto`) and posts them to the collector as OTLP/HTTP protobuf, with
//! hyper, on one kept connection.
//!
//! Requests never wait for it: a worker whose batches are full drops the span and counts it
//! (`portico_tracing_spans_dropped_total`). A failed export drops its batch (counted too)
//! rather than holding memory for a collector that is down.

use crate::flush::{self, Flusher, Requests};
use crate::metrics::families;
use crate::otel_batch::Batches;
use crate::otel_proto::{Batch, Envelope};
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use portico_config::Tracing;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Exporter {
    authority: String,
    path: String,
    envelope: Envelope,
    delay: Duration,
    timeout: Duration,
    conn: Option<SendRequest<Full<Bytes>>>,
}

/// The request path's handle on the exporter.
pub struct Handle {
    pub batches: Arc<Batches>,
    /// The exporter thread, and flush requests to it (closed when the tracer is dropped).
    pub flusher: Flusher,
}

/// Starts the exporter thread.
pub fn spawn(config: &Tracing) -> std::io::Result<Handle> {
    let endpoint = portico_config::otel::endpoint(&config.endpoint)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let envelope = Envelope::new(&config.service_name);
    let batches = Arc::new(Batches::new(
        config.batch.max_spans,
        config.batch.queue,
        envelope.room(),
    ));
    let (flush, requests) = flush::channel();
    let exporter = Exporter {
        authority: endpoint.authority,
        path: endpoint.path,
        envelope,
        delay: config.batch.delay.get(),
        timeout: config.batch.timeout.get(),
        conn: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let taken = batches.clone();
    let thread = std::thread::Builder::new()
        .name("span-export".into())
        .spawn(move || exporter.run(&rt, &taken, &requests))?
        .thread()
        .clone();
    batches.wake(thread.clone());
    Ok(Handle {
        batches,
        flusher: Flusher::new(flush, thread),
    })
}

impl Exporter {
    /// Sleeps until a batch is sealed or takes its first span, a flush is asked for, or the
    /// oldest open batch has waited `delay`.
    fn run(mut self, rt: &tokio::runtime::Runtime, batches: &Batches, requests: &Requests) {
        loop {
            let taken = requests.take();
            let (due, next) = batches.take(self.delay, taken.urgent());
            for batch in due {
                self.export(rt, batch);
            }
            let closed = taken.closed;
            taken.answer();
            if closed {
                return;
            }
            match next {
                Some(t) => std::thread::park_timeout(t.saturating_duration_since(Instant::now())),
                None => std::thread::park(),
            }
        }
    }

    /// Sends one batch; counts what the collector took or what was lost.
    fn export(&mut self, rt: &tokio::runtime::Runtime, batch: Batch) {
        let n = batch.count as u64;
        let body = self.envelope.body(batch);
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
