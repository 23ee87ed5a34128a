//! Change generations: how a replica re-confirms every cached copy with
//! one Redis read per second instead of one `GETEX` per session per TTL.
//!
//! Redis holds one string key, `<prefix>gen`, of [`SLOTS`] 8-byte values.
//! Every write of a session record through realmgate (`put`, `end`: the
//! Lua scripts in `keys`) also writes a fresh random value into the slot of
//! the session's hash, in the same script, so atomically with the change.
//! A slot's value therefore changes whenever any session of that slot
//! changes, and (being random, never zero) it can never come back to a
//! value it had before.
//!
//! A replica notes, before each `GETEX`, the value the latest sweep read
//! for the session's slot (its *tag*: the sweep's read ran in Redis before
//! the `GETEX` did). Every [`interval`] a sweep reads the whole key. When a
//! later sweep reads the same value in that slot, no session of the slot
//! changed between the two reads, so the copy still equals what Redis holds
//! at the later read: it is fresh for another cache TTL from when that
//! sweep was sent (`cache::Local::lookup`). A changed slot confirms nothing
//! and the copy is read again with `GETEX`, as without generations.
//!
//! What a sweep cannot see, and so what still bounds a copy:
//! - Redis's own expiry of an idle record: a copy is never confirmed past
//!   the idle timeout its own `GETEX` set (`Entry::redis_until`), and past
//!   its `reread_at` (half to all of an eighth of the idle timeout, at most
//!   five minutes, after that `GETEX`) it is read with `GETEX` again, which
//!   extends its idle time in Redis. An active session's idle timeout can
//!   so end it up to that much early (before: up to one cache TTL).
//! - A change made in Redis by anything but realmgate's scripts (a
//!   `redis-cli DEL`, eviction under `maxmemory`, a replica of an earlier
//!   build during a rolling upgrade): seen through the invalidation message
//!   when one is sent, else at that next `GETEX`, at most five minutes
//!   later. docs/operations.md says so.
//! - Without the invalidation subscription no copy answers by itself at
//!   all (`cache`), confirmed or not.
//!
//! Only on a single Redis server: on a Cluster the key would live in
//! another slot than the session's keys, and the scripts could not write
//! both atomically. A Cluster keeps one `GETEX` per session per TTL. A
//! sharded database behind one address (some managed Redis offerings)
//! refuses such scripts too (`CROSSSLOT`): the sweeper asks first with a
//! script naming the key and three session keys, and a write that is
//! refused is made again without the key; either way no sweep confirms
//! anything from then on. A server that says it is not the primary
//! (`ROLE`, after a failover) confirms nothing either.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::cache::Local;
use super::conn::Conn;
use super::keys::{Hash, Keys};

/// Values in the generations key.
pub(super) const SLOTS: usize = 1024;
/// The key's length in bytes.
pub(super) const LEN: usize = SLOTS * 8;

/// The slot of a session hash (two bytes other than the cache's epoch
/// stripe byte, so the two spread independently).
pub(super) fn slot(h: &Hash) -> usize {
    usize::from(u16::from_le_bytes([h[1], h[2]])) % SLOTS
}

/// The byte offset of `h`'s slot, for `SETRANGE`.
pub(super) fn offset(h: &Hash) -> usize {
    slot(h) * 8
}

/// Adds the generations key `generations` (when given) and `h`'s slot
/// with a fresh value to a `put` or `end` script call (`keys::Scripts`).
pub(super) fn name_slot(
    call: &mut redis::ScriptInvocation<'_>,
    generations: Option<&str>,
    h: &Hash,
) {
    if let Some(g) = generations {
        call.key(g).arg(offset(h)).arg(&fresh_value()[..]);
    }
}

/// A fresh value for a slot: random and never zero (zero reads as "no
/// value", see [`Sweep::value`]).
pub(super) fn fresh_value() -> [u8; 8] {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v.to_le_bytes();
        }
    }
}

/// Time between sweeps: half the cache TTL (a confirmed copy is confirmed
/// again before it goes stale), at most a second, at least 50 ms.
pub(super) fn interval(ttl: Duration) -> Duration {
    (ttl / 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// One read of the generations key.
pub(super) struct Sweep {
    /// When the read was sent (`Local`'s clock, nanoseconds): a copy it
    /// confirms is fresh for a TTL from then.
    pub(super) sent: u64,
    values: Box<[u64]>,
}

impl Sweep {
    /// The key's bytes as read at `sent`; `None` unless exactly [`LEN`]
    /// bytes (absent, or not yet made full length: `ensure_script`).
    pub(super) fn parse(sent: u64, bytes: &[u8]) -> Option<Sweep> {
        if bytes.len() != LEN {
            return None;
        }
        let values = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        Some(Sweep { sent, values })
    }

    /// True when some slot has no value yet (zero).
    fn has_empty_slots(&self) -> bool {
        self.values.contains(&0)
    }

    /// The value of `h`'s slot; 0 means none (a slot SETRANGE padded with
    /// zeros is never a proof of anything).
    pub(super) fn value(&self, h: &Hash) -> u64 {
        self.values.get(slot(h)).copied().unwrap_or(0)
    }
}

/// KEYS: generations. ARGV: [`LEN`] random bytes. Gives every slot that
/// has no value (the key absent, short, or zero-padded by a write's
/// `SETRANGE` before the first sweep) the matching 8 random bytes; slots
/// with a value are left alone. Writing a new value is always safe: it
/// only withholds confirmations.
fn ensure_script() -> Script {
    Script::new(
        r"local cur = redis.call('GET', KEYS[1]) or ''
local zero = string.rep('\0', 8)
local n = 0
for i = 0, string.len(ARGV[1]) / 8 - 1 do
  local v = string.sub(cur, i * 8 + 1, i * 8 + 8)
  if string.len(v) < 8 or v == zero then
    redis.call('SETRANGE', KEYS[1], i * 8, string.sub(ARGV[1], i * 8 + 1, i * 8 + 8))
    n = n + 1
  end
end
return n",
    )
}

/// `Some` of a script's answer, or `None` when the server refused it for
/// naming keys of several hash slots (a sharded database behind one
/// address): it ran nothing then.
pub(super) fn unless_cross_slot<T>(r: redis::RedisResult<T>) -> redis::RedisResult<Option<T>> {
    match r {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot) => {
            Ok(None)
        }
        other => other.map(Some),
    }
}

/// True when a script may name the generations key with session keys:
/// `None` until the server answered. Three session keys of random hashes
/// and the generations key: on a sharded server they span hash slots
/// (all four in one slot by chance: one in 2^42).
async fn probe(conn: &Conn, keys: &Keys, timeout: Duration) -> Option<bool> {
    let (gen, names) = (
        keys.generations(),
        [(); 3].map(|()| keys.session(&rand::random::<Hash>())),
    );
    let (gen, names) = (&gen, &names);
    let answer = conn
        .run(timeout, "EVAL", |mut c| async move {
            let mut call = redis::cmd("EVAL");
            call.arg("return 1").arg(4).arg(gen).arg(&names[..]);
            unless_cross_slot(call.query_async::<i64>(&mut c).await)
        })
        .await;
    match answer {
        Ok(answer) => Some(answer.is_some()),
        Err(e) => {
            tracing::debug!(error = %e, "could not ask Redis whether it is sharded; asking again");
            None
        }
    }
}

/// True unless the server says it is not a primary (`ROLE`): a demoted or
/// replica server's generations may lag the primary's sessions. A server
/// or proxy without `ROLE` counts as a primary (the invalidation messages
/// and the bounds on every copy still hold).
async fn is_primary(conn: &Conn, timeout: Duration) -> bool {
    let role = conn
        .run(timeout, "ROLE", |mut c| async move {
            redis::cmd("ROLE").query_async::<redis::Value>(&mut c).await
        })
        .await;
    match role {
        Ok(redis::Value::Array(items)) => match items.first() {
            Some(redis::Value::BulkString(b)) => b.as_slice() == b"master",
            Some(redis::Value::SimpleString(s)) => s == "master",
            _ => true,
        },
        _ => true,
    }
}

/// Sweeps every [`interval`] until the task is aborted (the store is
/// dropped). A failed read leaves the last sweep in place: it confirms
/// nothing past its own time plus a TTL.
pub(super) async fn run(conn: Conn, keys: Keys, local: Arc<Local>, timeout: Duration) {
    let ensure = ensure_script();
    let key = keys.generations();
    let mut tick = tokio::time::interval(interval(local.ttl()));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = false;
    let mut proven = false;
    loop {
        tick.tick().await;
        if !local.generations_usable() {
            return;
        }
        if !local.is_subscribed() {
            // Nothing answers by itself meanwhile; the cache is cleared
            // when the subscription comes back.
            continue;
        }
        if !proven {
            match probe(&conn, &keys, timeout).await {
                Some(true) => proven = true,
                Some(false) => {
                    local.generations_unusable();
                    return;
                }
                None => continue,
            }
        }
        if !is_primary(&conn, timeout).await {
            local.set_sweep(None);
            continue;
        }
        let sent = local.clock();
        let key = &key;
        let read = conn
            .run(timeout, "GET generations", |mut c| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
            })
            .await;
        match read {
            Ok(bytes) => {
                reported = false;
                let sweep = bytes.as_deref().and_then(|b| Sweep::parse(sent, b));
                if sweep.as_ref().is_none_or(Sweep::has_empty_slots) {
                    let ensure = &ensure;
                    let made = conn
                        .run(timeout, "generations", |mut c| async move {
                            let full: Vec<u8> = (0..SLOTS).flat_map(|_| fresh_value()).collect();
                            ensure.key(key).arg(full).invoke_async::<i64>(&mut c).await
                        })
                        .await;
                    if let Err(e) = made {
                        tracing::debug!(error = %e, "could not create the session generations key");
                    }
                }
                local.set_sweep(sweep);
            }
            Err(e) => {
                if !reported {
                    tracing::debug!(error = %e, "could not read the session generations; cached sessions are read again from Redis after their TTL");
                    reported = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_takes_only_a_full_key_and_zero_proves_nothing() {
        assert!(Sweep::parse(0, &[1; LEN - 8]).is_none());
        assert!(Sweep::parse(0, &[1; LEN + 8]).is_none());
        let mut bytes = vec![0u8; LEN];
        let mut h = [0u8; 32];
        h[1] = 3;
        bytes[offset(&h)..offset(&h) + 8].copy_from_slice(&7u64.to_le_bytes());
        let sweep = Sweep::parse(5, &bytes).unwrap();
        assert_eq!(sweep.sent, 5);
        assert_eq!(sweep.value(&h), 7);
        h[1] = 4;
        assert_eq!(sweep.value(&h), 0);
    }

    #[test]
    fn slots_cover_the_key_and_values_are_never_zero() {
        let mut h = [0xffu8; 32];
        assert!(offset(&h) + 8 <= LEN);
        h[1] = 0;
        h[2] = 0;
        assert_eq!(slot(&h), 0);
        for _ in 0..1000 {
            assert_ne!(u64::from_le_bytes(fresh_value()), 0);
        }
        assert_eq!(interval(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(
            interval(Duration::from_millis(600)),
            Duration::from_millis(300)
        );
        assert_eq!(
            interval(Duration::from_millis(10)),
            Duration::from_millis(50)
        );
    }
}
