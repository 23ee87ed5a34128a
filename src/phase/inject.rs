//! Phase 5, inject: the identity headers of the route's profile, rendered
//! from a [`Permit`] (`headers::identity::Injected` is only made from one),
//! and the signed assertion when the route sends one.

use std::sync::Arc;

use http::request::Parts;
use http::HeaderMap;

use crate::auth::AuthState;
use crate::config::{ConnectionSettings, HeaderProfile, RouteSettings};
use crate::headers::identity::Injected;
use crate::peer::ConnInfo;
use crate::policy::Permit;

/// The identity headers for a permitted request to `route` (the
/// per-request assertion goes straight into `parts`).
pub fn inject(
    state: &AuthState,
    route: &Arc<RouteSettings>,
    parts: &mut Parts,
    conn: &ConnInfo,
    permit: &Permit,
    connection: &Arc<ConnectionSettings>,
) -> Injected {
    // The origin is only needed (and only formatted) for an assertion.
    let assertion = route
        .sends_assertion()
        .then(|| {
            let origin = crate::peer::request_origin(&state.settings.server, parts, conn);
            signed_assertion(state, route, permit, connection, &origin)
        })
        .flatten();
    crate::headers::identity::inject_cached(
        &mut parts.headers,
        permit,
        route,
        connection,
        &state.policy_groups,
        assertion.as_deref(),
    )
}

/// The headers `/.auth/verify` answers with: the route's own settings
/// (tokens, `headers_extra`) with the profile nginx's `auth_request_set`
/// expects (`auth_request`).
pub fn forward_auth_headers(
    state: &AuthState,
    route: &RouteSettings,
    permit: &Permit,
    connection: &ConnectionSettings,
    origin: &str,
) -> HeaderMap {
    let mut profile = RouteSettings::clone(route);
    profile.headers = HeaderProfile::AuthRequest;
    let mut headers = HeaderMap::new();
    let assertion = signed_assertion(state, route, permit, connection, origin);
    crate::headers::identity::inject(
        &mut headers,
        permit,
        &profile,
        connection,
        &state.policy_groups,
        assertion.as_deref(),
    );
    headers
}

/// The signed assertion for a permitted user, when the route sends one
/// (`jwt_assertion = true`, or the `pomerium` profile) and a key is configured.
pub fn signed_assertion(
    state: &AuthState,
    route: &RouteSettings,
    permit: &Permit,
    connection: &ConnectionSettings,
    origin: &str,
) -> Option<String> {
    if !route.sends_assertion() {
        return None;
    }
    state.assertions.as_ref()?.issue(
        permit.user(),
        &route.name,
        origin,
        connection,
        &state.policy_groups,
        crate::auth::now(),
    )
}
