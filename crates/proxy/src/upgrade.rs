//! Protocol upgrades (WebSocket): once the upstream answers 101, the two connections are
//! spliced together and bytes flow both ways until either side closes.

use http::Response;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use portico_plugins::Body;

/// Starts the tunnel and returns the 101 to send to the client.
pub fn tunnel(client: Option<OnUpgrade>, mut upstream: Response<Incoming>) -> Response<Body> {
    let upstream_upgrade = hyper::upgrade::on(&mut upstream);
    if let Some(client) = client {
        tokio::task::spawn_local(async move {
            let (Ok(client), Ok(server)) = (client.await, upstream_upgrade.await) else {
                tracing::debug!(target: "portico::upgrade", "upgrade did not complete");
                return;
            };
            let (mut c, mut s) = (TokioIo::new(client), TokioIo::new(server));
            // When one side closes, copy_bidirectional shuts the other's write half and returns.
            if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut s).await {
                tracing::debug!(target: "portico::upgrade", error = %e, "tunnel closed with an error");
            }
        });
    }
    let (parts, _) = upstream.into_parts();
    Response::from_parts(parts, Body::Empty)
}
