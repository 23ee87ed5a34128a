//! Key names and the Lua scripts that keep multi-step changes atomic.
//!
//! A session id never appears in Redis: keys use the SHA-256 of the id
//! ("session hash"), so someone who can read Redis (a backup, `MONITOR`)
//! cannot turn a key into a working cookie — and the cookie is also signed
//! with the session secret. User ids and provider `sid`s are hashed too,
//! which keeps key lengths fixed.
//!
//! Per session, three keys share one Redis Cluster hash slot through a hash
//! tag (`{hash}`), so scripts that touch two of them work on a cluster:
//!
//! | key | holds | TTL |
//! |---|---|---|
//! | `<prefix>{<hash>}:s` | the session record (`record`: compact, or JSON from earlier builds) | min(idle timeout, absolute end), extended on read |
//! | `<prefix>{<hash>}:t` | tombstone: this id was ended | 10 min |
//! | `<prefix>{<hash>}:l` | refresh lock token | a few seconds |
//! | `<prefix>u:<sha256(connection \n user id)>` | set of session hashes of the user through that connection | the longest absolute end among them |
//! | `<prefix>x:<sha256(connection \n sid)>` | set of session hashes of that connection with that provider `sid` | likewise |
//!
//! The index keys include the connection (SPEC 6.1): a back-channel logout
//! or revocation for one connection cannot even name another's sessions.
//! Connection names cannot contain a newline, so the pair is unambiguous.
//!
//! On a single server, `<prefix>gen` holds the change generations (no TTL,
//! 8 KiB; `generations`): every change of a session through the scripts
//! below also writes its slot there.
//!
//! Invalidations go out on the channel `<prefix>invalidate` as
//! space-separated session hashes.

use redis::Script;
use sha2::{Digest, Sha256};

use crate::session::store::SessionId;

/// The SHA-256 of a session id: the local cache key and, in hex, part of
/// every Redis key of the session.
pub(super) type Hash = [u8; 32];

pub(super) fn session_hash(id: &SessionId) -> Hash {
    Sha256::digest(id.as_bytes()).into()
}

pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(super) fn session(&self, h: &Hash) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 68);
        key.push_str(&self.prefix);
        key.push('{');
        push_hex(&mut key, h);
        key.push_str("}:s");
        key
    }

    /// The change generations (`generations`; a single server only: no
    /// hash tag could put it in every session's Cluster slot).
    pub(super) fn generations(&self) -> String {
        format!("{}gen", self.prefix)
    }

    /// The key prefix (admin listing's `SCAN`).
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The session hash a key made by [`Keys::session`] names.
    pub(super) fn hash_of_session_key(&self, key: &str) -> Option<Hash> {
        let inner = key
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('{')?
            .strip_suffix("}:s")?;
        parse_hex(inner)
    }

    pub(super) fn tombstone(&self, h: &Hash) -> String {
        format!("{}{{{}}}:t", self.prefix, hex(h))
    }

    pub(super) fn lock(&self, h: &Hash) -> String {
        format!("{}{{{}}}:l", self.prefix, hex(h))
    }

    pub(super) fn user_index(&self, connection: &str, user_id: &str) -> String {
        format!("{}u:{}", self.prefix, scoped_hash(connection, user_id))
    }

    pub(super) fn sid_index(&self, connection: &str, sid: &str) -> String {
        format!("{}x:{}", self.prefix, scoped_hash(connection, sid))
    }

    /// A one-time value of `connection` (a SAML assertion ID), hashed.
    pub(super) fn once(&self, connection: &str, value: &str) -> String {
        format!("{}o:{}", self.prefix, scoped_hash(connection, value))
    }

    /// A failed-sign-in counter (`ldap::limit`; the key is already free
    /// of logins in clear).
    pub(super) fn failures(&self, key: &str) -> String {
        // Hash-tagged like its `under_way` counter: one slot, so a script
        // can read both on a Cluster.
        format!("{}f:{{{key}}}", self.prefix)
    }

    /// Sign-in attempts under way under a failure counter's key.
    pub(super) fn under_way(&self, key: &str) -> String {
        format!("{}u:{{{key}}}", self.prefix)
    }

    pub(super) fn channel(&self) -> String {
        format!("{}invalidate", self.prefix)
    }
}

/// Hex SHA-256 of `connection`, a newline, and `value`.
fn scoped_hash(connection: &str, value: &str) -> String {
    let mut d = Sha256::new();
    d.update(connection.as_bytes());
    d.update(b"\n");
    d.update(value.as_bytes());
    hex(&d.finalize().into())
}

pub(super) fn hex(h: &Hash) -> String {
    let mut s = String::with_capacity(64);
    push_hex(&mut s, h);
    s
}

/// Lowercase hex of `h` onto `s` (a table, not `write!`: every session
/// read from Redis names its key).
fn push_hex(s: &mut String, h: &Hash) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in h {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// The hash a hex string names (an index member or a pub/sub message part).
pub(super) fn parse_hex(s: &str) -> Option<Hash> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut h = [0u8; 32];
    for (i, byte) in h.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(h)
}

/// The Lua scripts (loaded once per server, then run by SHA).
pub(super) struct Scripts {
    /// KEYS: session, tombstone[, generations]. ARGV: value, ttl ms[, slot
    /// offset, new slot value]. Stores unless the id was ended (a refresh
    /// finishing after a logout must not revive it), writing the slot's new
    /// generation (`generations`) first: a generations key that cannot be
    /// written fails the script before it changes anything.
    pub(super) put: Script,
    /// KEYS: session, tombstone[, generations]. ARGV: tombstone ttl ms[,
    /// slot offset, new slot value]. The slot's new generation, then the
    /// tombstone, then the delete; answers 1 when the session existed.
    pub(super) end: Script,
    /// KEYS: index set. ARGV: member, ttl ms. Adds and makes sure the set
    /// lives at least as long as the new member; answers the set's size.
    pub(super) index: Script,
    /// KEYS: lock. ARGV: token. Deletes the lock only if it is still ours.
    pub(super) unlock: Script,
    /// KEYS: counter. ARGV: window ms, restart (1/0). Counts one failure;
    /// the first one starts the window, and with restart every one does.
    /// Answers the count.
    pub(super) count_failure: Script,
    /// KEYS: failure counter, under-way counter (one slot). ARGV: max,
    /// ttl ms. When failures plus attempts under way stay below max,
    /// counts one more under way and answers 1; else 0.
    pub(super) reserve_attempt: Script,
    /// KEYS: under-way counter. One attempt fewer under way.
    pub(super) release_attempt: Script,
    /// KEYS: a once-only action's key. ARGV: ttl ms. 0 when the action was
    /// finished (`done`); else marks it begun (`pending`, kept as it is
    /// when an earlier attempt began it) and answers 1.
    pub(super) begin_once: Script,
    /// KEYS: a refresh lock. ARGV: its holder's token, ttl ms. 1 when it
    /// still held the token (and now lives ttl more), else 0.
    pub(super) extend_lock: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            put: Script::new(
                r"if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if KEYS[3] then redis.call('SETRANGE', KEYS[3], ARGV[3], ARGV[4]) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1",
            ),
            end: Script::new(
                r"if KEYS[3] then redis.call('SETRANGE', KEYS[3], ARGV[2], ARGV[3]) end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return redis.call('DEL', KEYS[1])",
            ),
            index: Script::new(
                r"redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SCARD', KEYS[1])",
            ),
            count_failure: Script::new(
                // ARGV[2] '1': the window restarts at every failure
                // (`ldap::limit::restarts`); else it runs from the first.
                r"local n = redis.call('INCR', KEYS[1])
if ARGV[2] == '1' or n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n",
            ),
            reserve_attempt: Script::new(
                r"local n = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(redis.call('GET', KEYS[2]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1",
            ),
            release_attempt: Script::new(
                r"if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
return 1",
            ),
            begin_once: Script::new(
                r"local v = redis.call('GET', KEYS[1])
if v == 'done' then return 0 end
if not v then redis.call('SET', KEYS[1], 'pending', 'PX', ARGV[1]) end
return 1",
            ),
            extend_lock: Script::new(
                r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0",
            ),
            unlock: Script::new(
                r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0",
            ),
        }
    }
}
