//! The store's hot sessions (see "Hot sessions" in the module docs of
//! `memory`): unpacked copies beside the packed entries they came from, in
//! a fixed table of [`CAPACITY`] slots chosen by the session id's first
//! bytes (random, so any id lands anywhere). A new copy replaces whatever
//! its slot held: no bookkeeping, no maintenance, O(1) with one short lock
//! per call, where a bounded cache (moka) paid an insert, an eviction and
//! its listener on almost every read of a store with many more users than
//! slots.
//!
//! A copy answers only for the very packed entry it was made from
//! (`Arc::ptr_eq`), and one whose packed entry has ended is never put in:
//! the store's eviction listener marks the entry ended and then empties its
//! slot, both before a delete or revocation returns, and `insert` looks at
//! the mark under the slot's lock, so either the listener's removal comes
//! after the insert or the insert sees the mark.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Packed, Session, SessionId};

/// Slots: about 4 MiB of identity-only sessions when all are full, and
/// as much again in the identity headers each keeps once forwarded
/// (`Session::derived`).
pub(super) const CAPACITY: usize = 4096;

struct Entry {
    id: SessionId,
    packed: Arc<Packed>,
    session: Arc<Session>,
}

pub(super) struct Hot {
    slots: Box<[Mutex<Option<Entry>>]>,
}

impl Hot {
    pub(super) fn new() -> Hot {
        Hot {
            slots: (0..CAPACITY).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn slot(&self, id: &SessionId) -> &Mutex<Option<Entry>> {
        let b = id.as_bytes();
        let word = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        // The table is never empty; the modulo keeps the index in range.
        &self.slots[(word % self.slots.len() as u64) as usize]
    }

    /// The unpacked copy of `packed`, if its slot holds one.
    pub(super) fn get(&self, id: &SessionId, packed: &Arc<Packed>) -> Option<Arc<Session>> {
        let slot = self.slot(id).lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .filter(|e| e.id == *id && Arc::ptr_eq(&e.packed, packed))
            .map(|e| e.session.clone())
    }

    /// Keeps `session`, just unpacked from `packed`, unless `packed` has
    /// ended (see the module docs).
    pub(super) fn insert(&self, id: &SessionId, packed: Arc<Packed>, session: Arc<Session>) {
        let old = {
            let mut slot = self.slot(id).lock().unwrap_or_else(PoisonError::into_inner);
            if packed.ended.load(Ordering::Acquire) {
                return;
            }
            slot.replace(Entry {
                id: id.clone(),
                packed,
                session,
            })
        };
        // Dropped outside the lock: the last handle of a packed entry
        // releases its interned strings (the interner's lock).
        drop(old);
    }

    /// Drops the copy of `id`, if its slot holds one.
    pub(super) fn remove(&self, id: &SessionId) {
        let old = {
            let mut slot = self.slot(id).lock().unwrap_or_else(PoisonError::into_inner);
            if slot.as_ref().is_some_and(|e| e.id == *id) {
                slot.take()
            } else {
                None
            }
        };
        drop(old);
    }

    /// Copies held (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.lock().unwrap_or_else(PoisonError::into_inner).is_some())
            .count()
    }
}
