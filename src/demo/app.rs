//! The demo app: an HTML page that shows the request headers it received
//! (identity headers highlighted), and `/headers.json` with the same as JSON.
//!
//! OWNER: ui helper. Contract signatures below must stay.

use std::net::SocketAddr;

/// A running demo app; stops when dropped.
pub struct App {
    // ui helper
}

impl App {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        todo!("ui")
    }
}

pub async fn start(addr: SocketAddr) -> anyhow::Result<App> {
    let _ = addr;
    todo!("ui")
}
