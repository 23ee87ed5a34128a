//! Each assertion ID is accepted once, until the assertion expires. The
//! memory cache serves one replica; with Redis sessions the lead's seam
//! passes a Redis-backed check instead (`SET key 1 NX EXAT until`), so
//! several replicas share it.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most remembered IDs; beyond it, the oldest-expiring are dropped first
/// after expired ones (an assertion lives minutes, so this is ample).
const MAX_ENTRIES: usize = 100_000;

/// Assertion IDs seen, with the time until which each must be refused.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<String, u64>>,
}

impl ReplayCache {
    pub fn new() -> ReplayCache {
        ReplayCache::default()
    }

    /// True the first time `id` is offered before `until` (Unix seconds);
    /// false for a replay.
    pub fn first_use(&self, id: &str, until: u64, now: u64) -> bool {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if seen.get(id).is_some_and(|&u| u > now) {
            return false;
        }
        if seen.len() >= MAX_ENTRIES {
            seen.retain(|_, &mut u| u > now);
            if seen.len() >= MAX_ENTRIES {
                // Fail closed rather than forget: a full cache of live
                // assertions refuses new ones until some expire.
                return false;
            }
        }
        seen.insert(id.to_string(), until);
        true
    }

    /// Forgets `id`, taken by [`ReplayCache::first_use`] for an action that
    /// then failed (the session store down): its retry is not a replay.
    pub fn forget(&self, id: &str) {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        seen.remove(id);
    }
}
