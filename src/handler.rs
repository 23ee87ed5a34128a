//! The request pipeline. One function per phase, in order (see `lib.rs`).
//!
//! OWNER: engine-core helper. Contract signatures below must stay.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::config::Settings;
use crate::respond::Body;

/// What the server knows about the client connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer, or the client address from a PROXY protocol header.
    pub peer: SocketAddr,
    /// The local address the connection was accepted on.
    pub local: SocketAddr,
    /// TLS was terminated by realmgate on this connection.
    pub tls: bool,
}

/// State that survives config reloads: created once at startup.
#[derive(Clone)]
pub struct Shared {
    pub auth: crate::auth::AuthShared,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Shared {
    pub fn new(settings: &Settings) -> anyhow::Result<Shared> {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        Ok(Shared {
            auth: crate::auth::AuthShared::new(settings, metrics.clone())
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            metrics,
        })
    }
}

/// One config generation: everything a request needs, replaced whole on reload.
pub struct Gateway {
    pub settings: Arc<Settings>,
    pub auth: crate::auth::AuthState,
    pub metrics: Arc<crate::metrics::Metrics>,
    // engine-core adds: router, upstream client pool, ...
}

impl Gateway {
    /// Build a generation from validated settings (may fail: e.g. unreadable `upstream_ca`).
    pub fn new(settings: Arc<Settings>, shared: &Shared) -> anyhow::Result<Gateway> {
        Ok(Gateway {
            auth: crate::auth::AuthState::new(settings.clone(), &shared.auth),
            metrics: shared.metrics.clone(),
            settings,
        })
    }
}

/// Serve one request: route, auth, forward; never panics, errors become responses.
pub async fn handle(gw: Arc<Gateway>, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let _ = (gw, req, conn);
    todo!("engine-core")
}
