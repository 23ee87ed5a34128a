//! Each proxy thread's memo of the sessions it served last (see "Per-thread
//! memo" in the module docs of `memory`).
//!
//! A hit answers `get` with no cache lookup, no lock and one clock read. It is
//! only a hit while all of these hold:
//! - the entry is for this very store (tests run many stores on one thread);
//! - the packed entry it came from has not ended: the cache's eviction
//!   listener marks a packed entry ended, at once for a delete, a revocation
//!   or a replacement by a refreshed session, at the cache's next maintenance
//!   for expiry and eviction;
//! - it was confirmed by the cache less than `fresh` ago, and the session's
//!   absolute end has not come (the deadline is the earlier of the two).
//!
//! Only the cache's reads extend the idle timeout, so a session can end up to
//! `fresh` (at most a second, an eighth of the idle timeout when that is
//! shorter) earlier than its last request plus the idle timeout.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Packed, Session, SessionId};
use crate::per_thread::Owned;

/// Slots per thread: an entry goes in the slot its session id's first
/// bytes name, replacing whatever was there. With many users almost every
/// read is of a session this thread has not served lately; replacing one
/// slot costs the same each time, where a map emptied when full paid a
/// hash insert per read and, now and then, a sweep freeing every entry and
/// the session allocations their `Weak` handles had kept.
pub(super) const CAPACITY: usize = 512;

/// The longest a memo entry answers without the cache.
const MAX_FRESH: Duration = Duration::from_secs(1);

/// How long an entry may answer for a store with this idle timeout.
pub(super) fn freshness(idle_timeout: Duration) -> Duration {
    MAX_FRESH.min(idle_timeout / 8)
}

/// Both references are weak: an ended session's interned strings, and its
/// unpacked copy with its tokens, must not wait for this thread to come back
/// to its memo. The store's hot copies keep live sessions' copies alive.
struct Entry {
    id: SessionId,
    packed: Weak<Packed>,
    session: Weak<Session>,
    until: Instant,
}

/// One thread's entries for one store: empty until the first `put`, then
/// [`CAPACITY`] slots. Session ids are 256 random bits made by the store,
/// and only ids found in the store are put; a slot answers only for the
/// id it holds, compared in full.
#[derive(Default)]
struct Entries {
    slots: Vec<Option<Entry>>,
}

impl Entries {
    fn index(id: &SessionId) -> usize {
        let b = id.as_bytes();
        let word = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        (word % CAPACITY as u64) as usize
    }

    fn get(&self, id: &SessionId) -> Option<&Entry> {
        self.slots
            .get(Self::index(id))?
            .as_ref()
            .filter(|e| e.id == *id)
    }

    /// Puts `entry` in its slot; answers what the slot held.
    fn put(&mut self, entry: Entry) -> Option<Entry> {
        if self.slots.is_empty() {
            self.slots = (0..CAPACITY).map(|_| None).collect();
        }
        let i = Self::index(&entry.id);
        self.slots.get_mut(i)?.replace(entry)
    }

    fn remove(&mut self, id: &SessionId) -> Option<Entry> {
        let slot = self.slots.get_mut(Self::index(id))?;
        if slot.as_ref().is_some_and(|e| e.id == *id) {
            slot.take()
        } else {
            None
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}

thread_local! {
    static MEMO: RefCell<Owned<Entries>> = RefCell::new(Owned::default());
}

/// The memoized session for `id` in store `store`, if still valid.
pub(super) fn get(store: u64, id: &SessionId) -> Option<Arc<Session>> {
    MEMO.try_with(|m| {
        let m = m.borrow();
        let e = m.of(store)?.get(id)?;
        // Acquire pairs with the listener's Release: once a delete returned,
        // every thread sees the flag.
        let live = e
            .packed
            .upgrade()
            .is_some_and(|p| !p.ended.load(Ordering::Acquire))
            && Instant::now() < e.until;
        live.then(|| e.session.upgrade()).flatten()
    })
    .ok()
    .flatten()
}

/// Remembers `session`, just confirmed by the cache as `packed`.
pub(super) fn put(
    store: u64,
    id: &SessionId,
    packed: &Arc<Packed>,
    session: &Arc<Session>,
    fresh: Duration,
) {
    // Exact time to the absolute end (the stored end is whole seconds).
    let Some(left) = Duration::from_secs(u64::from(packed.expires_at)).checked_sub(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    ) else {
        return;
    };
    let entry = Entry {
        id: id.clone(),
        packed: Arc::downgrade(packed),
        session: Arc::downgrade(session),
        until: Instant::now() + fresh.min(left),
    };
    let old = MEMO.try_with(|m| m.borrow_mut().for_owner(store).put(entry));
    // Outside the borrow: dropping may free an ended session's allocation.
    drop(old);
}

/// Forgets `id` on this thread (the cache no longer has it).
pub(super) fn forget(store: u64, id: &SessionId) {
    let old = MEMO.try_with(|m| m.borrow_mut().of_mut(store).and_then(|e| e.remove(id)));
    drop(old);
}

/// Entries on this thread (tests).
#[cfg(test)]
pub(super) fn len(store: u64) -> usize {
    MEMO.with(|m| m.borrow().of(store).map_or(0, Entries::len))
}
