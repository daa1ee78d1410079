//! Protocol upgrades (WebSocket): once the upstream answers 101, the two connections are
//! spliced together and bytes flow both ways until either side closes.

use crate::h1::Conn;
use http::{Response, response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use portico_plugins::Body;
use tokio::io::AsyncWriteExt;

/// Starts the tunnel and returns the 101 to send to the client.
pub fn tunnel(client: Option<OnUpgrade>, parts: response::Parts, upstream: Box<Conn>) -> Response<Body> {
    if let Some(client) = client {
        tokio::task::spawn_local(async move {
            let Ok(client) = client.await else {
                tracing::debug!(target: "portico::upgrade", "upgrade did not complete");
                return;
            };
            let mut c = TokioIo::new(client);
            let (mut s, early) = upstream.into_upgraded();
            // Whatever the upstream sent right behind its 101 goes first.
            if !early.is_empty()
                && let Err(e) = c.write_all(&early).await
            {
                tracing::debug!(target: "portico::upgrade", error = %e, "tunnel closed with an error");
                return;
            }
            // When one side closes, copy_bidirectional shuts the other's write half and returns.
            if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut s).await {
                tracing::debug!(target: "portico::upgrade", error = %e, "tunnel closed with an error");
            }
        });
    }
    Response::from_parts(parts, Body::Empty)
}
