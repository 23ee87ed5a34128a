//! Failed password sign-ins, counted per login name and per client address
//! (SPEC 9: `max_failed_logins` within `failure_window`; beyond it the form
//! refuses that login, even with the right password, until the window
//! passes). A login's window restarts at every failure: it is refused until
//! `failure_window` has passed since its last failed attempt; a client
//! address's window is fixed from its first failure ([`restarts`]).
//!
//! With the Redis session store the counters live in Redis
//! (`SessionStore::count_failure`), so every replica sees every failure,
//! and so do the attempts under way (`SessionStore::reserve_attempt`:
//! checked and counted in one step, so a burst spread over replicas
//! cannot pass the check on each); otherwise in this process (moka). Keys never hold the login in clear:
//! `ldap:<connection>:login:<sha256(canonical login)>`,
//! `ldap:<connection>:entry:<sha256(lowercased DN)>`,
//! `ldap:<connection>:addr:<address>` (an IPv6 client counts by its /64,
//! which one host usually owns whole).
//!
//! One account, one budget, however it is spelled: the login key is the
//! [`canonical_login`] (`CORP\alice`, `alice@corp.example`, `ALICE`,
//! full-width `ａｌｉｃｅ` are one key), and with a search account the
//! entry the login resolved to is counted too ([`entry_key`]), so any
//! spelling the user filter accepts (a UPN whose prefix is not the
//! sAMAccountName, `mail`, ...) spends the same budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::session::store::{SessionStore, StoreError};

/// Whether a failure restarts `key`'s window. A login's (and its entry's)
/// does, as AD's own counter does (it resets after `lockoutObservationWindow`
/// from the *last* bad password): a window fixed at the first failure would
/// let 2 x max - 1 failures through within seconds across its end
/// (review 9). A client address's does not: behind a NAT, a whole office's
/// occasional typos, each within the window of the one before, would add
/// up over hours and lock everyone out (SPEC 9: "within failure_window").
pub fn restarts(key: &str) -> bool {
    !key.contains(":addr:")
}

/// Longest window kept in memory (longer configured windows are cut).
const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// In-process counters (used when the session store does not share them).
#[derive(Clone)]
pub struct Failures {
    local: moka::sync::Cache<String, (u64, Instant)>,
    /// Attempts under way per key (this process): each may still fail, so
    /// it counts against the limit until its outcome is recorded. Without
    /// it a burst of concurrent guesses would all pass the check before the
    /// first failure is counted.
    in_flight: Arc<Mutex<HashMap<String, u64>>>,
}

impl Default for Failures {
    fn default() -> Self {
        Failures {
            local: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(MAX_WINDOW)
                .build(),
            in_flight: Arc::default(),
        }
    }
}

/// An attempt [`Failures::begin`] let through: it counts against the limit
/// of its keys until dropped, which must be after its failure (if any) is
/// recorded.
pub struct Attempt {
    in_flight: Arc<Mutex<HashMap<String, u64>>>,
    keys: Vec<String>,
    /// Reserved in a store shared by every replica (Redis) instead of
    /// `in_flight`: released there when dropped.
    shared: Option<(Arc<dyn SessionStore>, Vec<String>)>,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        release(&self.in_flight, &self.keys);
        if let Some((store, keys)) = self.shared.take() {
            // Drop cannot wait: the release runs on its own. Should it never
            // run (the process ends), the reservation expires with its TTL
            // (`UNDER_WAY_TTL`), counting against the limit until then: it
            // fails closed.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = store.release_attempt(&keys).await {
                        tracing::warn!(error = %e, "a sign-in attempt under way could not be released; it expires by itself");
                    }
                });
            }
        }
    }
}

/// How long a shared reservation of an attempt under way lives at most:
/// longer than any attempt (the directory's timeouts, a few servers).
pub const UNDER_WAY_TTL: Duration = Duration::from_secs(120);

fn release(in_flight: &Mutex<HashMap<String, u64>>, keys: &[String]) {
    let mut map = in_flight
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for k in keys {
        if let Some(n) = map.get_mut(k) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(k);
            }
        }
    }
}

/// The account part of a typed login, for the failure limit: NFKD
/// (full-width and compatibility forms folded, as AD compares names
/// ignoring width) without any mark or default-ignorable code point,
/// lowercased (`ß` as `ss`), without a `DOMAIN\` prefix or an `@domain`
/// suffix. Different domains' `alice` share a budget: stricter, never
/// looser.
///
/// Marks: Active Directory compares names ignoring accents and other
/// marks, however many are stacked ("björn", "bjorn" and "b̨́j᪲ǫ̈́rn̨̈́" are
/// one account, Samba bug 14847; "Meißner" is "Meissner", KB 938447), and
/// gives invisible code points no weight. Kept in the key, each would make
/// a login of its own, an endless supply of failure budgets for one account
/// where the typed login is the only key (direct bind). Letters Windows
/// folds without a Unicode decomposition (`ø` as `o`) are not known here:
/// they give a bounded number of spellings, which the per-address limit
/// and, with a search account, the entry's key cover.
pub fn canonical_login(login: &str) -> String {
    let lower = crate::fold::fold(login.trim());
    let account = match lower.rsplit_once('\\') {
        Some((_, user)) => user,
        None => lower.as_str(),
    };
    let account = match account.rsplit_once('@') {
        Some((user, _)) if !user.is_empty() => user,
        _ => account,
    };
    account.trim().to_string()
}

fn hex_digest(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The counter key of the directory entry a login resolved to (its DN,
/// lowercased: DNs compare case-insensitively in AD and for the usual
/// naming attributes in OpenLDAP).
pub fn entry_key(connection: &str, dn: &str) -> String {
    let dn = dn.trim().to_lowercase();
    format!("ldap:{connection}:entry:{}", hex_digest(&dn))
}

/// The counter keys of one sign-in attempt: the login's, then the client
/// address's.
pub fn keys(connection: &str, login: &str, client: IpAddr) -> [String; 2] {
    let hex = hex_digest(&canonical_login(login));
    let addr = match client.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        v4 => v4.to_string(),
    };
    [
        format!("ldap:{connection}:login:{hex}"),
        format!("ldap:{connection}:addr:{addr}"),
    ]
}

impl Failures {
    /// Lets one attempt through, or None when any key has `max` failures
    /// in its window counting the attempts under way in this process.
    ///
    /// The attempt is counted as under way before the stored count is
    /// read, and a finished attempt records its failure before it stops
    /// being under way: so every concurrent attempt sees each other one
    /// either under way or recorded, never neither.
    pub async fn begin(
        &self,
        store: &Arc<dyn SessionStore>,
        keys: &[String],
        max: u32,
        window: Duration,
    ) -> Result<Option<Attempt>, StoreError> {
        // A store shared by replicas checks and reserves in one step for
        // all of them (review 9: counted per process, a burst spread over
        // N replicas reached the directory N times the limit).
        // The address first: a request from an address at its limit is
        // refused before it reserves anything under the victim's login
        // (a reservation it gave back at once would still renew the
        // login's counter's lifetime).
        let mut ordered = keys.to_vec();
        ordered.sort_by_key(|k| restarts(k));
        match store.reserve_attempt(&ordered, max, UNDER_WAY_TTL).await? {
            Some(true) => {
                return Ok(Some(Attempt {
                    in_flight: self.in_flight.clone(),
                    keys: Vec::new(),
                    shared: Some((store.clone(), ordered)),
                }))
            }
            Some(false) => return Ok(None),
            None => {}
        }
        let mut others = Vec::with_capacity(keys.len());
        {
            let mut map = self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for k in keys {
                let n = map.entry(k.clone()).or_insert(0);
                others.push(*n);
                *n = n.saturating_add(1);
            }
        }
        let attempt = Attempt {
            in_flight: self.in_flight.clone(),
            keys: keys.to_vec(),
            shared: None,
        };
        for (k, under_way) in keys.iter().zip(others) {
            let n = match store.failures(k).await? {
                Some(n) => n,
                None => self.local_count(k, window),
            };
            if n.saturating_add(under_way) >= u64::from(max) {
                return Ok(None);
            }
        }
        Ok(Some(attempt))
    }

    /// True when any key already has `max` failures in its window.
    pub async fn blocked(
        &self,
        store: &Arc<dyn SessionStore>,
        keys: &[String],
        max: u32,
        window: Duration,
    ) -> Result<bool, StoreError> {
        for k in keys {
            let n = match store.failures(k).await? {
                Some(n) => n,
                None => self.local_count(k, window),
            };
            if n >= u64::from(max) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Counts one failure under each key.
    pub async fn record(
        &self,
        store: &Arc<dyn SessionStore>,
        keys: &[String],
        window: Duration,
    ) -> Result<(), StoreError> {
        for k in keys {
            if store.count_failure(k, window, restarts(k)).await?.is_none() {
                self.local_add(k, window);
            }
        }
        Ok(())
    }

    /// Forgets the failures under each key (a successful sign-in clears its
    /// login's count).
    pub async fn reset(
        &self,
        store: &Arc<dyn SessionStore>,
        keys: &[String],
    ) -> Result<(), StoreError> {
        for k in keys {
            if !store.clear_failures(k).await? {
                self.local.invalidate(k);
            }
        }
        Ok(())
    }

    fn local_count(&self, key: &str, window: Duration) -> u64 {
        match self.local.get(key) {
            Some((n, start)) if start.elapsed() < window.min(MAX_WINDOW) => n,
            _ => 0,
        }
    }

    fn local_add(&self, key: &str, window: Duration) {
        let window = window.min(MAX_WINDOW);
        self.local.entry(key.to_string()).and_upsert_with(|old| {
            match old.map(|e| e.into_value()) {
                Some((n, start)) if start.elapsed() < window => {
                    let start = if restarts(key) { Instant::now() } else { start };
                    (n.saturating_add(1), start)
                }
                _ => (1, Instant::now()),
            }
        });
    }
}

#[cfg(test)]
mod tests;
