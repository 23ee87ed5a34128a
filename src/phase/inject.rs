//! Phase 5, inject: the identity headers of the route's profile, rendered
//! from a [`Permit`] (`headers::identity::Injected` is only made from one),
//! and the signed assertion when the route sends one.

use std::borrow::Cow;
use std::sync::Arc;

use http::request::Parts;
use http::HeaderMap;

use crate::auth::assertion::Form;
use crate::auth::AuthState;
use crate::config::{ConnectionSettings, HeaderProfile, RouteSettings};
use crate::headers::identity::{Injected, Signed};
use crate::peer::ConnInfo;
use crate::policy::Permit;

/// The identity headers for a permitted request to `route` (the
/// per-request assertions go straight into `parts`).
pub fn inject(
    state: &AuthState,
    route: &Arc<RouteSettings>,
    parts: &mut Parts,
    conn: &ConnInfo,
    permit: &Permit,
    connection: &Arc<ConnectionSettings>,
) -> Injected {
    // The origin and host are only needed (and only formatted) for an assertion.
    let signed = if route.sends_assertion() {
        let origin = route
            .jwt_assertion
            .then(|| crate::peer::request_origin(&state.settings.server, parts, conn));
        // As Pomerium names it (Go's `URL.Hostname()`): no port, an IPv6
        // literal without brackets.
        let host = (route.headers == HeaderProfile::Pomerium)
            .then(|| {
                crate::router::normalize_host(&crate::peer::host_of(parts)).map(Cow::into_owned)
            })
            .flatten();
        signed_assertions(
            state,
            route,
            permit,
            connection,
            origin.as_deref(),
            host.as_deref(),
        )
    } else {
        Signed::default()
    };
    crate::headers::identity::inject_cached(
        &mut parts.headers,
        permit,
        route,
        connection,
        &state.policy_groups,
        &signed,
    )
}

/// The headers `/.auth/verify` answers with: the route's own settings
/// (tokens, `headers_extra`) with the profile nginx's `auth_request_set`
/// expects (`auth_request`), `X-Realmgate-Assertion` with `jwt_assertion`,
/// and on a `pomerium` route `X-Pomerium-Jwt-Assertion` for the app's
/// `host` (what Pomerium's forward-auth answer carries for
/// `auth_request_set`).
pub fn forward_auth_headers(
    state: &AuthState,
    route: &RouteSettings,
    permit: &Permit,
    connection: &ConnectionSettings,
    origin: &str,
    host: Option<&str>,
) -> HeaderMap {
    let signed = signed_assertions(state, route, permit, connection, Some(origin), host);
    let mut profile = RouteSettings::clone(route);
    profile.headers = HeaderProfile::AuthRequest;
    let mut headers = HeaderMap::new();
    crate::headers::identity::inject(
        &mut headers,
        permit,
        &profile,
        connection,
        &state.policy_groups,
        &signed,
    );
    // Signed values only, never a client's: base64url and dots.
    if let Some(value) = signed
        .pomerium
        .and_then(|token| http::HeaderValue::try_from(token).ok())
    {
        headers.insert("x-pomerium-jwt-assertion", value);
    }
    headers
}

/// The signed assertions for a permitted user that `route` sends, when a
/// key is configured: `X-Realmgate-Assertion` (`jwt_assertion = true`,
/// reached at `origin`) and the `pomerium` profile's
/// `X-Pomerium-Jwt-Assertion` (reached at `host`), each in its own form.
pub fn signed_assertions(
    state: &AuthState,
    route: &RouteSettings,
    permit: &Permit,
    connection: &ConnectionSettings,
    origin: Option<&str>,
    host: Option<&str>,
) -> Signed {
    let Some(signer) = state.assertions.as_ref() else {
        return Signed::default();
    };
    let issue = |form| {
        signer.issue(
            permit.user(),
            form,
            connection,
            &state.policy_groups,
            crate::auth::now(),
        )
    };
    Signed {
        realmgate: origin.filter(|_| route.jwt_assertion).and_then(|origin| {
            issue(Form::Realmgate {
                route: &route.name,
                origin,
            })
        }),
        pomerium: host
            .filter(|_| route.headers == HeaderProfile::Pomerium)
            .and_then(|host| issue(Form::Pomerium { host })),
    }
}
