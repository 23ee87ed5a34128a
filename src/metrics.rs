//! Prometheus metrics (prometheus-client), rendered by the admin listener.
//!
//! OWNER: engine-ops helper. Contract signatures below must stay.

use std::time::Duration;

/// Every metric realmgate exports. Cheap to call from the hot path.
pub struct Metrics {
    // engine-ops: registry and families
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {}
    }
    /// One finished request: route name ("" when unrouted), status, upstream latency if forwarded.
    pub fn record_request(&self, route: &str, status: u16, upstream_latency: Option<Duration>) {
        let _ = (route, status, upstream_latency);
    }
    /// Open client connections gauge.
    pub fn connection_opened(&self) {}
    pub fn connection_closed(&self) {}
    /// A login attempt by connection and outcome ("success", "invalid_token", "provider_unavailable", ...).
    pub fn record_login(&self, connection: &str, outcome: &str) {
        let _ = (connection, outcome);
    }
    /// Session store lookups.
    pub fn record_session_lookup(&self, hit: bool) {
        let _ = hit;
    }
    /// A call to an identity provider (discovery, jwks, token, userinfo, graph) and whether it failed.
    pub fn record_idp_call(&self, connection: &str, kind: &str, latency: Duration, ok: bool) {
        let _ = (connection, kind, latency, ok);
    }
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        todo!("engine-ops")
    }
}
