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
