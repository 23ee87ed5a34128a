//! Each proxy thread's memo of the session cookie values it verified last.
//!
//! Verifying a value costs a base64 decode and an HMAC per configured secret,
//! on every request of a signed-in user. A value is a pure function of the id
//! and the signing key, so a thread remembers the exact values it verified
//! and the ids they carry:
//! - only values whose tag verified are inserted: forged or garbage values
//!   are always checked in full and cannot push good ones out;
//! - a hit needs the same 86 bytes (compared in full) and the same
//!   [`SessionCookies`](super::SessionCookies) instance: a reload (new
//!   secrets, new cookie name) builds a new instance with a new number, and
//!   old entries never answer for it;
//! - whether a value is in the memo can only be probed by someone who
//!   already holds that value, so the shorter time of a hit tells nothing.
//!
//! The memo is bounded: a full memo is emptied and refilled.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::{SessionId, VALUE_LEN};
use crate::per_thread::{FirstWord, Owned};

/// Values per thread at most.
pub(super) const CAPACITY: usize = 256;

/// Verified values and their ids; a value starts with the base64 of random
/// id bytes (`FirstWord`).
type Values = HashMap<[u8; VALUE_LEN], SessionId, BuildHasherDefault<FirstWord>>;

thread_local! {
    static MEMO: RefCell<Owned<Values>> = RefCell::new(Owned::default());
}

/// The id of `value` if this thread verified it under `instance`.
pub(super) fn get(instance: u64, value: &[u8; VALUE_LEN]) -> Option<SessionId> {
    MEMO.try_with(|m| m.borrow().of(instance)?.get(value).cloned())
        .ok()
        .flatten()
}

/// Remembers that `value` verified under `instance` and carries `id`.
pub(super) fn put(instance: u64, value: &[u8; VALUE_LEN], id: &SessionId) {
    let _ = MEMO.try_with(|m| {
        let mut m = m.borrow_mut();
        let values = m.for_owner(instance);
        if values.len() >= CAPACITY {
            values.clear();
        }
        values.insert(*value, id.clone());
    });
}

/// Entries on this thread under `instance` (tests).
#[cfg(test)]
pub(super) fn len(instance: u64) -> usize {
    MEMO.with(|m| m.borrow().of(instance).map_or(0, HashMap::len))
}
