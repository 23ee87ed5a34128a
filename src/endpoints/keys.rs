//! `GET /.auth/keys`, and the same JWKS at Pomerium's
//! `/.well-known/pomerium/jwks.json` on the hosts of `pomerium` profile routes.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};

use crate::auth::AuthState;
use crate::config::HeaderProfile;
use crate::pathnorm::CanonicalTarget;
use crate::respond::{json, Body};
use crate::router::Router;

/// `GET /.auth/keys`: the JWKS that verifies `X-Realmgate-Assertion` (the
/// public key only: `server.assertion_key`'s, or the one made at start;
/// an empty set when no route sends assertions and no key is set).
pub(crate) fn keys(state: &AuthState) -> Response<Body> {
    let jwks = match &state.assertions {
        Some(a) => a.key().jwks(),
        None => serde_json::json!({ "keys": [] }),
    };
    let mut resp = json(StatusCode::OK, &jwks);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    resp
}

/// Where Pomerium serves its signing keys, on every route's host: Pomerium's
/// SDKs fetch `https://{iss}/.well-known/pomerium/jwks.json` to verify
/// `X-Pomerium-Jwt-Assertion` (`auth::assertion::Form::Pomerium`).
pub const POMERIUM_JWKS: &str = "/.well-known/pomerium/jwks.json";

/// True when the request is for Pomerium's JWKS, as forwarded or as
/// judged, on a host where some route has the `pomerium` profile (Pomerium
/// serves it on every route's host; an app at `/app` verifies with the
/// host's path whatever route holds it): realmgate answers it (the keys at
/// [`keys`]), the app never sees it.
pub fn is_pomerium_target(router: &Router, host: &str, target: &CanonicalTarget<'_>) -> bool {
    (target.path() == POMERIUM_JWKS || target.judged() == POMERIUM_JWKS)
        && router.any_route_of(host, |r| r.headers == HeaderProfile::Pomerium)
}
