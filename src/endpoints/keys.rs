//! `GET /.auth/keys`.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};

use crate::auth::AuthState;
use crate::respond::{json, Body};

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
