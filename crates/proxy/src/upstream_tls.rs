//! The TLS handshake with an upstream node (`scheme: https | grpcs`), with the client config
//! compiled once per upstream (see `portico_upstream::tls`).

use crate::pool::ConnectError;
use portico_upstream::tls::NodeTls;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// TLS over `io`, verifying the node's certificate for `tls.name`. A failure is logged once,
/// at warn: it is nearly always a configuration problem (an untrusted CA, a wrong name, a
/// client certificate the node refuses), not the network's.
pub async fn connect<T>(io: T, tls: &NodeTls, node: &str) -> Result<TlsStream<T>, ConnectError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    TlsConnector::from(tls.config.clone())
        .connect(tls.name.clone(), io)
        .await
        .map_err(|e| {
            tracing::warn!(
                target: "portico::upstream_tls",
                node,
                server_name = %tls.name.to_str(),
                error = %e,
                "upstream TLS handshake failed"
            );
            ConnectError::Tls
        })
}

/// A `grpcs` node must speak HTTP/2: ALPN chose `h2`, or the server ignores ALPN (then
/// HTTP/2 is tried with prior knowledge). A node that chose `http/1.1` cannot carry gRPC.
pub fn require_h2<T>(stream: &TlsStream<T>, node: &str) -> Result<(), ConnectError> {
    match stream.get_ref().1.alpn_protocol() {
        None | Some(b"h2") => Ok(()),
        Some(other) => {
            tracing::warn!(
                target: "portico::upstream_tls",
                node,
                alpn = %String::from_utf8_lossy(other),
                "grpcs upstream did not negotiate HTTP/2 (ALPN h2)"
            );
            Err(ConnectError::Tls)
        }
    }
}
