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
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Packed, Session, SessionId};
use crate::per_thread::{FirstWord, Owned};

/// Entries per thread at most; a full memo is emptied and refilled.
pub(super) const CAPACITY: usize = 256;

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
    packed: Weak<Packed>,
    session: Weak<Session>,
    until: Instant,
}

/// Session ids are 256 random bits and only ids found in the store are
/// inserted (`FirstWord`).
type Entries = HashMap<SessionId, Entry, BuildHasherDefault<FirstWord>>;

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
        packed: Arc::downgrade(packed),
        session: Arc::downgrade(session),
        until: Instant::now() + fresh.min(left),
    };
    let _ = MEMO.try_with(|m| {
        let mut m = m.borrow_mut();
        let entries = m.for_owner(store);
        if entries.len() >= CAPACITY && !entries.contains_key(id) {
            entries.clear();
        }
        entries.insert(id.clone(), entry);
    });
}

/// Forgets `id` on this thread (the cache no longer has it).
pub(super) fn forget(store: u64, id: &SessionId) {
    let _ = MEMO.try_with(|m| {
        if let Some(entries) = m.borrow_mut().of_mut(store) {
            entries.remove(id);
        }
    });
}

/// Entries on this thread (tests).
#[cfg(test)]
pub(super) fn len(store: u64) -> usize {
    MEMO.with(|m| m.borrow().of(store).map_or(0, HashMap::len))
}
