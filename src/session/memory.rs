//! The memory store: moka with `lifetime` (absolute) and `idle_timeout` as expiry.
//!
//! # Expiry and eviction
//!
//! Each entry expires at `min(last access + idle_timeout, session.expires_at)`
//! through moka's per-entry [`Expiry`]; `get` extends the idle part. At
//! `memory_max_entries` the least recently used session is evicted (LRU, not
//! moka's default TinyLFU, which may refuse to admit a brand-new session and
//! so bounce a user who just signed in back to the login page).
//!
//! # Memory
//!
//! SPEC 7 asks for one million sessions in 1 GiB, and moka alone costs about
//! 400 bytes per entry with per-entry expiry. A [`Session`] as the rest of the
//! gateway sees it costs several KiB with Entra's 20-odd group ids as separate
//! `String`s, so entries are kept as a [`Packed`] form: all per-user text in
//! one allocation with offsets, and the strings that repeat across users
//! (issuer, connection, tenant, group ids) as 4-byte ids into a
//! reference-counted [`Interner`]. `get` unpacks a fresh `Arc<Session>` (a few
//! dozen small allocations: O(1), a few microseconds in release builds).
//! `examples/session_memory.rs` measures the total.
//!
//! # Hot sessions
//!
//! A signed-in user's browser sends many requests in a row, and unpacking
//! was the largest single cost of a signed-in request. Up to
//! [`hot::CAPACITY`] unpacked sessions are kept beside the packed entry they
//! came from, one per slot of a fixed table (`hot`); `get` still looks the id up in the main cache (expiry, idle
//! time, revocation all work as before) and reuses the unpacked session only
//! when the main cache still holds that very entry (`Arc::ptr_eq`). A copy
//! is kept only for a session that comes back: its first read (a user who
//! just signed in) or a read within the same second as the one before it
//! (a browser's burst of requests). With many more users than slots, a
//! lone read kept its copy only to have the next lone read in that slot
//! free it, in memory no cache held any more (issue 23); such a copy now
//! lives for its request only, and so do the per-thread memo's entries,
//! whose handles are weak. A `put`
//! (refresh) or a removal replaces or drops the packed entry, so a stale
//! unpacked copy is never handed out; holding the packed `Arc` in the hot
//! entry keeps its address from being reused by a newer entry.
//!
//! # Front index
//!
//! With many users nearly every read is of a session no thread served in
//! the last second, and moka's lookup (a chain of pointers: bucket, key,
//! entry, value) and its read bookkeeping (LRU order, timer wheel) were
//! the largest cost of such a read (issue 23). `front` maps every stored id
//! to a weak handle of its packed entry; a read finds the entry there with
//! one probe and answers from it while the entry has not ended (the
//! listener's mark, as for the memo), its absolute end has not come, and
//! the cache confirmed it (a read through moka, or the `put`) less than
//! `front_slack` ago: an eighth of the idle timeout, at most a minute.
//! Otherwise the read goes through moka, which extends the idle deadline
//! and moves the entry in the LRU order, and confirms it again. So a
//! session in use reaches moka about once a minute; it ends at most that
//! slack (and the memo's second) earlier than its last request plus
//! `idle_timeout` (never later: the slack is counted on a monotonic clock
//! and stays under the idle timeout's eighth; 0, off, below 8 seconds),
//! and eviction at `memory_max_entries` follows the order of confirmations.
//! A delete, a revocation or a replacement is seen by the next read, on
//! every thread, as with the memo.
//!
//! # Per-thread memo
//!
//! Even a hot session costs two cache reads (with their clock reads and
//! expiry bookkeeping). Each thread also remembers the sessions it served
//! last (`memo`): for up to a second after the cache confirmed one, the
//! thread answers from its memo unless the packed entry has ended since. The
//! eviction listener marks a packed entry ended (`Packed::ended`) at once for a
//! delete, a revocation or a replacement, so sign-out and revocation take
//! effect on every thread with the next request; only the idle timeout can
//! end a session up to that second early (reads answered by the memo do not
//! extend it).
//!
//! # Revocation
//!
//! `revoke_user` and `revoke_sid` use two secondary indexes,
//! `hash(connection, user_id)` and `hash(connection, sid)` to weak references
//! of the packed entries (keyed hashes from a per-process `RandomState`; a
//! hash collision is harmless because every hit is checked against the
//! entry itself, connection included). Both take the connection: a
//! revocation for one connection never ends another's sessions (SPEC 6.1). The eviction listener removes index
//! entries as moka drops sessions, matching by pointer, so an old value
//! evicted after its id was stored again cannot remove the new one.
//!
//! A token refresh does `get`, a call to the provider, then `put` with the same
//! id. A logout or revocation in between must not be undone by that `put`, so
//! deleted ids are remembered for a while ("tombstones") and a `put` of a
//! tombstoned id is dropped. `put` checks the tombstones again after inserting,
//! and revocation tombstones before it removes, so the two cannot interleave
//! into a resurrected session.

mod front;
mod hot;
mod memo;

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use moka::notification::RemovalCause;
use moka::policy::{EvictionPolicy, Expiry};
use moka::sync::Cache;

use super::model::{EmailTrust, Session, Shared};
use super::store::{handle_of, ListBy, Listing, SessionId, SessionInfo, SessionStore, StoreError};

/// How long a deleted id stays refused by `put` (longer than any token
/// refresh round trip to a provider).
const TOMBSTONE_TTL: Duration = Duration::from_secs(600);
const TOMBSTONE_CAPACITY: u64 = 1_000_000;
/// Upper bound for any entry's time to live.
const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Sessions in memory, for a single gateway instance.
pub struct MemoryStore {
    cache: Cache<SessionId, Arc<Packed>>,
    /// Every stored id to its packed entry (see "Front index").
    front: Arc<front::Front>,
    /// Recently unpacked sessions, each with the packed entry it came from.
    hot: Arc<hot::Hot>,
    tombstones: Cache<SessionId, ()>,
    indexes: Arc<Mutex<Indexes>>,
    interner: Arc<RwLock<Interner>>,
    /// This store in the per-thread memos.
    number: u64,
    /// How long a memo entry answers without the cache.
    fresh: Duration,
    /// Whole seconds the front index answers after the cache confirmed an
    /// entry ([`front_slack`]); 0: the front index is off.
    front_slack: u32,
    /// The clock of `Packed::confirmed`: monotonic, so a wall clock set
    /// back cannot stretch the front index's answers.
    epoch: Instant,
}

// === impl MemoryStore ===

impl MemoryStore {
    /// A store of at most `max_entries` sessions that end after `idle_timeout`
    /// without use, and at their `expires_at` at the latest.
    pub fn new(max_entries: u64, idle_timeout: Duration) -> MemoryStore {
        let indexes = Arc::new(Mutex::new(Indexes::default()));
        let listener_indexes = Arc::downgrade(&indexes);
        let hot = Arc::new(hot::Hot::new());
        let listener_hot = hot.clone();
        let front = Arc::new(front::Front::new());
        let listener_front = front.clone();
        let cache = Cache::builder()
            .max_capacity(max_entries)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(SessionExpiry {
                idle_timeout,
                slack: memo::freshness(idle_timeout),
            })
            .eviction_listener(
                move |id: Arc<SessionId>, packed: Arc<Packed>, _cause: RemovalCause| {
                    // Every thread's memo stops answering for it (Release:
                    // see `memo::get`).
                    packed.ended.store(true, Ordering::Release);
                    // Every cause, `Replaced` included: the index entry points at
                    // this exact value, and a replacement was indexed by `put`.
                    if let Some(indexes) = listener_indexes.upgrade() {
                        lock(&indexes).remove(&packed);
                    }
                    // An unpacked copy must not keep an ended session's
                    // memory (and interned strings) alive: moka runs the
                    // listener at once for `invalidate`/`remove`, and at its
                    // next maintenance for expiry and eviction. (A newer
                    // session in the same slot replaces a copy too.)
                    listener_hot.remove(&id);
                    listener_front.remove(&id, &packed);
                },
            )
            .build();
        MemoryStore {
            cache,
            front,
            hot,
            tombstones: Cache::builder()
                .max_capacity(TOMBSTONE_CAPACITY)
                .time_to_live(TOMBSTONE_TTL)
                .build(),
            indexes,
            interner: Arc::new(RwLock::new(Interner::default())),
            number: crate::per_thread::owner_number(),
            fresh: memo::freshness(idle_timeout),
            front_slack: front_slack(idle_timeout),
            epoch: Instant::now(),
        }
    }

    /// Whole seconds since this store was made, plus [`MAX_FRONT_SLACK`]
    /// (`Packed::confirmed`): a `confirmed` of 0 is at least the longest
    /// slack before any tick, so it reads as "not confirmed lately".
    fn ticks(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_secs())
            .unwrap_or(u32::MAX)
            .saturating_add(MAX_FRONT_SLACK)
    }

    fn get_now(&self, id: &SessionId) -> Option<Arc<Session>> {
        if let Some(session) = memo::get(self.number, id) {
            return Some(session);
        }
        let found = self.get_cached(id);
        if found.is_none() {
            memo::forget(self.number, id);
        }
        let (packed, session, kept) = found?;
        // The memo's handles are weak: a copy the store did not keep would
        // be gone before the memo could answer with it.
        if kept {
            memo::put(self.number, id, &packed, &session, self.fresh);
        }
        Some(session)
    }

    /// The session from the cache, with the packed entry it was read from,
    /// and whether the store keeps this unpacked copy (`hot`).
    fn get_cached(&self, id: &SessionId) -> Option<(Arc<Packed>, Arc<Session>, bool)> {
        let now = unix_now();
        let unconfirmed = match self.front_slack {
            0 => None,
            slack => self
                .front
                .get(id)
                .filter(|p| p.answers_unconfirmed(now, self.ticks(), slack)),
        };
        let packed = match unconfirmed {
            Some(p) => p,
            None => self.confirm(id, now)?,
        };
        // Written once per second at most: a store on every read would bounce
        // the entry's cache line between proxy threads serving one session.
        let seen = secs(now);
        let before = packed.last_seen.load(Ordering::Relaxed);
        if before != seen {
            packed.last_seen.store(seen, Ordering::Relaxed);
        }
        if let Some(session) = self.hot.get(id, &packed) {
            return Some((packed, session, true));
        }
        match packed.unpack() {
            Some(session) => {
                let session = Arc::new(session);
                // Admission (see "Hot sessions"): a copy is kept for a
                // session's first read since it was stored (a user who just
                // signed in) or a read in the same second as the one before
                // (a browser's burst); otherwise it lives for this request
                // only.
                let first = !packed.read.load(Ordering::Relaxed);
                if first {
                    packed.read.store(true, Ordering::Relaxed);
                }
                let kept = first || before == seen;
                if kept {
                    // Not kept if the entry ended meanwhile (`hot`).
                    self.hot.insert(id, packed.clone(), session.clone());
                }
                Some((packed, session, kept))
            }
            None => {
                tracing::error!(
                    "a stored session cannot be unpacked (an interned string lost, or tokens that do not decode); treating it as signed out"
                );
                self.cache.invalidate(id);
                None
            }
        }
    }

    /// The cache's own read of `id` (expiry, idle time and LRU order
    /// follow it), indexed in front for the next `front_slack` seconds.
    fn confirm(&self, id: &SessionId, now: u64) -> Option<Arc<Packed>> {
        let Some(packed) = self.cache.get(id) else {
            // Gone: a dead or ended front entry goes with it.
            self.front.forget(id);
            return None;
        };
        if u64::from(packed.expires_at) <= now {
            self.cache.invalidate(id);
            return None;
        }
        if self.front_slack > 0 {
            packed.confirmed.store(self.ticks(), Ordering::Relaxed);
            self.front.insert(id, &packed);
        }
        Some(packed)
    }

    fn put_now(&self, id: &SessionId, session: Session) {
        if self.tombstones.contains_key(id) {
            // A refresh finishing after a logout or revocation of this id.
            tracing::debug!("session was ended while being updated; not stored again");
            return;
        }
        if session.expires_at <= unix_now() || !session.is_current() {
            // Expired, or of another format (see `SESSION_VERSION`): absent.
            self.cache.invalidate(id);
            return;
        }
        let packed = Arc::new(Packed::pack(id.clone(), &session, &self.interner));
        packed.confirmed.store(self.ticks(), Ordering::Relaxed);
        lock(&self.indexes).add(&packed);
        self.cache.insert(id.clone(), packed.clone());
        if self.tombstones.contains_key(id) {
            self.cache.invalidate(id);
            return;
        }
        // After the tombstone check, so a logout racing this put is never
        // answered by the front index; an eviction that came first has
        // marked the entry ended, and `Front::insert` takes it out again.
        if self.front_slack > 0 {
            self.front.insert(id, &packed);
        }
    }

    /// Ends `id`: tombstone first, then remove. True when it was stored.
    fn end(&self, id: &SessionId) -> bool {
        self.tombstones.insert(id.clone(), ());
        self.cache.remove(id).is_some()
    }

    fn revoke(&self, which: Which, connection: &str, value: &str) -> u64 {
        // No session holds a connection name that is not interned.
        let Some(conn) = read(&self.interner).id_of(connection) else {
            return 0;
        };
        self.revoke_among(which, conn, connection, value)
    }

    /// The sessions indexed under `conn`, the id `connection` had when
    /// looked up: by now its last session may have ended and the id named
    /// another connection, so each is checked against the text of its own
    /// connection (held, so stable) before it is ended (SPEC 6.1).
    fn revoke_among(&self, which: Which, conn: u32, connection: &str, value: &str) -> u64 {
        let candidates = lock(&self.indexes).find(which, conn, value);
        let mut ended = 0;
        for packed in candidates {
            let matches = packed.is_of(connection)
                && match which {
                    Which::User => packed.user_id() == value,
                    Which::Sid => packed.sid() == Some(value),
                };
            if matches && self.end(&packed.id) {
                ended += 1;
            }
        }
        ended
    }

    /// Runs moka's pending maintenance (expiry, eviction, listeners) now.
    /// Tests and the memory benchmark use it; the server does not need to.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
        self.tombstones.run_pending_tasks();
    }

    /// Number of index entries (user ids + sids), for tests.
    pub fn index_len(&self) -> usize {
        let i = lock(&self.indexes);
        i.users.len() + i.sids.len()
    }

    /// Number of distinct interned strings (issuers, tenants, groups...), for tests.
    pub fn interned_len(&self) -> usize {
        read(&self.interner).len()
    }
}

impl SessionStore for MemoryStore {
    fn get<'a>(
        &'a self,
        id: &'a SessionId,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        Box::pin(async move { Ok(self.get_now(id)) })
    }

    fn get_ready(&self, id: &SessionId) -> Option<Result<Option<Arc<Session>>, StoreError>> {
        Some(Ok(self.get_now(id)))
    }

    fn put<'a>(
        &'a self,
        id: &'a SessionId,
        session: Session,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.put_now(id, session);
            Ok(())
        })
    }

    fn delete<'a>(&'a self, id: &'a SessionId) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.end(id);
            Ok(())
        })
    }

    fn revoke_user<'a>(
        &'a self,
        connection: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move { Ok(self.revoke(Which::User, connection, user_id)) })
    }

    fn revoke_sid<'a>(
        &'a self,
        connection: &'a str,
        sid: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move { Ok(self.revoke(Which::Sid, connection, sid)) })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn approximate_len(&self) -> u64 {
        self.cache.entry_count()
    }

    fn list<'a>(
        &'a self,
        by: ListBy<'a>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Listing, StoreError>> {
        Box::pin(async move { Ok(self.list_now(by, limit)) })
    }
}

impl MemoryStore {
    /// The admin listing: by user through the revocation index; by
    /// connection by walking the cache (an admin call, stopped at `limit`).
    fn list_now(&self, by: ListBy<'_>, limit: usize) -> Listing {
        let connection = match by {
            ListBy::User { connection, .. } | ListBy::Connection(connection) => connection,
        };
        let Some(conn) = read(&self.interner).id_of(connection) else {
            return Listing {
                sessions: Vec::new(),
                complete: true,
            };
        };
        let now = unix_now();
        // The id alone could be another connection's by now (`revoke_among`).
        let live = |p: &Packed| {
            p.connection == conn
                && p.is_of(connection)
                && !p.ended.load(Ordering::Acquire)
                && u64::from(p.expires_at) > now
        };
        let mut found: Vec<Arc<Packed>> = Vec::new();
        match by {
            ListBy::User { user_id, .. } => {
                let candidates = lock(&self.indexes).find(Which::User, conn, user_id);
                found.extend(
                    candidates
                        .into_iter()
                        .filter(|p| live(p) && p.user_id() == user_id)
                        .take(limit.saturating_add(1)),
                );
            }
            ListBy::Connection(_) => {
                for (_, p) in self.cache.iter() {
                    if live(&p) {
                        found.push(p);
                        if found.len() > limit {
                            break;
                        }
                    }
                }
            }
        }
        let complete = found.len() <= limit;
        found.truncate(limit);
        // Oldest first, so a listing reads as a history.
        found.sort_by_key(|p| p.created_at);
        Listing {
            sessions: found
                .iter()
                .map(|p| SessionInfo {
                    handle: handle_of(&p.id),
                    connection: connection.to_string(),
                    user_id: p.user_id().to_string(),
                    created_at: u64::from(p.created_at),
                    last_seen: Some(u64::from(p.last_seen.load(Ordering::Relaxed))),
                    expires_at: u64::from(p.expires_at),
                    client_address: p.client_address(),
                })
                .collect(),
            complete,
        }
    }
}

/// A poisoned lock only means another thread panicked while holding it; the
/// maps stay structurally valid, so keep serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// === Expiry ===

/// The longest the front index answers after the cache's last read.
const MAX_FRONT_SLACK: u32 = 60;

/// Whole seconds the front index may answer for an entry after the cache
/// confirmed it: an eighth of the idle timeout, at most a minute; 0 (always
/// the cache) below 8 seconds.
fn front_slack(idle_timeout: Duration) -> u32 {
    u32::try_from(idle_timeout.as_secs() / 8)
        .unwrap_or(u32::MAX)
        .min(MAX_FRONT_SLACK)
}

struct SessionExpiry {
    idle_timeout: Duration,
    /// How far a read may leave the idle deadline behind (see
    /// `expire_after_read`): the per-thread memo's freshness, at most a
    /// second and an eighth of the idle timeout.
    slack: Duration,
}

impl SessionExpiry {
    fn ttl(&self, packed: &Packed) -> Duration {
        let left = Duration::from_secs(u64::from(packed.expires_at).saturating_sub(unix_now()));
        // Moka's timer wheel wants sane durations; no session lasts a decade.
        left.min(self.idle_timeout).min(MAX_TTL)
    }
}

impl Expiry<SessionId, Arc<Packed>> for SessionExpiry {
    fn expire_after_create(&self, _: &SessionId, v: &Arc<Packed>, _: Instant) -> Option<Duration> {
        Some(self.ttl(v))
    }

    /// The entry's deadline moves only when a read moves it by `slack` or
    /// more: an unchanged duration spares moka rescheduling the entry in
    /// its timer wheel on every read (issue 23: one reschedule per request
    /// with many sessions). A session read within its idle timeout thus
    /// stays alive, ending at most `slack` before last read + idle timeout
    /// (the same bound as the per-thread memo); an earlier end (the
    /// absolute lifetime) is always taken at once.
    fn expire_after_read(
        &self,
        _: &SessionId,
        v: &Arc<Packed>,
        _: Instant,
        current: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        let ttl = self.ttl(v);
        match current {
            Some(current) if current <= ttl && ttl - current < self.slack => Some(current),
            _ => Some(ttl),
        }
    }

    fn expire_after_update(
        &self,
        _: &SessionId,
        v: &Arc<Packed>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.ttl(v))
    }
}

// === Packed ===

/// Text fields of a session, in the order they sit in `Packed::text`.
#[derive(Clone, Copy)]
enum Field {
    UserId,
    Subject,
    Sid,
    Email,
    Name,
    PreferredUsername,
    Claims,
}

const FIELDS: usize = 7;
// `Packed::present` has a bit per field.
const _: () = assert!(FIELDS <= 8);

/// `tokens_expire_at` absent.
const NO_TIME: u32 = u32::MAX;

/// Unix seconds as `Packed` keeps them: 4 bytes, good until 2106. A later
/// time (a far-future test value) is kept as the latest that fits: an
/// earlier end, never a later one.
fn secs(t: u64) -> u32 {
    // `u32::MAX` itself is `NO_TIME` (absent): never produced from a time.
    u32::try_from(t).unwrap_or(u32::MAX).min(NO_TIME - 1)
}
/// `tenant_id` absent.
const NO_STRING: u32 = u32::MAX;

/// A [`Session`] in compact form (see the module docs): per-user text in one
/// allocation, shared strings as ids into the store's [`Interner`]. Dropping
/// the last handle releases the interned strings, exactly once.
pub(crate) struct Packed {
    id: SessionId,
    /// Unix seconds (`secs`), as the other times: issue 23 item 4.
    created_at: u32,
    expires_at: u32,
    /// SAML sessions only (SP-initiated logout); one pointer otherwise.
    saml_name_id: Option<Box<crate::session::model::SamlNameId>>,
    tokens_expire_at: u32,
    /// End offset of each field in `data` (the text comes first).
    ends: [u32; FIELDS],
    /// Bit per text field ([`FIELDS`] of them): present (`Some`).
    present: u8,
    email_trust: EmailTrust,
    connection: u32,
    issuer: u32,
    tenant_id: u32,
    /// One allocation (issue 23 item 4: each one costs its pointer and the
    /// allocator's overhead per session): every per-user text field back
    /// to back (UTF-8, up to `ends[FIELDS - 1]`), then the interned ids of
    /// the groups and app roles (`ids` of them, 4 bytes each,
    /// little-endian), then the provider tokens the session keeps in
    /// compact form (`session::compact`; nothing when it keeps none).
    data: Box<[u8]>,
    /// Group ids, then app roles (from `roles_from` on).
    ids: u32,
    /// Where the roles start among the ids.
    roles_from: u32,
    interner: Arc<RwLock<Interner>>,
    /// Set by the cache's eviction listener when this entry leaves the
    /// cache (see "Per-thread memo").
    ended: AtomicBool,
    /// The client address that signed in (admin listing).
    /// IPv4 as IPv4-mapped, none as `::` (never a client's address): 16
    /// bytes, where `Option<IpAddr>` takes 17 and grew `Packed` by 8.
    client_addr: std::net::Ipv6Addr,
    /// When the cache last read or stored this entry, in the store's
    /// monotonic seconds (`MemoryStore::ticks`; see "Front index").
    confirmed: AtomicU32,
    /// Read by `get` since it was stored (admission to the hot copies).
    read: AtomicBool,
    /// Unix seconds of the last read the cache answered (admin listing;
    /// reads the per-thread memo answers are not counted, so it lags by up
    /// to the memo's second).
    last_seen: AtomicU32,
}

impl Packed {
    fn pack(id: SessionId, s: &Session, interner: &Arc<RwLock<Interner>>) -> Packed {
        let claims = s
            .claims
            .as_ref()
            .and_then(|c| serde_json::to_string(c).ok());
        let parts: [Option<&str>; FIELDS] = [
            Some(&s.user_id),
            Some(&s.subject),
            s.sid.as_deref(),
            s.email.as_deref(),
            s.name.as_deref(),
            s.preferred_username.as_deref(),
            claims.as_deref(),
        ];
        let tokens = super::compact::pack_tokens([
            s.id_token.as_deref(),
            s.access_token.as_deref(),
            s.refresh_token.as_deref(),
        ]);
        let text_len: usize = parts.iter().flatten().map(|p| p.len()).sum();
        let id_count = s.groups.len() + s.roles.len();
        let mut data =
            Vec::with_capacity(text_len + 4 * id_count + tokens.as_ref().map_or(0, |t| t.len()));
        let mut ends = [0u32; FIELDS];
        let mut present = 0u8;
        for (i, part) in parts.iter().enumerate() {
            if let Some(p) = part {
                data.extend_from_slice(p.as_bytes());
                present |= 1 << i;
            }
            // Session text is far below 4 GiB (cookie-sized tokens); saturate
            // rather than wrap if it ever is not (the field then reads as absent).
            ends[i] = u32::try_from(data.len()).unwrap_or(u32::MAX);
        }
        let mut strings = write(interner);
        for g in s.groups.iter().chain(s.roles.iter()) {
            data.extend_from_slice(&strings.acquire(g).to_le_bytes());
        }
        if let Some(t) = &tokens {
            data.extend_from_slice(t);
        }
        Packed {
            id,
            created_at: secs(s.created_at),
            expires_at: secs(s.expires_at),
            saml_name_id: s.saml_name_id.clone(),
            tokens_expire_at: s.tokens_expire_at.map_or(NO_TIME, secs),
            ends,
            present,
            email_trust: s.email_trust,
            connection: strings.acquire(&s.connection),
            issuer: strings.acquire(&s.issuer),
            tenant_id: s
                .tenant_id
                .as_deref()
                .map_or(NO_STRING, |t| strings.acquire(t)),
            // Far below 4 G groups: a session with more cannot be built in memory.
            ids: u32::try_from(id_count).unwrap_or(u32::MAX),
            roles_from: u32::try_from(s.groups.len()).unwrap_or(u32::MAX),
            data: data.into_boxed_slice(),
            interner: interner.clone(),
            ended: AtomicBool::new(false),
            confirmed: AtomicU32::new(0),
            read: AtomicBool::new(false),
            client_addr: match s.client_addr {
                None => std::net::Ipv6Addr::UNSPECIFIED,
                Some(std::net::IpAddr::V4(a)) => a.to_ipv6_mapped(),
                Some(std::net::IpAddr::V6(a)) => a,
            },
            last_seen: AtomicU32::new(secs(unix_now())),
        }
    }

    /// The text part of `data`; None only if it were not UTF-8, which
    /// `pack` rules out (it copies whole `str`s).
    fn text(&self) -> Option<&str> {
        let end = self.ends[FIELDS - 1] as usize;
        std::str::from_utf8(self.data.get(..end)?).ok()
    }

    /// The interned ids of the groups, then the roles.
    fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        let start = self.ends[FIELDS - 1] as usize;
        let end = start.saturating_add((self.ids as usize).saturating_mul(4));
        self.data
            .get(start..end)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The compact tokens; None when the session keeps none.
    fn tokens(&self) -> Option<&[u8]> {
        let start =
            (self.ends[FIELDS - 1] as usize).saturating_add((self.ids as usize).saturating_mul(4));
        self.data.get(start..).filter(|t| !t.is_empty())
    }

    fn field(&self, f: Field) -> Option<&str> {
        let i = f as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text()?.get(start..self.ends[i] as usize)
    }

    fn owned(&self, f: Field) -> Option<String> {
        self.field(f).map(str::to_string)
    }

    /// True when this session's connection is `connection` (its own
    /// reference keeps its id naming that text).
    fn is_of(&self, connection: &str) -> bool {
        read(&self.interner).get(self.connection) == Some(connection)
    }

    /// True while the front index may answer for this entry without the
    /// cache: not ended (Acquire pairs with the listener's Release, as in
    /// `memo::get`), before its absolute end, and confirmed by the cache
    /// less than `slack` seconds ago.
    fn answers_unconfirmed(&self, now: u64, ticks: u32, slack: u32) -> bool {
        !self.ended.load(Ordering::Acquire)
            && now < u64::from(self.expires_at)
            && ticks.saturating_sub(self.confirmed.load(Ordering::Relaxed)) < slack
    }

    /// The client address that signed in, as it was stored.
    fn client_address(&self) -> Option<std::net::IpAddr> {
        let a = self.client_addr;
        if a.is_unspecified() {
            return None;
        }
        Some(match a.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(a),
        })
    }

    fn user_id(&self) -> &str {
        self.field(Field::UserId).unwrap_or_default()
    }

    fn sid(&self) -> Option<&str> {
        self.field(Field::Sid)
    }

    /// The session; None if an interned string is missing, which cannot happen
    /// while this value holds its references, but must never turn into a
    /// session with fewer groups or another issuer (nor tokens that do not
    /// decode into one without tokens).
    fn unpack(&self) -> Option<Session> {
        let strings = read(&self.interner);
        let s = |id: u32| strings.get(id).map(str::to_string);
        // Groups and roles: the interned text itself, shared (no copy).
        let shared = |id: u32| strings.shared(id);
        let ids: Vec<u32> = self.ids().collect();
        if ids.len() != self.ids as usize || self.text().is_none() {
            return None;
        }
        let split = (self.roles_from as usize).min(ids.len());
        let (group_ids, role_ids) = ids.split_at(split);
        // Sized once (collecting `Option`s would grow the vectors step by
        // step: a reallocation per doubling on every unpack).
        let all = |ids: &[u32]| -> Option<Vec<Shared>> {
            let mut out = Vec::with_capacity(ids.len());
            for &id in ids {
                out.push(shared(id)?);
            }
            Some(out)
        };
        let groups = all(group_ids);
        let roles = all(role_ids);
        let [id_token, access_token, refresh_token] = super::compact::unpack_tokens(self.tokens())?;
        Some(Session {
            derived: Default::default(),
            version: crate::session::model::SESSION_VERSION,
            user_id: self.user_id().to_string(),
            subject: self.owned(Field::Subject).unwrap_or_default(),
            tenant_id: match self.tenant_id {
                NO_STRING => None,
                t => Some(s(t)?),
            },
            connection: s(self.connection)?,
            issuer: s(self.issuer)?,
            sid: self.owned(Field::Sid),
            email: self.owned(Field::Email),
            email_trust: self.email_trust,
            name: self.owned(Field::Name),
            preferred_username: self.owned(Field::PreferredUsername),
            groups: groups?,
            roles: roles?,
            claims: self
                .field(Field::Claims)
                .and_then(|c| serde_json::from_str(c).ok()),
            id_token,
            access_token,
            refresh_token,
            saml_name_id: self.saml_name_id.clone(),
            tokens_expire_at: (self.tokens_expire_at != NO_TIME)
                .then_some(u64::from(self.tokens_expire_at)),
            client_addr: self.client_address(),
            created_at: u64::from(self.created_at),
            expires_at: u64::from(self.expires_at),
        })
    }
}

impl Drop for Packed {
    fn drop(&mut self) {
        let mut strings = write(&self.interner);
        strings.release(self.connection);
        strings.release(self.issuer);
        if self.tenant_id != NO_STRING {
            strings.release(self.tenant_id);
        }
        for g in self.ids() {
            strings.release(g);
        }
    }
}

// === Interner ===

/// Reference-counted shared strings many sessions repeat (issuer, connection,
/// tenant, group ids), addressed by a `u32` id: 4 bytes per group per session
/// instead of a 16-byte `Arc<str>` or a 60-byte `String`. An id is reused
/// only after its count drops to zero; a count that reaches `u32::MAX`
/// (duplicates in a provider's groups claim can add many per session) keeps
/// its string for the life of the store rather than wrap.
#[derive(Default)]
pub(crate) struct Interner {
    ids: HashMap<Arc<str>, u32>,
    slots: Vec<(Option<Arc<str>>, u32)>,
    free: Vec<u32>,
}

impl Interner {
    fn acquire(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            if let Some(slot) = self.slots.get_mut(id as usize) {
                // At `u32::MAX` the count stops and the string stays for
                // good (`release`): a count that wrapped would free a string
                // sessions still hold, and its id would name the next one.
                slot.1 = slot.1.saturating_add(1);
            }
            return id;
        }
        let text: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = (Some(text.clone()), 1);
                id
            }
            None => {
                // Ids stay below NO_STRING: billions of distinct strings would
                // exhaust memory long before.
                let id = u32::try_from(self.slots.len()).unwrap_or(NO_STRING - 1);
                self.slots.push((Some(text.clone()), 1));
                id
            }
        };
        self.ids.insert(text, id);
        id
    }

    fn release(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        if slot.1 == u32::MAX {
            // Saturated: references were lost count of; never freed.
            return;
        }
        slot.1 = slot.1.saturating_sub(1);
        if slot.1 == 0 {
            if let Some(text) = slot.0.take() {
                self.ids.remove(&text);
                self.free.push(id);
            }
        }
    }

    fn get(&self, id: u32) -> Option<&str> {
        self.slots.get(id as usize)?.0.as_deref()
    }

    /// The string itself, shared: a session holding it keeps it alive on
    /// its own, whatever the interner releases meanwhile.
    fn shared(&self, id: u32) -> Option<Shared> {
        self.slots.get(id as usize)?.0.clone()
    }

    /// The id of `s`, if some live entry holds it.
    fn id_of(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// Distinct strings held.
    fn len(&self) -> usize {
        self.ids.len()
    }
}

fn read(l: &RwLock<Interner>) -> RwLockReadGuard<'_, Interner> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(l: &RwLock<Interner>) -> RwLockWriteGuard<'_, Interner> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

// === Indexes ===

#[derive(Clone, Copy)]
enum Which {
    User,
    Sid,
}

#[derive(Default)]
struct Indexes {
    hasher: RandomState,
    users: HashMap<u64, Slot, BuildHasherDefault<PassThrough>>,
    sids: HashMap<u64, Slot, BuildHasherDefault<PassThrough>>,
}

/// The entries under one hash: almost always exactly one.
enum Slot {
    One(Weak<Packed>),
    /// A boxed slice, so a slot stays two words.
    Many(Box<[Weak<Packed>]>),
}

impl Indexes {
    fn add(&mut self, packed: &Arc<Packed>) {
        let user = self.hasher.hash_one((packed.connection, packed.user_id()));
        add_to(&mut self.users, user, Arc::downgrade(packed));
        if let Some(sid) = packed.sid() {
            let sid = self.hasher.hash_one((packed.connection, sid));
            add_to(&mut self.sids, sid, Arc::downgrade(packed));
        }
    }

    fn remove(&mut self, packed: &Arc<Packed>) {
        let user = self.hasher.hash_one((packed.connection, packed.user_id()));
        remove_from(&mut self.users, user, packed);
        if let Some(sid) = packed.sid() {
            let sid = self.hasher.hash_one((packed.connection, sid));
            remove_from(&mut self.sids, sid, packed);
        }
    }

    /// Entries indexed under (`connection`'s interned id, `value`).
    fn find(&self, which: Which, connection: u32, value: &str) -> Vec<Arc<Packed>> {
        let map = match which {
            Which::User => &self.users,
            Which::Sid => &self.sids,
        };
        match map.get(&self.hasher.hash_one((connection, value))) {
            None => Vec::new(),
            Some(Slot::One(w)) => w.upgrade().into_iter().collect(),
            Some(Slot::Many(ws)) => ws.iter().filter_map(Weak::upgrade).collect(),
        }
    }
}

fn add_to(
    map: &mut HashMap<u64, Slot, BuildHasherDefault<PassThrough>>,
    key: u64,
    w: Weak<Packed>,
) {
    match map.remove(&key) {
        None => {
            map.insert(key, Slot::One(w));
        }
        Some(Slot::One(old)) => {
            map.insert(key, Slot::Many(Box::new([old, w])));
        }
        Some(Slot::Many(v)) => {
            // Drop references whose session is gone without a notification
            // (cannot happen with moka's listener, but keeps the list bounded).
            let mut v: Vec<Weak<Packed>> = v.into_vec();
            v.retain(|x| x.strong_count() > 0);
            v.push(w);
            map.insert(key, Slot::Many(v.into_boxed_slice()));
        }
    }
}

fn remove_from(
    map: &mut HashMap<u64, Slot, BuildHasherDefault<PassThrough>>,
    key: u64,
    packed: &Arc<Packed>,
) {
    let target = Arc::as_ptr(packed);
    let Some(slot) = map.get_mut(&key) else {
        return;
    };
    let empty = match slot {
        Slot::One(w) => w.as_ptr() == target,
        Slot::Many(v) => {
            let mut rest: Vec<Weak<Packed>> =
                v.iter().filter(|w| w.as_ptr() != target).cloned().collect();
            match rest.len() {
                0 => true,
                1 => {
                    if let Some(last) = rest.pop() {
                        *slot = Slot::One(last);
                    }
                    false
                }
                _ => {
                    *slot = Slot::Many(rest.into_boxed_slice());
                    false
                }
            }
        }
    };
    if empty {
        map.remove(&key);
    }
}

/// The keys are already keyed SipHash outputs.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests;
