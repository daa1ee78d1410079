//! The JSON access log, written by its own thread so a slow disk never stalls a request.
//!
//! A request keeps a [`Record`] (its few texts copied inline, ids and addresses shared) until
//! its response is done; then its worker formats the line into a batch of its own (no channel
//! message, nothing freed on another thread) and the writer thread writes the batches. A
//! worker whose batch the writer has not taken (8 MiB waiting) drops lines and counts them,
//! never waits. Shutdown flushes what is waiting.

use crate::copied::Copied;
use crate::flush::{self, Flusher, Requests};
use crate::shards::{Local, Shards, lock};
use http::{HeaderValue, Method, Uri};
use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one request did. Only the path is kept, never the query: keys and tokens travel there.
#[derive(Debug)]
pub struct Record {
    pub ts: SystemTime,
    /// The request id, Host (when it is text) and path, copied (see `copied`).
    texts: Copied<3>,
    pub client_ip: IpAddr,
    pub method: Method,
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

const REQUEST_ID: usize = 0;
const HOST: usize = 1;
const PATH: usize = 2;

impl Record {
    /// The record of a request just received; what it leads to is filled in later.
    pub fn new(
        ts: SystemTime,
        request_id: &HeaderValue,
        client_ip: IpAddr,
        method: &Method,
        host: Option<&HeaderValue>,
        uri: &Uri,
    ) -> Self {
        Record {
            ts,
            texts: Copied::new([
                Some(request_id.to_str().unwrap_or("-")),
                host.and_then(|h| h.to_str().ok()),
                Some(uri.path()),
            ]),
            client_ip,
            method: method.clone(),
            status: 0,
            bytes_sent: 0,
            duration_ms: 0.0,
            route_id: None,
            consumer: None,
            upstream: None,
            upstream_addr: None,
            upstream_status: None,
            upstream_duration_ms: None,
            grpc_status: None,
        }
    }
}

/// A record waiting for its response to finish (boxed by the request path).
pub struct Pending {
    pub log: Arc<AccessLog>,
    pub record: Record,
}

impl Pending {
    /// Writes the record's line into this thread's batch; drops it (and counts the drop)
    /// rather than wait when the batch is full.
    pub fn send(&self) {
        self.log.push(&self.record);
    }
}

/// A thread's lines waiting for the writer past this many bytes: new ones are dropped.
const MAX_WAITING: usize = 8 << 20;

/// Every thread's batch of lines, shared with the writer thread.
struct Batches {
    shards: Shards<ShardState>,
}

/// One thread's lines, formatted, and the formatter's caches.
#[derive(Default)]
struct ShardState {
    lines: Vec<u8>,
    line: Line,
}

thread_local! {
    static SHARD: Local<ShardState> = const { RefCell::new(None) };
}

/// The workers' side: each thread formats its records into a batch of its own, behind a lock
/// only the writer contends for, once a batch; the writer takes the batches and writes them.
pub struct AccessLog {
    batches: Arc<Batches>,
    /// The writer thread, and flush requests to it (closed when the log is dropped).
    writer: Flusher,
    dropped: AtomicU64,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
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
        let batches = Arc::new(Batches {
            shards: Shards::default(),
        });
        let (flush, requests) = flush::channel();
        let taken = batches.clone();
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(&taken, &requests, out))?
            .thread()
            .clone();
        Ok(Some(Arc::new(AccessLog {
            batches,
            writer: Flusher::new(flush, writer),
            dropped: AtomicU64::new(0),
        })))
    }

    fn push(&self, record: &Record) {
        let pushed = self.batches.shards.with(&SHARD, ShardState::default, |st| {
            if st.lines.len() >= MAX_WAITING {
                return None;
            }
            let first = st.lines.is_empty();
            st.line.format_into(record, &mut st.lines);
            Some(first)
        });
        match pushed {
            // The batch's first line: the writer lets it fill for a moment, then writes it.
            Some(true) => self.writer.thread().unpark(),
            Some(false) => {}
            None => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(target: "portico::access_log", dropped = n + 1, "access log writer behind; records dropped");
                }
            }
        }
    }

    /// Writes out every record queued so far, waiting at most `timeout`; false if that was not
    /// enough. For shutdown, once no request is left to add records.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.writer.flush(timeout)
    }
}

/// After the first line of a batch, how long the writer lets more arrive before writing.
///
/// Without it, a writer that keeps up is woken for every record (a futex wake and a context
/// switch on the request path's core, then a `write` per line): at tens of thousands of
/// requests/s that cost more than the request itself. With it, a worker wakes the writer once
/// a batch; a line reaches the file at most this much later.
const BATCH_WINDOW: Duration = Duration::from_millis(10);

fn write_loop(batches: &Batches, requests: &Requests, mut out: Box<dyn Write + Send>) {
    let mut spare = Vec::new();
    loop {
        std::thread::park();
        let taken = requests.take();
        if !taken.urgent() {
            std::thread::sleep(BATCH_WINDOW);
        }
        for shard in batches.shards.all() {
            let mut lines = std::mem::take(&mut spare);
            std::mem::swap(&mut lock(&shard).lines, &mut lines);
            if !lines.is_empty() && out.write_all(&lines).is_err() {
                return;
            }
            lines.clear();
            spare = lines;
        }
        if out.flush().is_err() {
            return;
        }
        let closed = taken.closed;
        taken.answer();
        if closed {
            return;
        }
    }
}

/// Formats records as JSON lines into one reused buffer: strings escaped by serde_json,
/// integers by itoa, the timestamp's date and time formatted once a second.
#[derive(Default)]
struct Line {
    buf: Vec<u8>,
    /// The second `seconds` holds, `YYYY-MM-DDTHH:MM:SS`.
    second: Option<(u64, String)>,
    /// The last client address and its text.
    ip: Option<(IpAddr, String)>,
}

impl Line {
    /// Appends `r`'s line to `out`.
    fn format_into(&mut self, r: &Record, out: &mut Vec<u8>) {
        std::mem::swap(&mut self.buf, out);
        self.append(r);
        std::mem::swap(&mut self.buf, out);
    }

    #[cfg(test)]
    fn format(&mut self, r: &Record) -> &[u8] {
        self.buf.clear();
        self.append(r);
        &self.buf
    }

    fn append(&mut self, r: &Record) {
        self.buf.extend_from_slice(b"{\"ts\":\"");
        self.timestamp(r.ts);
        self.buf.extend_from_slice(b"\",\"request_id\":");
        self.text(r.texts.bytes(REQUEST_ID));
        self.buf.extend_from_slice(b",\"client_ip\":\"");
        let ip = match &self.ip {
            Some((ip, text)) if *ip == r.client_ip => text,
            _ => &self.ip.insert((r.client_ip, r.client_ip.to_string())).1,
        };
        self.buf.extend_from_slice(ip.as_bytes());
        self.buf.extend_from_slice(b"\",\"method\":");
        self.string(Some(r.method.as_str()));
        self.buf.extend_from_slice(b",\"host\":");
        self.text(r.texts.bytes(HOST));
        self.buf.extend_from_slice(b",\"path\":");
        self.text(r.texts.bytes(PATH));
        self.buf.extend_from_slice(b",\"status\":");
        self.int(Some(r.status.into()));
        self.buf.extend_from_slice(b",\"bytes_sent\":");
        self.int(Some(r.bytes_sent));
        self.buf.extend_from_slice(b",\"duration_ms\":");
        self.millis(Some(r.duration_ms));
        self.buf.extend_from_slice(b",\"route_id\":");
        self.string(r.route_id.as_deref());
        self.buf.extend_from_slice(b",\"consumer\":");
        self.string(r.consumer.as_deref());
        self.buf.extend_from_slice(b",\"upstream\":");
        self.string(r.upstream.as_deref());
        self.buf.extend_from_slice(b",\"upstream_addr\":");
        self.string(r.upstream_addr.as_deref());
        self.buf.extend_from_slice(b",\"upstream_status\":");
        self.int(r.upstream_status.map(u64::from));
        self.buf.extend_from_slice(b",\"upstream_duration_ms\":");
        self.millis(r.upstream_duration_ms);
        // Only on gRPC requests.
        if let Some(s) = r.grpc_status {
            self.buf.extend_from_slice(b",\"grpc_status\":");
            self.int(Some(s.into()));
        }
        self.buf.extend_from_slice(b"}\n");
    }

    /// RFC 3339 in UTC with milliseconds, as `humantime::format_rfc3339_millis` writes it.
    fn timestamp(&mut self, ts: SystemTime) {
        let Ok(since) = ts.duration_since(UNIX_EPOCH) else {
            self.buf
                .extend_from_slice(humantime::format_rfc3339_millis(ts).to_string().as_bytes());
            return;
        };
        let secs = since.as_secs();
        let second = match &self.second {
            Some((s, text)) if *s == secs => text,
            _ => {
                let mut text = humantime::format_rfc3339_seconds(ts).to_string();
                text.truncate(19); // without the "Z"
                &self.second.insert((secs, text)).1
            }
        };
        self.buf.extend_from_slice(second.as_bytes());
        let ms = since.subsec_millis();
        self.buf.extend_from_slice(&[
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
            b'Z',
        ]);
    }

    fn string(&mut self, s: Option<&str>) {
        self.text(s.map(str::as_bytes));
    }

    /// A JSON string of UTF-8 `text`, or null.
    fn text(&mut self, text: Option<&[u8]>) {
        let Some(t) = text else {
            self.buf.extend_from_slice(b"null");
            return;
        };
        if needs_no_escape(t) {
            self.buf.push(b'"');
            self.buf.extend_from_slice(t);
            self.buf.push(b'"');
        } else if let Ok(s) = std::str::from_utf8(t) {
            // Escaping as serde_json does (it cannot fail writing into a Vec).
            let mut ser = serde_json::Serializer::new(&mut self.buf);
            let _ = serde::Serializer::serialize_str(&mut ser, s);
        } else {
            self.buf.extend_from_slice(b"null");
        }
    }

    fn int(&mut self, n: Option<u64>) {
        match n {
            Some(n) => self.buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    /// Milliseconds rounded to the microsecond: `12.5`, `0.031`, `3.0`.
    fn millis(&mut self, ms: Option<f64>) {
        let Some(ms) = ms else {
            self.buf.extend_from_slice(b"null");
            return;
        };
        // Rounded half up (`as` saturates: NaN and negatives are 0).
        let us = (ms * 1000.0 + 0.5) as u64;
        self.int(Some(us / 1000));
        let frac = us % 1000;
        let digits = [
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let keep = if frac.is_multiple_of(100) {
            2
        } else if frac.is_multiple_of(10) {
            3
        } else {
            4
        };
        self.buf.extend_from_slice(&digits[..keep]);
    }
}

/// Whether `t` holds no control character, quote or backslash (nothing JSON escapes), looked
/// at eight bytes at a time.
fn needs_no_escape(t: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether any byte of `w` is below `n` (n <= 128), or equals `c`.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH != 0;
    let equals = |w: u64, c: u8| below(w ^ (ONES * u64::from(c)), 1);
    let plain = |w: u64| !(below(w, 0x20) || equals(w, b'"') || equals(w, b'\\'));
    let mut words = t.chunks_exact(8);
    for chunk in &mut words {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            return false;
        };
        if !plain(u64::from_ne_bytes(bytes)) {
            return false;
        }
    }
    // The last few bytes, padded with spaces.
    let rest = words.remainder();
    let mut last = [b' '; 8];
    last[..rest.len()].copy_from_slice(rest);
    plain(u64::from_ne_bytes(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn record() -> Record {
        let mut r = Record::new(
            UNIX_EPOCH + Duration::from_millis(1_764_095_000_007),
            &HeaderValue::from_static("req-\"1\\"),
            "10.0.0.1".parse().unwrap(),
            &Method::GET,
            Some(&HeaderValue::from_static("api.test:8080")),
            &"/a/b?key=secret".parse().unwrap(),
        );
        r.status = 200;
        r.bytes_sent = 12;
        r.duration_ms = 1.2345;
        r.route_id = Some("r\u{e9}\n".into());
        r.upstream_status = Some(201);
        r.upstream_duration_ms = Some(0.03);
        r
    }

    #[test]
    fn lines_are_json_with_every_field() {
        let mut line = Line::default();
        let text = String::from_utf8(line.format(&record()).to_vec()).unwrap();
        assert!(
            text.ends_with("}\n") && !text[..text.len() - 1].contains('\n'),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["ts"], "2025-11-25T18:23:20.007Z");
        assert_eq!(
            v["ts"].as_str(),
            Some(humantime::format_rfc3339_millis(record().ts).to_string().as_str())
        );
        assert_eq!(v["request_id"], "req-\"1\\");
        assert_eq!(v["client_ip"], "10.0.0.1");
        assert_eq!(
            (&v["method"], &v["host"], &v["path"]),
            (&"GET".into(), &"api.test:8080".into(), &"/a/b".into())
        );
        assert_eq!((v["status"].as_u64(), v["bytes_sent"].as_u64()), (Some(200), Some(12)));
        assert_eq!(v["duration_ms"].as_f64(), Some(1.235));
        assert_eq!(v["route_id"], "r\u{e9}\n");
        assert!(v["consumer"].is_null() && v["upstream"].is_null() && v["upstream_addr"].is_null());
        assert_eq!(v["upstream_status"].as_u64(), Some(201));
        assert_eq!(v["upstream_duration_ms"].as_f64(), Some(0.03));
        assert!(v.get("grpc_status").is_none());

        let mut r = record();
        r.grpc_status = Some(14);
        r.upstream_duration_ms = None;
        r.client_ip = "::1".parse().unwrap();
        let v: Value = serde_json::from_slice(line.format(&r)).unwrap();
        assert_eq!(
            (v["grpc_status"].as_u64(), v["client_ip"].as_str()),
            (Some(14), Some("::1"))
        );
        assert!(v["upstream_duration_ms"].is_null());
    }

    #[test]
    fn texts_needing_escapes_are_found_anywhere() {
        assert!(needs_no_escape(b"") && needs_no_escape(b"/a/b/c/d/e/f/g/h/i?x=\xc3\xa9~\x7f"));
        for bad in [b'"', b'\\', b'\n', 0, 0x1f] {
            for at in 0..20 {
                let mut t = vec![b'a'; 20];
                t[at] = bad;
                assert!(!needs_no_escape(&t), "{bad} at {at}");
            }
        }
        for ok in [0x20u8, b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
            assert!(needs_no_escape(&[ok; 17]), "{ok}");
        }
    }

    #[test]
    fn milliseconds_keep_three_decimals_at_most() {
        let mut line = Line::default();
        for (ms, text) in [
            (0.0, "0.0"),
            (3.0, "3.0"),
            (12.5, "12.5"),
            (0.031, "0.031"),
            (0.0304, "0.03"),
            (1.2, "1.2"),
            (1.23, "1.23"),
            (-1.0, "0.0"),
            (f64::NAN, "0.0"),
            (1234.5678, "1234.568"),
        ] {
            line.buf.clear();
            line.millis(Some(ms));
            assert_eq!(std::str::from_utf8(&line.buf).unwrap(), text, "{ms}");
        }
    }
}
