//! Hop-by-hop header removal (RFC 9110 7.6.1), including headers named by `Connection`.
//!
//! OWNER: engine-core helper.

use http::HeaderMap;

/// Remove hop-by-hop headers and every header `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let _ = headers;
    todo!("engine-core")
}
