//! Small per-thread caches that belong to one object at a time.
//!
//! A few hot-path caches (verified cookie values, recently read sessions,
//! metric handles) live in thread-locals so that a hit takes no lock. Each
//! belongs to one object (a cookie configuration, a session store, a metrics
//! registry), named by an [`owner_number`]: an address could be reused by a
//! later object, a number never is. [`Owned`] empties the cache when another
//! owner uses it (tests run many owners on one thread; a reload makes a new
//! cookie configuration). Each cache bounds its own size.

use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// A number no other owner of a per-thread cache has, or will have.
pub fn owner_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A cache and the owner it currently holds entries for.
#[derive(Default)]
pub struct Owned<C> {
    owner: u64,
    cache: C,
}

impl<C: Default> Owned<C> {
    /// The cache, if it holds `owner`'s entries.
    pub fn of(&self, owner: u64) -> Option<&C> {
        (self.owner == owner).then_some(&self.cache)
    }

    /// The cache, if it holds `owner`'s entries, to change.
    pub fn of_mut(&mut self, owner: u64) -> Option<&mut C> {
        (self.owner == owner).then_some(&mut self.cache)
    }

    /// The cache for `owner`, emptied first if it held another owner's.
    pub fn for_owner(&mut self, owner: u64) -> &mut C {
        if self.owner != owner {
            self.owner = owner;
            self.cache = C::default();
        }
        &mut self.cache
    }
}

/// Hashes a key by its first eight bytes, for keys that start with random
/// bytes (session ids, the base64 of one). A lookup with crafted bytes can
/// at worst land in a crowded bucket of a small, bounded map whose keys are
/// always compared in full.
#[derive(Default)]
pub struct FirstWord(u64);

impl Hasher for FirstWord {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        if let Some(word) = bytes.first_chunk::<8>() {
            self.0 ^= u64::from_le_bytes(*word);
        }
    }
    /// Arrays and slices hash their length first: not a key's content.
    fn write_usize(&mut self, _: usize) {}
}
