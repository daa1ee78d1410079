//! The active probe of a gRPC node (`scheme: grpc | grpcs`): the standard gRPC health check,
//! `grpc.health.v1.Health/Check` for the whole server (service ""), over HTTP/2 — what
//! Envoy's and Kubernetes' gRPC probes ask. A gRPC server does not answer an HTTP/1.1 `GET`.
//!
//! The two messages are tiny and fixed, so they are written and read here rather than
//! generated: the request is an empty `HealthCheckRequest`, the answer a
//! `HealthCheckResponse` whose field 1 is the status (1 = SERVING).

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

const PATH: &str = "/grpc.health.v1.Health/Check";
/// One uncompressed gRPC message of length 0: an empty `HealthCheckRequest`.
const EMPTY_REQUEST: [u8; 5] = [0, 0, 0, 0, 0];
const SERVING: u64 = 1;

/// Healthy when the node answers the check with status OK and SERVING.
pub async fn check<S>(io: S, authority: &str, tls: bool) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/2: {e}"))?;
    tokio::spawn(conn);
    let scheme = if tls { "https" } else { "http" };
    let req = Request::post(format!("{scheme}://{authority}{PATH}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .header(header::USER_AGENT, "portico-health-check")
        .body(Full::new(Bytes::from_static(&EMPTY_REQUEST)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| format!("HTTP/2: {e}"))?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("status {}", resp.status().as_u16()));
    }
    let (parts, body) = resp.into_parts();
    // A trailers-only answer carries its status in the head.
    if let Some(s) = parts.headers.get("grpc-status") {
        return Err(format!("grpc-status {}", String::from_utf8_lossy(s.as_bytes())));
    }
    let collected = body.collect().await.map_err(|e| format!("read: {e}"))?;
    let status = collected.trailers().and_then(|t| t.get("grpc-status")).cloned();
    match status.as_ref().map(|s| s.as_bytes()) {
        Some(b"0") => {}
        Some(other) => return Err(format!("grpc-status {}", String::from_utf8_lossy(other))),
        None => return Err("no grpc-status".into()),
    }
    match serving_status(&collected.to_bytes()) {
        Some(SERVING) => Ok(()),
        Some(s) => Err(format!("health status {s} (not SERVING)")),
        None => Err("no health status in the answer".into()),
    }
}

/// Field 1 (varint) of the one message in a gRPC body, if it is there.
fn serving_status(body: &[u8]) -> Option<u64> {
    let (frame, mut msg) = (body.get(..5)?, body.get(5..)?);
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    if frame[0] != 0 || msg.len() < len {
        return None;
    }
    msg = &msg[..len];
    // Walk the fields; the status is the last field 1 (proto3 last-one-wins).
    let mut status = None;
    while !msg.is_empty() {
        let (key, rest) = varint(msg)?;
        msg = rest;
        match key & 7 {
            0 => {
                let (v, rest) = varint(msg)?;
                msg = rest;
                if key >> 3 == 1 {
                    status = Some(v);
                }
            }
            2 => {
                let (n, rest) = varint(msg)?;
                msg = rest.get(usize::try_from(n).ok()?..)?;
            }
            1 => msg = msg.get(8..)?,
            5 => msg = msg.get(4..)?,
            _ => return None,
        }
    }
    // proto3: an absent enum is its zero value, UNKNOWN.
    Some(status.unwrap_or(0))
}

fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_read_from_the_message() {
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 0x01]), Some(SERVING));
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 0x02]), Some(2));
        assert_eq!(serving_status(&[0, 0, 0, 0, 0]), Some(0), "absent: UNKNOWN");
        assert_eq!(serving_status(&[0, 0, 0, 0, 9]), None, "truncated");
        assert_eq!(
            serving_status(&[1, 0, 0, 0, 2, 0x08, 0x01]),
            None,
            "compressed: not ours"
        );
        // An unknown string field first, then the status.
        assert_eq!(
            serving_status(&[0, 0, 0, 0, 5, 0x12, 0x01, b'x', 0x08, 0x01]),
            Some(SERVING)
        );
    }
}
