//! Identity headers (SPEC 5.8): strip every identity header of every profile
//! from incoming requests; inject the route profile's headers from a Permit.
//!
//! OWNER: sess helper. Contract signatures below must stay.

use std::collections::HashSet;

use http::{HeaderMap, HeaderName};

use crate::config::{ConnectionSettings, RouteSettings};
use crate::policy::Permit;

/// Remove every identity header of every profile, and every name in `extra`
/// (all routes' `headers_extra`), case-insensitively and with `_` for `-`.
pub fn strip(headers: &mut HeaderMap, extra: &[HeaderName]) {
    let _ = (headers, extra);
    todo!("sess")
}

/// Add the route profile's headers (and `headers_extra`, tokens when the route
/// passes them, `assertion` for pomerium/jwt_assertion) for the permitted user.
/// `policy_groups`: every group named in some `allow.groups` (for `groups_in_headers = "known"`).
/// Claim values with control characters are dropped and logged (never the value).
pub fn inject(
    headers: &mut HeaderMap,
    permit: &Permit,
    route: &RouteSettings,
    connection: &ConnectionSettings,
    policy_groups: &HashSet<String>,
    assertion: Option<&str>,
) {
    let _ = (headers, permit, route, connection, policy_groups, assertion);
    todo!("sess")
}
