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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use super::keys::Hash;
use crate::session::model::Session;

/// Epoch stripes (by the first byte of the session hash).
const STRIPES: usize = 64;

/// The epochs a reader saw before fetching.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Seen(u64, u64);

pub(super) struct Local {
    cache: Option<Cache<Hash, Arc<Session>>>,
    epoch: AtomicU64,
    stripes: [AtomicU64; STRIPES],
    /// True while the invalidation subscription is up (see `subscriber`).
    subscribed: AtomicBool,
}

impl Local {
    /// `ttl` zero or `capacity` zero: no cache (every read goes to Redis).
    pub(super) fn new(ttl: Duration, capacity: u64) -> Local {
        let cache = (!ttl.is_zero() && capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build()
        });
        Local {
            cache,
            epoch: AtomicU64::new(0),
            stripes: std::array::from_fn(|_| AtomicU64::new(0)),
            subscribed: AtomicBool::new(false),
        }
    }

    /// The cached session unless it reached its absolute end.
    pub(super) fn get(&self, h: &Hash, now: u64) -> Option<Arc<Session>> {
        let cache = self.cache.as_ref()?;
        let s = cache.get(h)?;
        if s.expires_at <= now {
            cache.invalidate(h);
            return None;
        }
        Some(s)
    }

    fn stripe(&self, h: &Hash) -> &AtomicU64 {
        &self.stripes[usize::from(h[0]) % STRIPES]
    }

    /// The epochs to pass to [`insert`](Self::insert) after fetching `h`.
    pub(super) fn epoch(&self, h: &Hash) -> Seen {
        Seen(
            self.epoch.load(Ordering::Acquire),
            self.stripe(h).load(Ordering::Acquire),
        )
    }

    /// Caches `s`, fetched when the epoch was `seen`, unless something was
    /// evicted since or invalidations are not being received.
    pub(super) fn insert(&self, h: Hash, s: Arc<Session>, seen: Seen) {
        let Some(cache) = &self.cache else { return };
        if !self.subscribed.load(Ordering::Acquire) || self.epoch(&h) != seen {
            return;
        }
        cache.insert(h, s);
        if self.epoch(&h) != seen || !self.subscribed.load(Ordering::Acquire) {
            cache.invalidate(&h);
        }
    }

    pub(super) fn evict(&self, h: &Hash) {
        self.stripe(h).fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.cache {
            cache.invalidate(h);
        }
    }

    pub(super) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
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

    pub(super) fn len(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }
}
