//! The `/.auth/*` endpoints and the authentication step of the pipeline.
//!
//! The handler calls [`gate`] once per routed request, after hop-by-hop headers
//! are removed and before forwarding headers are added. `gate` strips every
//! identity header, then either answers the request itself (`/.auth/*`), lets
//! it through without identity (public paths), or authenticates, authorizes and
//! injects the identity headers of the route's profile.
//!
//! (Sign-in arrives with the OIDC work; until then nothing is signed in and
//! only public paths are forwarded.)

use std::sync::Arc;

use http::request::Parts;

use crate::config::{RouteSettings, Settings};
use crate::handler::ConnInfo;
use crate::policy::Permit;
use crate::respond::{Body, GatewayError};

/// Authentication state that survives config reloads (the session store).
/// Created once at startup.
#[derive(Clone)]
pub struct AuthShared {}

impl AuthShared {
    pub fn new(_settings: &Settings) -> Result<Self, GatewayError> {
        Ok(AuthShared {})
    }
}

/// Authentication state built from one config generation (providers, keys).
#[derive(Clone)]
pub struct AuthState {
    settings: Arc<Settings>,
}

impl AuthState {
    pub fn new(settings: Arc<Settings>, _shared: &AuthShared) -> Self {
        AuthState { settings }
    }
}

/// What the pipeline does next with a request.
pub enum GateOutcome {
    /// `/.auth/*`: realmgate answers itself.
    Respond(http::Response<Body>),
    /// A public path: forward without identity headers.
    Public,
    /// Authenticated and authorized: identity headers are in place; forward.
    Permitted(Permit),
}

/// True for paths realmgate answers itself on every route host.
pub fn is_auth_path(path: &str) -> bool {
    path == "/.auth" || path.starts_with("/.auth/")
}

/// Serves `/.auth/*`. Placeholder until the sign-in endpoints land: 404.
pub async fn endpoint(
    state: &AuthState,
    route: &Arc<RouteSettings>,
    req: http::Request<hyper::body::Incoming>,
    conn: &ConnInfo,
) -> http::Response<Body> {
    let _ = (&state.settings, route, conn);
    crate::respond::error_response(
        &GatewayError::NotFound,
        req.headers(),
        req.method(),
        req.uri(),
        None,
    )
}

/// Strip identity headers, then answer, pass or authenticate the request.
/// `parts.headers` must already be free of hop-by-hop headers.
pub async fn gate(
    state: &AuthState,
    route: &Arc<RouteSettings>,
    parts: &mut Parts,
    _conn: &ConnInfo,
) -> Result<GateOutcome, GatewayError> {
    let _ = &state.settings;
    let path = parts.uri.path();
    if path == "/.auth" || path.starts_with("/.auth/") {
        return Err(GatewayError::NotFound);
    }
    if route.public.iter().any(|p| path.starts_with(p.as_str())) {
        return Ok(GateOutcome::Public);
    }
    Err(GatewayError::NotSignedIn)
}
