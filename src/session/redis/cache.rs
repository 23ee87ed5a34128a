//! The local cache in front of Redis: hot sessions are answered from here
//! without any Redis command, for at most the cache TTL (a few seconds).
//!
//! A read that misses fetches from Redis and then inserts. An invalidation
//! may arrive between the fetch and the insert; the insert must not put the
//! old session back. Every eviction bumps an epoch (one of [`STRIPES`],
//! chosen by the session hash; clearing bumps a global one); a reader notes
//! the epochs before its fetch and inserts only if neither moved since
//! (checked again after inserting, which closes the window between check
//! and insert). Stripes keep one session's invalidation from stopping the
//! caching of every other session read at the same moment.
//!
//! # Per-thread memo
//!
//! A hit in the cache costs the SHA-256 of the id (the cache key) and a
//! moka read. Each thread also remembers the sessions it read from the
//! cache last (`memo`, by session id): a memo entry answers without either
//! while the epochs it noted before its cache read are unchanged, the
//! cache entry it came from is still alive, and its deadline (the cache
//! entry's end of life, the session's absolute end) has not passed. An
//! eviction bumps the epoch both before and after removing the entry from
//! the cache, so a memo entry made from a copy read before the removal
//! noted an epoch that the second bump makes stale: an invalidation takes
//! effect on every thread with its next request, as without the memo.
//!
//! # Kept copies (revalidation)
//!
//! An entry stays in the cache past the cache TTL until it has gone unread
//! for `keep` (a dozen TTLs, at most the idle timeout), with the exact
//! record bytes it was decoded from. A kept entry past its TTL is never
//! served as it is: the lookup reports it [`Stale`] and the store reads
//! Redis (`GETEX`) as for a miss (unless a sweep confirms it, below). When
//! Redis answers the very same bytes, the decoded copy is served again and
//! marked confirmed (fresh for another TTL) in place: no decode, no
//! allocation, no cache insert. A changed record is decoded and replaces
//! it; an absent one signs the session out and drops it. Evictions and
//! clearing drop kept entries with the rest. Memory: the cache holds at
//! most `capacity` entries, each a decoded session, its record, and once
//! forwarded, the identity headers of its first route (`Session::derived`:
//! about 1.5 KB with 20 groups, more with tokens in headers).
//!
//! # Confirmed by the change generations
//!
//! A kept entry past its TTL is also served again, without any `GETEX`,
//! when the latest sweep of the change generations (`generations`) read the
//! same value in its slot as was noted before the `GETEX` that read it: no
//! session of that slot changed in Redis in between. It is then fresh for
//! a TTL from when that sweep was sent, never past the idle timeout its
//! `GETEX` set in Redis, and never past its `reread_at` (half to all of
//! `reread` after that `GETEX`: an eighth of the idle timeout, at most five
//! minutes): an active session is still read with `GETEX` that often, which
//! extends its idle time in Redis. Everything
//! else above holds unchanged: memos, epochs, evictions, and no copy
//! answering by itself without the subscription.
//!
//! # Without the invalidation subscription
//!
//! While the subscription is down (`subscriber`), every entry reads as
//! [`Stale`]: each read asks Redis, so a logout or revocation on another
//! replica is seen at once as long as Redis answers. Only when the `GETEX`
//! fails (Redis unreachable) does a copy within its TTL answer, as it would
//! have with the subscription up: an outage of Redis does not sign everyone
//! out at once, and no copy outlives its TTL.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::sync::Cache;

use super::generations::Sweep;
use super::keys::{session_hash, Hash};
use crate::per_thread::{FirstWord, Owned};
use crate::session::model::Session;
use crate::session::store::SessionId;

/// Epoch stripes (by the first byte of the session hash).
const STRIPES: usize = 64;

/// The epochs a reader saw before fetching.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Seen(u64, u64);

/// A cached session, the record it was decoded from, and when Redis last
/// answered that record (its time to live counts from then).
pub(super) struct Entry {
    session: Arc<Session>,
    record: Box<[u8]>,
    /// Nanoseconds from [`Local::origin`] to the end of its freshness (the
    /// last confirmation plus the TTL).
    fresh_until: AtomicU64,
    /// The generation of the session's slot noted before the `GETEX` that
    /// read (or confirmed) `record`; 0: none (see `generations`).
    tag: AtomicU64,
    /// Until when Redis keeps the record at the latest (the idle timeout
    /// from that `GETEX`): no sweep confirms the copy past it.
    redis_until: AtomicU64,
    /// No sweep confirms the copy past this either: by then a `GETEX`
    /// reads it again and so extends its idle time in Redis. Somewhere in
    /// the second half of `Local::reread` after the last `GETEX`, so copies
    /// read together (a restart, a cleared cache) are not read again
    /// together.
    reread_at: AtomicU64,
}

/// What a `GETEX` proves about the record it read (see `generations`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Proof {
    /// The latest sweep's value of the session's slot, noted before the
    /// `GETEX` was sent; 0: none.
    pub(super) tag: u64,
    /// When the `GETEX` was sent plus the idle timeout it set.
    pub(super) redis_until: u64,
}

impl Proof {
    /// No generation noted (tests).
    #[cfg(test)]
    pub(super) const NONE: Proof = Proof {
        tag: 0,
        redis_until: u64::MAX,
    };
}

/// A kept entry past its TTL: served again only once Redis answers the
/// same record (see the module docs).
pub(super) struct Stale(Arc<Entry>);

impl Stale {
    /// The decoded copy, when `record` is the one it was decoded from.
    pub(super) fn reuse(&self, record: &[u8]) -> Option<Arc<Session>> {
        (*self.0.record == *record).then(|| self.0.session.clone())
    }

    /// The decoded copy (see [`Local::still_fresh`] for when it may answer
    /// without Redis).
    pub(super) fn session(&self) -> Arc<Session> {
        self.0.session.clone()
    }
}

/// What a lookup that could not answer found.
pub(super) struct Miss {
    /// The session hash, when it was computed.
    pub(super) hash: Option<Hash>,
    /// A kept entry past its TTL.
    pub(super) stale: Option<Stale>,
}

/// A cache lookup.
enum Lookup {
    Fresh(Arc<Entry>),
    Stale(Arc<Entry>),
    Absent,
}

pub(super) struct Local {
    cache: Option<Cache<Hash, Arc<Entry>>>,
    /// How long an entry is served after Redis answered it.
    ttl: Duration,
    /// About how often a `GETEX` re-reads a copy that sweeps keep
    /// confirming (see `Entry::reread_at`).
    reread: Duration,
    /// What `Entry::checked` counts from.
    origin: Instant,
    /// This cache in the per-thread memos.
    number: u64,
    epoch: AtomicU64,
    stripes: [AtomicU64; STRIPES],
    /// True while the invalidation subscription is up (see `subscriber`).
    subscribed: AtomicBool,
    /// Invalidation messages handled (tests wait for one to land).
    messages: AtomicU64,
    /// The latest read of the change generations (see `generations`).
    sweep: RwLock<Option<Arc<Sweep>>>,
    /// Set when the server cannot write the generations with a session.
    generations_off: AtomicBool,
}

impl Local {
    /// `ttl` zero or `capacity` zero: no cache (every read goes to Redis).
    /// Entries are kept up to `keep` (at least `ttl`) for revalidation.
    pub(super) fn new(ttl: Duration, keep: Duration, capacity: u64) -> Local {
        let cache = (!ttl.is_zero() && capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(keep.max(ttl))
                .build()
        });
        Local {
            cache,
            ttl,
            reread: keep.max(ttl),
            origin: Instant::now(),
            number: crate::per_thread::owner_number(),
            epoch: AtomicU64::new(0),
            stripes: std::array::from_fn(|_| AtomicU64::new(0)),
            subscribed: AtomicBool::new(false),
            messages: AtomicU64::new(0),
            sweep: RwLock::new(None),
            generations_off: AtomicBool::new(false),
        }
    }

    /// Sets how often, at most, a copy sweeps keep confirming is read
    /// again with `GETEX` (default `keep`, never under the TTL; an entry in
    /// use stays past `keep`): that `GETEX` extends its idle
    /// time in Redis, so this bounds how early an active session's idle
    /// timeout can end it.
    pub(super) fn set_reread(&mut self, reread: Duration) {
        self.reread = reread.max(self.ttl);
    }

    /// False once the server refused a script naming the generations key
    /// with a session's (a sharded server behind one address): then no
    /// sweep confirms anything, and writes leave the key out.
    pub(super) fn generations_usable(&self) -> bool {
        !self.generations_off.load(Ordering::Acquire)
    }

    /// The server cannot write the generations with a session (see
    /// [`generations_usable`](Self::generations_usable)).
    pub(super) fn generations_unusable(&self) {
        if !self.generations_off.swap(true, Ordering::AcqRel) {
            tracing::info!("the Redis server refuses scripts over several hash slots (a sharded database behind one address?); each cached session is read again after redis_cache_ttl");
        }
        self.store_sweep(None);
    }

    /// False when there is no cache (every read goes to Redis).
    pub(super) fn is_enabled(&self) -> bool {
        self.cache.is_some()
    }

    /// How long a confirmed copy is served.
    pub(super) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The latest sweep of the change generations (`None`: none usable).
    pub(super) fn set_sweep(&self, sweep: Option<Sweep>) {
        self.store_sweep(sweep.map(Arc::new));
        // Checked after storing: `generations_unusable` racing with this
        // store clears it after, or is seen here.
        if !self.generations_usable() {
            self.store_sweep(None);
        }
    }

    fn store_sweep(&self, sweep: Option<Arc<Sweep>>) {
        match self.sweep.write() {
            Ok(mut s) => *s = sweep,
            Err(poisoned) => *poisoned.into_inner() = sweep,
        }
    }

    fn latest_sweep(&self) -> Option<Arc<Sweep>> {
        match self.sweep.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// What a `GETEX` of `h` about to be sent will prove, with
    /// `idle_timeout` as the TTL it sets in Redis.
    pub(super) fn proof(&self, h: &Hash, idle_timeout: Duration) -> Proof {
        let tag = self.latest_sweep().map_or(0, |s| s.value(h));
        let idle = u64::try_from(idle_timeout.as_nanos()).unwrap_or(u64::MAX);
        Proof {
            tag,
            redis_until: self.clock().saturating_add(idle),
        }
    }

    /// True when the latest sweep read the very generation `e`'s record was
    /// tagged with: nothing of its slot changed in Redis in between, so the
    /// copy is fresh for a TTL from when that sweep was sent (never past
    /// the record's own end in Redis). Marks it so and answers whether it
    /// is fresh now.
    fn confirmed_by_sweep(&self, h: &Hash, e: &Entry, now: u64) -> bool {
        let tag = e.tag.load(Ordering::Acquire);
        if tag == 0 {
            return false;
        }
        let Some(sweep) = self.latest_sweep() else {
            return false;
        };
        if sweep.value(h) != tag {
            return false;
        }
        let ttl = u64::try_from(self.ttl.as_nanos()).unwrap_or(u64::MAX);
        let until = sweep
            .sent
            .saturating_add(ttl)
            .min(e.redis_until.load(Ordering::Acquire))
            .min(e.reread_at.load(Ordering::Acquire));
        if now >= until {
            return false;
        }
        e.fresh_until.fetch_max(until, Ordering::AcqRel);
        true
    }

    /// The cached session while fresh, unless it reached its absolute end.
    #[cfg(test)]
    pub(super) fn get(&self, h: &Hash, now: u64) -> Option<Arc<Session>> {
        match self.lookup(h, now) {
            Lookup::Fresh(e) => Some(e.session.clone()),
            _ => None,
        }
    }

    /// Nanoseconds since `origin` (saturating: centuries away).
    pub(super) fn clock(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// A TTL from now, as an `Entry::fresh_until`.
    fn deadline(&self) -> u64 {
        let ttl = u64::try_from(self.ttl.as_nanos()).unwrap_or(u64::MAX);
        self.clock().saturating_add(ttl)
    }

    /// A `reread_at` for a copy Redis answered now.
    fn reread_deadline(&self) -> u64 {
        let reread = u64::try_from(self.reread.as_nanos()).unwrap_or(u64::MAX);
        let spread = rand::random::<u64>() % (reread / 2).max(1);
        self.clock()
            .saturating_add(reread / 2)
            .saturating_add(spread)
    }

    /// When `e`'s last confirmation stops counting.
    fn fresh_until(&self, e: &Entry) -> Option<Instant> {
        self.origin
            .checked_add(Duration::from_nanos(e.fresh_until.load(Ordering::Acquire)))
    }

    /// How many evictions of `h`'s stripe began and ended (two per
    /// eviction): lets a test wait for an invalidation message to land.
    #[cfg(test)]
    pub(super) fn stripe_count(&self, h: &Hash) -> u64 {
        self.stripe(h).load(Ordering::Acquire)
    }

    /// Makes `h`'s entry stale as if its TTL had passed, keeping what a
    /// sweep may confirm it with (its tag).
    #[cfg(test)]
    pub(super) fn age(&self, h: &Hash) -> bool {
        self.aged(h).is_some()
    }

    /// `h`'s entry made stale as by [`age`](Self::age) (memos made from it
    /// end with it, as they would: their deadline is its freshness).
    #[cfg(test)]
    fn aged(&self, h: &Hash) -> Option<Arc<Entry>> {
        let e = self.cache.as_ref().and_then(|c| c.get(h));
        self.stripe(h).fetch_add(2, Ordering::AcqRel);
        e.inspect(|e| e.fresh_until.store(0, Ordering::Release))
    }

    /// The re-read interval (tests).
    #[cfg(test)]
    pub(super) fn reread(&self) -> Duration {
        self.reread
    }

    /// When the latest sweep was sent (tests wait for one).
    #[cfg(test)]
    pub(super) fn sweep_sent(&self) -> Option<u64> {
        self.latest_sweep().map(|s| s.sent)
    }

    /// Makes `h`'s entry stale as if its TTL had passed and no sweep could
    /// confirm it.
    #[cfg(test)]
    pub(super) fn make_stale(&self, h: &Hash) -> bool {
        self.aged(h)
            .map(|e| e.tag.store(0, Ordering::Release))
            .is_some()
    }

    fn lookup(&self, h: &Hash, now: u64) -> Lookup {
        let Some(cache) = self.cache.as_ref() else {
            return Lookup::Absent;
        };
        let Some(e) = cache.get(h) else {
            return Lookup::Absent;
        };
        if e.session.expires_at <= now {
            cache.invalidate(h);
            return Lookup::Absent;
        }
        // Without the invalidation subscription no copy answers by itself
        // (SPEC 5.2: invalidation reaches every replica within one second,
        // and messages sent meanwhile are lost): every read asks Redis, and a
        // copy within its TTL answers only when Redis cannot
        // ([`still_fresh`](Self::still_fresh)).
        if !self.is_subscribed() {
            return Lookup::Stale(e);
        }
        let clock = self.clock();
        if clock < e.fresh_until.load(Ordering::Acquire) || self.confirmed_by_sweep(h, &e, clock) {
            Lookup::Fresh(e)
        } else {
            Lookup::Stale(e)
        }
    }

    /// True while `stale` is within its TTL: what a read may still serve
    /// when Redis cannot be reached (a Redis outage must not sign out every
    /// user at once; a copy within its TTL is what the cache would have
    /// served anyway while the subscription was up).
    pub(super) fn still_fresh(&self, stale: &Stale) -> bool {
        self.clock() < stale.0.fresh_until.load(Ordering::Acquire)
    }

    /// The cached session of `id`: from this thread's memo when it is
    /// still valid (see the module docs), else from the cache when fresh
    /// (and then remembered). A miss tells the session hash when it had to
    /// compute it, and a kept entry past its TTL. A miss is noted for
    /// [`take_miss`](Self::take_miss) (the `get_ready` then `get` pattern).
    pub(super) fn get_id(&self, id: &SessionId, now: u64) -> Result<Arc<Session>, Miss> {
        self.read_id(id, now, true)
    }

    /// [`get_id`](Self::get_id) for a caller that handles its own miss:
    /// nothing is left noted behind it.
    pub(super) fn get_id_unnoted(&self, id: &SessionId, now: u64) -> Result<Arc<Session>, Miss> {
        self.read_id(id, now, false)
    }

    fn read_id(&self, id: &SessionId, now: u64, note: bool) -> Result<Arc<Session>, Miss> {
        if self.cache.is_none() {
            return Err(Miss {
                hash: None,
                stale: None,
            });
        }
        if let Some(s) = memo::get(self, id) {
            return Ok(s);
        }
        let h = session_hash(id);
        // Noted before the cache read (see the module docs).
        let seen = self.epoch(&h);
        let stale = match self.lookup(&h, now) {
            Lookup::Fresh(e) => {
                memo::put(self, id, stripe_of(&h), seen, &e);
                return Ok(e.session.clone());
            }
            Lookup::Stale(e) => Some(e),
            Lookup::Absent => None,
        };
        if note {
            memo::note_miss(self, id, &h, stale.as_ref());
        }
        Err(Miss {
            hash: Some(h),
            stale: stale.map(Stale),
        })
    }

    /// The hash of `id` when the last lookup on this thread missed it just
    /// now (a `get_ready` miss followed by `get`: one cache read, one hash).
    pub(super) fn take_miss(&self, id: &SessionId) -> Option<(Hash, Option<Stale>)> {
        memo::take_miss(self, id)
    }

    fn stripe(&self, h: &Hash) -> &AtomicU64 {
        &self.stripes[stripe_of(h)]
    }

    /// The epochs to pass to [`insert`](Self::insert) after fetching `h`.
    pub(super) fn epoch(&self, h: &Hash) -> Seen {
        self.epoch_of(stripe_of(h))
    }

    fn epoch_of(&self, stripe: usize) -> Seen {
        Seen(
            self.epoch.load(Ordering::Acquire),
            self.stripes
                .get(stripe)
                .map_or(u64::MAX, |s| s.load(Ordering::Acquire)),
        )
    }

    /// Caches `s`, decoded from `record` fetched when the epoch was
    /// `seen`, unless something was evicted since or invalidations are not
    /// being received.
    pub(super) fn insert(
        &self,
        h: Hash,
        s: Arc<Session>,
        record: Box<[u8]>,
        seen: Seen,
        proof: Proof,
    ) {
        let Some(cache) = &self.cache else { return };
        if !self.subscribed.load(Ordering::Acquire) || self.epoch(&h) != seen {
            return;
        }
        let entry = Entry {
            session: s,
            record,
            fresh_until: AtomicU64::new(self.deadline()),
            tag: AtomicU64::new(proof.tag),
            redis_until: AtomicU64::new(proof.redis_until),
            reread_at: AtomicU64::new(self.reread_deadline()),
        };
        cache.insert(h, Arc::new(entry));
        if self.epoch(&h) != seen || !self.subscribed.load(Ordering::Acquire) {
            cache.invalidate(&h);
        }
    }

    /// Redis answered `stale`'s very record again, read when the epoch was
    /// `seen`: fresh for another TTL, on the same conditions as
    /// [`insert`](Self::insert). An entry no longer in the cache (evicted,
    /// replaced) is not put back: marking it changes nothing anyone reads.
    pub(super) fn confirm(&self, h: &Hash, stale: &Stale, seen: Seen, proof: Proof) {
        let Some(cache) = &self.cache else { return };
        if !self.subscribed.load(Ordering::Acquire) || self.epoch(h) != seen {
            return;
        }
        let e = &stale.0;
        // Any `GETEX` that answered these bytes tags them truly: the last
        // one to store its tag wins, whichever it is.
        e.tag.store(proof.tag, Ordering::Release);
        e.redis_until.fetch_max(proof.redis_until, Ordering::AcqRel);
        // This GETEX extended the record's idle time: sweeps may confirm
        // the copy until the next re-read is due.
        e.reread_at
            .fetch_max(self.reread_deadline(), Ordering::AcqRel);
        e.fresh_until.store(self.deadline(), Ordering::Release);
        if self.epoch(h) != seen || !self.subscribed.load(Ordering::Acquire) {
            cache.invalidate(h);
        }
    }

    /// Drops `h`'s entry without an epoch bump: for a kept entry whose
    /// record is gone from Redis (removing never serves anything more).
    pub(super) fn forget(&self, h: &Hash) {
        if let Some(cache) = &self.cache {
            cache.invalidate(h);
        }
    }

    /// Bumps before removing (an insert racing with it sees the change)
    /// and after (a memo entry made from a copy read before the removal
    /// noted an older epoch).
    pub(super) fn evict(&self, h: &Hash) {
        self.stripe(h).fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.cache {
            cache.invalidate(h);
        }
        self.stripe(h).fetch_add(1, Ordering::AcqRel);
    }

    /// Bumps before and after, as [`evict`](Self::evict).
    pub(super) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn set_subscribed(&self, up: bool) {
        self.subscribed.store(up, Ordering::Release);
        if !up {
            // An insert racing with the drop re-checks `subscribed` after
            // inserting; bump the epoch so it also sees a change.
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    pub(super) fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Counts an invalidation message whose evictions are done.
    pub(super) fn message_handled(&self) {
        self.messages.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn messages_handled(&self) -> u64 {
        self.messages.load(Ordering::Acquire)
    }

    pub(super) fn len(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }
}

fn stripe_of(h: &Hash) -> usize {
    usize::from(h[0]) % STRIPES
}

/// Each thread's memo of the sessions it read from the cache last.
mod memo {
    use super::*;

    /// Entries per thread at most; a full memo is emptied and refilled.
    pub(super) const CAPACITY: usize = 256;

    /// Weak: an ended session (and its tokens) must not wait for this
    /// thread to come back to its memo; the cache holds live ones.
    struct Memo {
        session: Weak<Session>,
        stripe: usize,
        seen: Seen,
        until: Instant,
    }

    /// Session ids are 256 random bits and only ids found in the cache are
    /// inserted (`FirstWord`).
    type Entries = HashMap<SessionId, Memo, BuildHasherDefault<FirstWord>>;

    thread_local! {
        static MEMO: RefCell<Owned<Entries>> = RefCell::new(Owned::default());
        /// The last miss: (cache, session id, its hash, a kept entry past
        /// its TTL). Weak, as the memo.
        static MISS: RefCell<Option<LastMiss>> = const { RefCell::new(None) };
    }

    type LastMiss = (u64, SessionId, Hash, Option<Weak<Entry>>);

    pub(super) fn note_miss(local: &Local, id: &SessionId, h: &Hash, stale: Option<&Arc<Entry>>) {
        let stale = stale.map(Arc::downgrade);
        let _ = MISS.try_with(|m| *m.borrow_mut() = Some((local.number, id.clone(), *h, stale)));
    }

    pub(super) fn take_miss(local: &Local, id: &SessionId) -> Option<(Hash, Option<Stale>)> {
        let last = MISS.try_with(|m| m.borrow_mut().take()).ok()??;
        (last.0 == local.number && last.1 == *id)
            .then(|| (last.2, last.3.and_then(|w| w.upgrade()).map(Stale)))
    }

    pub(super) fn get(local: &Local, id: &SessionId) -> Option<Arc<Session>> {
        MEMO.try_with(|m| {
            let m = m.borrow();
            let e = m.of(local.number)?.get(id)?;
            let valid = local.epoch_of(e.stripe) == e.seen && Instant::now() < e.until;
            valid.then(|| e.session.upgrade()).flatten()
        })
        .ok()
        .flatten()
    }

    /// Remembers `e`, read from the cache after noting `seen`.
    pub(super) fn put(local: &Local, id: &SessionId, stripe: usize, seen: Seen, e: &Entry) {
        // Exact time to the absolute end (the stored end is whole seconds).
        let Some(left) = Duration::from_secs(e.session.expires_at).checked_sub(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        ) else {
            return;
        };
        let Some(until) = local.fresh_until(e) else {
            return;
        };
        let until = until.min(Instant::now() + left);
        let memo = Memo {
            session: Arc::downgrade(&e.session),
            stripe,
            seen,
            until,
        };
        let _ = MEMO.try_with(|m| {
            let mut m = m.borrow_mut();
            let entries = m.for_owner(local.number);
            if entries.len() >= CAPACITY && !entries.contains_key(id) {
                entries.clear();
            }
            entries.insert(id.clone(), memo);
        });
    }
}

#[cfg(test)]
mod tests;
