//! The invalidation subscriber: one pub/sub connection per store that
//! listens on `<prefix>invalidate` and evicts the named sessions from this
//! replica's local cache, so a logout or revocation on any replica stops
//! cached copies everywhere within milliseconds.
//!
//! Fail safe: while the subscription is down, nothing new enters the local
//! cache ([`Local::insert`] checks it) and no cached copy answers by itself:
//! every read asks Redis, so a logout or revocation on another replica
//! still takes effect at once; a copy within its TTL answers only when
//! Redis cannot be reached (that keeps signed-in users working through a
//! Redis outage of a few seconds). When the subscription comes back, the
//! whole cache is cleared, because messages sent meanwhile are lost. A
//! connection that stops answering is noticed by a ping every second.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::cache::Local;
use super::keys::parse_hex;

/// Time between health pings on the subscription.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Subscribes through `sources` (tried in turn: cluster nodes forward
/// every PUBLISH to every node, so any one will do) until the task is
/// aborted (the store is dropped).
pub(super) async fn run(
    sources: Vec<redis::Client>,
    channel: String,
    local: Arc<Local>,
    timeout: Duration,
) {
    let mut attempt: usize = 0;
    let mut backoff = Duration::from_millis(50);
    let mut reported_down = false;
    loop {
        let Some(client) = sources.get(attempt % sources.len().max(1)) else {
            return;
        };
        match subscribe(client, &channel, timeout).await {
            Ok(pubsub) => {
                // Invalidations sent while we were not listening are lost:
                // nothing cached before now can be trusted.
                local.clear();
                local.set_subscribed(true);
                if reported_down {
                    tracing::info!("session invalidation channel subscribed again");
                }
                reported_down = false;
                backoff = Duration::from_millis(50);
                listen(pubsub, &local, timeout).await;
                local.set_subscribed(false);
                tracing::warn!(
                    "session invalidation channel lost; not caching sessions until it is back"
                );
            }
            Err(why) => {
                attempt = attempt.wrapping_add(1);
                if !reported_down {
                    tracing::warn!(error = %why, "cannot subscribe to the session invalidation channel; retrying");
                    reported_down = true;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
    timeout: Duration,
) -> Result<redis::aio::PubSub, String> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(super::conn::describe(&e)),
        Err(_) => Err("timed out".into()),
    }
}

/// Handles messages until the connection ends or stops answering pings.
async fn listen(pubsub: redis::aio::PubSub, local: &Local, timeout: Duration) {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return };
                let Ok(payload) = msg.get_payload::<String>() else {
                    continue;
                };
                for part in payload.split_ascii_whitespace() {
                    match parse_hex(part) {
                        Some(h) => local.evict(&h),
                        // Not ours or garbled: the safe reading is "anything may have changed".
                        None => local.clear(),
                    }
                }
                local.message_handled();
            }
            _ = ping.tick() => {
                match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    _ => return,
                }
            }
        }
    }
}
