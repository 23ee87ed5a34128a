//! Login/logout target validation (SPEC 4): a same-host path or an absolute URL
//! whose host is a configured route host; anything else becomes `/`.
//!
//! OWNER: sess helper.

use std::collections::HashSet;

/// The safe target for `raw` as received (already percent-decoded once by the
/// query/form parser). `host` is the request's host (no port, lowercase);
/// `route_hosts` every configured route host (lowercase).
pub fn safe_target(raw: &str, host: &str, route_hosts: &HashSet<String>) -> String {
    let _ = (raw, host, route_hosts);
    todo!("sess")
}
