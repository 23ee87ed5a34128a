//! Sessions: the stored [`model::Session`], the [`store::SessionStore`] trait and
//! its implementations (memory, Redis), the signed session-id cookie and the short-lived
//! pending-login state cookie.

#[cfg(feature = "bench-sessions")]
pub mod bench_seed;
pub(crate) mod compact;
pub mod cookie;
pub mod memory;
pub mod model;
pub mod redis;
pub mod state;
pub mod store;

use std::sync::Arc;

use crate::config::{SessionSettings, StoreSettings};

/// Why the configured session store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The Redis options were refused (the message names the key).
    #[error(transparent)]
    Redis(#[from] store::StoreError),
}

/// Open the configured store. The Redis store connects lazily: Redis may be
/// down at start (`/readyz` says so until it answers). Must be called inside
/// the Tokio runtime.
pub fn open_store(settings: &SessionSettings) -> Result<Arc<dyn store::SessionStore>, OpenError> {
    match &settings.store {
        StoreSettings::Memory { max_entries } => Ok(Arc::new(memory::MemoryStore::new(
            *max_entries,
            settings.idle_timeout,
        ))),
        StoreSettings::Redis {
            urls,
            cluster,
            key_prefix,
            cache_ttl,
        } => {
            let mut opts =
                redis::RedisOptions::new(urls.clone(), *cluster, key_prefix, settings.idle_timeout);
            opts.cache_ttl = *cache_ttl;
            Ok(Arc::new(redis::RedisStore::new(opts)?))
        }
    }
}
