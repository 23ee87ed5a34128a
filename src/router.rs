//! Route selection: exact Host (port ignored, case-insensitive) then the longest `path_prefix`.
//!
//! OWNER: engine-core helper.

use std::sync::Arc;

use crate::config::RouteSettings;

/// Routes indexed by host.
pub struct Router {
    // engine-core
}

impl Router {
    pub fn new(routes: &[Arc<RouteSettings>]) -> Router {
        let _ = routes;
        todo!("engine-core")
    }
    /// The route for a Host header value (may include a port) and a request path.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<RouteSettings>> {
        let _ = (host, path);
        todo!("engine-core")
    }
}
