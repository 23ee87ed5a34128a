//! Sessions: the stored [`model::Session`], the [`store::SessionStore`] trait and
//! its implementations, the signed session-id cookie and the short-lived
//! pending-login state cookie.

pub mod cookie;
pub mod memory;
pub mod model;
pub mod state;
pub mod store;

use std::sync::Arc;

use crate::config::{SessionSettings, StoreSettings};

/// Open the configured store (memory now; redis later).
pub fn open_store(settings: &SessionSettings) -> anyhow::Result<Arc<dyn store::SessionStore>> {
    match &settings.store {
        StoreSettings::Memory { max_entries } => Ok(Arc::new(memory::MemoryStore::new(
            *max_entries,
            settings.idle_timeout,
        ))),
        StoreSettings::Redis { .. } => anyhow::bail!(
            "session.store = \"redis\" is not implemented yet; use store = \"memory\" (one gateway instance) for now"
        ),
    }
}
