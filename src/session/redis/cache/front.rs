//! The local cache's front table (see "Front table" in the module docs of
//! `cache`): session id to the cache entry a fresh read found, shared by
//! every thread, so a read finds a fresh entry with one probe instead of
//! the id's SHA-256 and moka's lookup and read bookkeeping. Past its TTL
//! a slot answers nothing: the read goes to the cache, which hands back the
//! kept copy to revalidate (`cache`, "Kept copies").
//!
//! A fixed table per shard (a power of two of slots, made on first use): a
//! new slot replaces the one it lands on, so the table never grows and
//! never needs sweeping. A slot answers only for the id it holds (compared
//! in full: the ids are 256 random bits this gateway made and the cookie
//! carrying one was authenticated before the lookup) and only on the
//! conditions of a memo entry: the epochs it noted before its cache read
//! are unchanged, its entry is alive (the handle is weak: a dropped entry,
//! its session and its record are not kept here), fresh, and before the
//! session's absolute end, and the invalidation subscription is up.
//!
//! A live entry need not be in the cache any more (moka frees a removed
//! value late, and a request may hold it): removals that must stop the
//! answers bump the epochs (`Local::evict`, also for a record found gone),
//! and a confirmation marks an entry fresh only while the cache holds it
//! (`Local::confirm`). An entry moka dropped by its capacity bound or keep
//! period may answer until its TTL ends, as it would have from the cache.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock, Weak};

use super::{stripe_of, Entry, Hash, Local, Seen};
use crate::session::model::Session;
use crate::session::store::SessionId;

/// Shards: the two proxy threads (or sixteen) rarely want the same lock.
const SHARDS: usize = 64;

struct Slot {
    id: SessionId,
    entry: Weak<Entry>,
    /// The epoch stripe of the session hash, and the epochs noted before
    /// the cache read that found the entry.
    stripe: usize,
    seen: Seen,
}

/// A shard's slots (empty until its first entry).
type Table = Box<[Option<Slot>]>;

pub(super) struct Front {
    shards: Box<[RwLock<Table>]>,
    /// Slots per shard, a power of two.
    slots: usize,
}

impl Front {
    /// About `capacity` (the cache's) slots in all, at most a million: per
    /// shard the largest power of two not above its share, at least one.
    pub(super) fn new(capacity: u64) -> Front {
        let per_shard = usize::try_from(capacity / SHARDS as u64)
            .unwrap_or(usize::MAX)
            .clamp(1, 1 << 14);
        Front {
            shards: (0..SHARDS).map(|_| RwLock::new(Box::default())).collect(),
            slots: 1 << per_shard.ilog2(),
        }
    }

    /// The shard and slot of `id`: disjoint bytes of it.
    fn place(&self, id: &SessionId) -> (usize, usize) {
        let b = id.as_bytes();
        let key = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let shard = usize::from(u16::from_le_bytes([b[8], b[9]])) % SHARDS;
        // `slots` is a power of two.
        (shard, (key as usize) & (self.slots - 1))
    }

    /// The session of `id` if its slot holds a fresh entry for exactly
    /// `id` (see the module docs), read at Unix time `now`.
    pub(super) fn get(&self, local: &Local, id: &SessionId, now: u64) -> Option<Arc<Session>> {
        let (shard, slot) = self.place(id);
        let (entry, stripe, seen) = {
            let table = self.shards[shard]
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let s = table.get(slot)?.as_ref().filter(|s| s.id == *id)?;
            (s.entry.clone(), s.stripe, s.seen)
        };
        if local.epoch_of(stripe) != seen || !local.is_subscribed() {
            return None;
        }
        let e = entry.upgrade()?;
        let fresh = local.clock() < e.fresh_until.load(Ordering::Acquire);
        (fresh && e.session.expires_at > now).then(|| e.session.clone())
    }

    /// Remembers `e` for `id`, found fresh in the cache after noting `seen`.
    pub(super) fn put(&self, id: &SessionId, h: &Hash, seen: Seen, e: &Arc<Entry>) {
        let (shard, slot) = self.place(id);
        let new = Slot {
            id: id.clone(),
            entry: Arc::downgrade(e),
            stripe: stripe_of(h),
            seen,
        };
        let old = {
            let mut table = self.shards[shard]
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if table.is_empty() {
                *table = (0..self.slots).map(|_| None).collect();
            }
            table.get_mut(slot).and_then(|s| s.replace(new))
        };
        // Outside the lock: dropping a handle may free an entry's shell.
        drop(old);
    }

    /// Slots in use (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .flatten()
                    .count()
            })
            .sum()
    }
}
