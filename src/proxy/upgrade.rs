//! Upgrade tunnels (WebSocket and friends): once the upstream answered 101,
//! both connections are taken over from hyper and bytes are copied both ways.
//!
//! A tunnel of a signed-in user ends with the session: at the session's
//! absolute end (`until`) at the latest, and within [`CHECK_EVERY`] of a
//! logout or revocation (`alive` answers false once the session is gone),
//! or of a reload whose configuration no longer permits it
//! (`phase::forward`).

use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use http::HeaderValue;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// How often a tunnel asks whether its session still exists.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Answers whether the tunnel's session still exists (false ends the tunnel).
pub type AliveCheck = Box<dyn FnMut() -> BoxFuture<'static, bool> + Send>;

/// True when the `Upgrade` protocol `proto` is WebSocket, any version
/// (`websocket`, `WebSocket/13`: RFC 9110 7.8's name "/" version).
pub fn is_websocket(proto: &HeaderValue) -> bool {
    let name = proto
        .as_bytes()
        .split(|b| *b == b'/')
        .next()
        .unwrap_or_default();
    name.trim_ascii().eq_ignore_ascii_case(b"websocket")
}

/// True when `accept` (the upstream's `Sec-WebSocket-Accept`) answers `key`
/// (the client's `Sec-WebSocket-Key`): base64 of SHA-1 over the key and
/// RFC 6455's GUID (4.2.2). No key, no answer.
pub fn answers_key(key: Option<&HeaderValue>, accept: Option<&HeaderValue>) -> bool {
    use base64::Engine as _;
    use sha1::{Digest, Sha1};
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let (Some(key), Some(accept)) = (key, accept) else {
        return false;
    };
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID);
    let want = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    accept.as_bytes() == want.as_bytes()
}

/// Run the tunnel in the background; it ends when either side closes or the session ends.
pub fn spawn_tunnel(
    route: String,
    client: OnUpgrade,
    upstream: OnUpgrade,
    until: Option<SystemTime>,
    alive: Option<AliveCheck>,
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
        let deadline = until.map(|t| {
            let left = t.duration_since(SystemTime::now()).unwrap_or_default();
            let now = tokio::time::Instant::now();
            // Unrepresentable (only a bug gets here): fail closed, end now.
            now.checked_add(left).unwrap_or(now)
        });
        let ended = session_ended(deadline, alive, CHECK_EVERY);
        tokio::select! {
            result = copy => match result {
                Ok((up, down)) => {
                    tracing::debug!(route.name = %route, bytes.up = up, bytes.down = down, "tunnel closed")
                }
                Err(e) => tracing::debug!(route.name = %route, error = %e, "tunnel ended with an error"),
            },
            why = ended => tracing::info!(route.name = %route, reason = why, "tunnel closed: the session ended"),
        }
        // Dropping both sides closes the connections.
    });
}

/// Resolves when the session is over; never for tunnels without a session.
async fn session_ended(
    deadline: Option<tokio::time::Instant>,
    mut alive: Option<AliveCheck>,
    check_every: Duration,
) -> &'static str {
    let expiry = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let revoked = async {
        let Some(alive) = alive.as_mut() else {
            return std::future::pending().await;
        };
        let mut tick = tokio::time::interval(check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; the gate just checked
        loop {
            tick.tick().await;
            if !alive().await {
                return;
            }
        }
    };
    tokio::select! {
        () = expiry => "expired",
        () = revoked => "signed out or revoked",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    const TICK: Duration = Duration::from_millis(20);

    #[test]
    fn only_the_accept_of_the_client_s_key_answers_it() {
        // RFC 6455 1.3's example.
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        let right = HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(answers_key(Some(&key), Some(&right)));
        assert!(!answers_key(Some(&key), Some(&key)), "the key reflected");
        assert!(!answers_key(Some(&key), None));
        assert!(!answers_key(None, Some(&right)));
        let lower = HeaderValue::from_static("s3pplmbitxaq9kygzzhzrbk+xoo=");
        assert!(
            !answers_key(Some(&key), Some(&lower)),
            "base64 is case-sensitive"
        );
    }

    #[tokio::test]
    async fn ends_at_the_deadline() {
        let start = tokio::time::Instant::now();
        let why = session_ended(Some(start + Duration::from_millis(100)), None, TICK).await;
        assert_eq!(why, "expired");
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn ends_at_the_first_check_after_the_session_is_gone() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let alive: AliveCheck = Box::new(move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { n < 3 })
        });
        let start = tokio::time::Instant::now();
        let why = session_ended(None, Some(alive), TICK).await;
        assert_eq!(why, "signed out or revoked");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(start.elapsed() >= TICK * 4);
    }

    #[tokio::test]
    async fn without_a_session_it_never_ends() {
        let r =
            tokio::time::timeout(Duration::from_millis(200), session_ended(None, None, TICK)).await;
        assert!(r.is_err());
    }
}
