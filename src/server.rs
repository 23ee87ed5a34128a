//! Listeners and lifecycle: accept (PROXY protocol, TLS, HTTP/1.1 + h2),
//! hand requests to `handler::handle`, graceful drain on SIGTERM/SIGINT,
//! config + certificate reload on SIGHUP. Also starts the admin listener.
//!
//! OWNER: engine-ops helper. Contract signatures below must stay.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::Settings;

/// A started gateway (proxy + admin listeners). Used by `run`, `demo` and the tests.
pub struct Running {
    /// Where the proxy listener is bound (the real port when the config said 0).
    pub addr: SocketAddr,
    /// Where the admin listener is bound.
    pub admin_addr: SocketAddr,
    // engine-ops: handles
}

impl Running {
    /// Reload: re-read the config file (if started with one) and TLS certificates;
    /// on any error log it and keep the old generation. Returns whether the new one was taken.
    pub async fn reload(&self) -> bool {
        todo!("engine-ops")
    }
    /// Swap in already-validated settings (tests; SIGHUP without a file).
    pub fn replace_settings(&self, settings: Settings) -> anyhow::Result<()> {
        let _ = settings;
        todo!("engine-ops")
    }
    /// Readiness 503, stop accepting, drain in-flight requests up to `shutdown_grace`.
    pub async fn shutdown(self) {
        todo!("engine-ops")
    }
}

/// Bind the listeners and start serving in the background.
/// `config_path` is what SIGHUP / `reload` re-reads.
pub async fn start(settings: Settings, config_path: Option<PathBuf>) -> anyhow::Result<Running> {
    let _ = (settings, config_path);
    todo!("engine-ops")
}

/// `realmgate run`: start, then SIGHUP reloads and SIGTERM/SIGINT drains and returns.
pub async fn run(settings: Settings, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (settings, config_path);
    todo!("engine-ops")
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn wait_for_shutdown_signal() {
    todo!("engine-ops")
}
