//! The gateway's state: [`Shared`] (created once at startup, survives
//! config reloads: the session store, provider caches, metrics) and
//! [`Gateway`] (one config generation, replaced whole on reload). The server
//! owns them; every request borrows its generation through a [`GatewayRef`].

use std::sync::Arc;

use crate::config::Settings;
use crate::proxy::{ClientError, Upstreams};
use crate::respond::GatewayError;

/// Why a [`Shared`] or a [`Gateway`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The session store or the identity provider clients (the cause is
    /// logged where it arose).
    #[error("{0}")]
    Auth(GatewayError),
    /// The upstream clients (e.g. an unreadable `upstream_ca`).
    #[error(transparent)]
    Upstreams(#[from] ClientError),
}

/// State that survives config reloads: created once at startup.
#[derive(Clone)]
pub struct Shared {
    pub auth: crate::auth::AuthShared,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Shared {
    pub fn new(settings: &Settings) -> Result<Shared, BuildError> {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        metrics.set_session_store(&settings.session.store);
        Ok(Shared {
            auth: crate::auth::AuthShared::new(settings, metrics.clone())
                .map_err(BuildError::Auth)?,
            metrics,
        })
    }
}

/// One config generation: everything a request needs, replaced whole on reload.
pub struct Gateway {
    pub settings: Arc<Settings>,
    pub auth: crate::auth::AuthState,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub upstreams: Upstreams,
}

impl Gateway {
    /// Build a generation from validated settings (may fail: e.g. unreadable `upstream_ca`).
    pub fn new(settings: Arc<Settings>, shared: &Shared) -> Result<Gateway, BuildError> {
        Ok(Gateway {
            upstreams: Upstreams::new(&settings.routes, settings.server.workers)?,
            auth: crate::auth::AuthState::new(settings.clone(), &shared.auth),
            metrics: shared.metrics.clone(),
            settings,
        })
    }

    /// The branded pages of this generation.
    pub(crate) fn pages(&self) -> Option<&crate::ui::Pages> {
        Some(&self.auth.pages)
    }
}

/// A request's handle on its config generation: a connection's own
/// reference-counted pointer to the shared `Arc<Gateway>`
/// (`server::conn::ConnGateway`), so that taking and dropping it per
/// request changes a count only the connection's thread uses.
pub type GatewayRef = Arc<Arc<Gateway>>;
