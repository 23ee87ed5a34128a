//! Upgrade tunnels (WebSocket and friends): once the upstream answered 101,
//! both connections are taken over from hyper and bytes are copied both ways.
//!
//! A tunnel of a signed-in user closes at the latest when the session's
//! absolute lifetime ends (`tunnel_until`).

use std::time::SystemTime;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Run the tunnel in the background; it ends when either side closes.
pub fn spawn_tunnel(
    route: String,
    client: OnUpgrade,
    upstream: OnUpgrade,
    until: Option<SystemTime>,
) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::warn!(route.name = %route, error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        let limit = until.map(|t| t.duration_since(SystemTime::now()).unwrap_or_default());
        let result = match limit {
            Some(limit) => match tokio::time::timeout(limit, copy).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::info!(route.name = %route, "tunnel closed: the session ended");
                    return;
                }
            },
            None => copy.await,
        };
        match result {
            Ok((up, down)) => {
                tracing::debug!(route.name = %route, bytes.up = up, bytes.down = down, "tunnel closed")
            }
            Err(e) => {
                tracing::debug!(route.name = %route, error = %e, "tunnel ended with an error")
            }
        }
    });
}
