//! The store's front index (see "Front index" in the module docs of
//! `memory`): every stored session's id to a weak handle of its packed
//! entry, so a read within `slack` of the cache's last confirmation finds
//! the entry with one hash probe instead of moka's lookup and read
//! bookkeeping.
//!
//! Keyed by the id's first 8 bytes (the ids are 256 random bits the store
//! made); an entry answers only for the id its packed entry holds, compared
//! in full, so two ids sharing a prefix each fall back to the cache. The
//! handles are weak: an entry the cache dropped without the listener
//! removing it here (a race with an insert, see `insert`) keeps at most the
//! packed entry's allocation, never its text or tokens.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock, Weak};

use super::{Packed, PassThrough, SessionId};

/// Shards: two proxy threads (or sixteen) rarely want the same lock. 80
/// and not 64: a shard's table doubles past 7/8 full, and one million
/// sessions (the default `memory_max_entries`) in 80 shards is 12,500 per
/// shard, under the 14,336 a 16,384-slot table takes; in 64 shards every
/// table had doubled to 32,768 slots (about 36 MiB where this is 22).
const SHARDS: usize = 80;

type Map = HashMap<u64, Weak<Packed>, BuildHasherDefault<PassThrough>>;

pub(super) struct Front {
    shards: Box<[RwLock<Map>]>,
}

/// The shard and the key of `id`: disjoint bytes of it.
fn place(id: &SessionId) -> (usize, u64) {
    let b = id.as_bytes();
    let key = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    // Two bytes: 65,536 values spread evenly enough over 80 shards.
    (usize::from(u16::from_le_bytes([b[8], b[9]])) % SHARDS, key)
}

impl Front {
    pub(super) fn new() -> Front {
        Front {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
        }
    }

    /// The live packed entry indexed for exactly `id`, if any.
    pub(super) fn get(&self, id: &SessionId) -> Option<Arc<Packed>> {
        let (shard, key) = place(id);
        let found = self.shards[shard]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .and_then(Weak::upgrade);
        // Outside the lock: a handle dropped here may be the last one, and
        // `Packed`'s drop takes the interner's lock.
        found.filter(|p| p.id == *id)
    }

    /// Indexes `packed` for `id`. An entry the cache evicted meanwhile
    /// (its listener marks it ended before removing it here, so it may have
    /// run before this insert) is taken out again at once.
    pub(super) fn insert(&self, id: &SessionId, packed: &Arc<Packed>) {
        let (shard, key) = place(id);
        let old = self.shards[shard]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::downgrade(packed));
        drop(old);
        if packed.ended.load(Ordering::Acquire) {
            self.remove(id, packed);
        }
    }

    /// Removes `id`'s entry if it is `packed` (a newer entry stored under
    /// the same id stays), or one whose packed entry is gone.
    pub(super) fn remove(&self, id: &SessionId, packed: &Arc<Packed>) {
        let (shard, key) = place(id);
        let mut map = self.shards[shard]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&key)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(packed)) || w.strong_count() == 0)
        {
            map.remove(&key);
        }
    }

    /// Removes `id`'s entry if its packed entry is gone or ended (the
    /// cache no longer has `id`); another id's entry under the same key stays.
    pub(super) fn forget(&self, id: &SessionId) {
        let (shard, key) = place(id);
        let mut map = self.shards[shard]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let held = map.get(&key).map(Weak::upgrade);
        let stale = match &held {
            None => false,
            Some(None) => true,
            Some(Some(p)) => p.id == *id && p.ended.load(Ordering::Acquire),
        };
        if stale {
            map.remove(&key);
        }
        drop(map);
        // Outside the lock (see `get`).
        drop(held);
    }

    /// Entries held (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}
