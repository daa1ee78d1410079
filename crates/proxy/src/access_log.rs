//! The JSON access log, written by its own thread so a slow disk never stalls a request.
//!
//! Workers hand a [`Record`] (cheap clones of what the request already holds) to a bounded
//! channel; the writer thread formats and writes it, flushing whenever the channel runs dry.
//! When the channel is full the record is dropped and counted, never waited for.

use http::{HeaderValue, Method};
use serde::Serialize;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::SystemTime;

const QUEUE: usize = 64 * 1024;

/// What one request did. Only the path is kept, never the query: keys and tokens travel there.
#[derive(Debug)]
pub struct Record {
    pub ts: SystemTime,
    pub request_id: HeaderValue,
    pub client_ip: IpAddr,
    pub method: Method,
    pub host: Option<HeaderValue>,
    pub path: http::Uri,
    pub status: u16,
    pub bytes_sent: u64,
    pub duration_ms: f64,
    pub route_id: Option<Arc<str>>,
    pub consumer: Option<Arc<str>>,
    /// The upstream's id (the route's, or the one traffic-split chose).
    pub upstream: Option<Arc<str>>,
    pub upstream_addr: Option<Arc<str>>,
    pub upstream_status: Option<u16>,
    pub upstream_duration_ms: Option<f64>,
    /// The gRPC status of a gRPC request: the gateway's own, or the upstream's (from its
    /// trailers or a trailers-only answer).
    pub grpc_status: Option<u16>,
}

/// The sending side, shared by every worker.
#[derive(Debug)]
pub struct AccessLog {
    tx: SyncSender<Record>,
    dropped: AtomicU64,
}

impl AccessLog {
    /// Starts the writer for `path` (`stdout`, `stderr`, or a file appended to); `None` for `off`.
    pub fn start(path: &str) -> std::io::Result<Option<Arc<AccessLog>>> {
        let out: Box<dyn Write + Send> = match path {
            "off" => return Ok(None),
            "stdout" => Box::new(std::io::stdout()),
            "stderr" => Box::new(std::io::stderr()),
            file => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(file)?),
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(rx, BufWriter::with_capacity(64 * 1024, out)))?;
        Ok(Some(Arc::new(AccessLog {
            tx,
            dropped: AtomicU64::new(0),
        })))
    }

    /// Queues a record; drops it (and counts the drop) rather than wait.
    pub fn send(&self, record: Record) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(record) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(target: "portico::access_log", dropped = n + 1, "access log queue full; records dropped");
            }
        }
    }
}

/// After the first record of a batch, how long the writer lets more arrive before writing.
///
/// Without it, a writer that keeps up is woken for every record (a futex wake and a context
/// switch on the request path's core, then a `write` per line): at tens of thousands of
/// requests/s that cost more than the request itself. With it, senders find no one waiting
/// and pay nothing; a line reaches the file at most this much later.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

fn write_loop(rx: Receiver<Record>, mut out: BufWriter<Box<dyn Write + Send>>) {
    let mut line = Vec::with_capacity(512);
    while let Ok(first) = rx.recv() {
        std::thread::sleep(BATCH_WINDOW);
        let mut next = Some(first);
        while let Some(record) = next {
            line.clear();
            if serde_json::to_writer(&mut line, &Line::from(&record)).is_ok() {
                line.push(b'\n');
                if out.write_all(&line).is_err() {
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    request_id: &'a str,
    client_ip: IpAddr,
    method: &'a str,
    host: Option<&'a str>,
    path: &'a str,
    status: u16,
    bytes_sent: u64,
    duration_ms: f64,
    route_id: Option<&'a str>,
    consumer: Option<&'a str>,
    upstream: Option<&'a str>,
    upstream_addr: Option<&'a str>,
    upstream_status: Option<u16>,
    upstream_duration_ms: Option<f64>,
    /// Only on gRPC requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_status: Option<u16>,
}

impl<'a> From<&'a Record> for Line<'a> {
    fn from(r: &'a Record) -> Self {
        Line {
            ts: humantime::format_rfc3339_millis(r.ts).to_string(),
            request_id: r.request_id.to_str().unwrap_or("-"),
            client_ip: r.client_ip,
            method: r.method.as_str(),
            host: r.host.as_ref().and_then(|h| h.to_str().ok()),
            path: r.path.path(),
            status: r.status,
            bytes_sent: r.bytes_sent,
            duration_ms: round3(r.duration_ms),
            route_id: r.route_id.as_deref(),
            consumer: r.consumer.as_deref(),
            upstream: r.upstream.as_deref(),
            upstream_addr: r.upstream_addr.as_deref(),
            upstream_status: r.upstream_status,
            upstream_duration_ms: r.upstream_duration_ms.map(round3),
            grpc_status: r.grpc_status,
        }
    }
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}
