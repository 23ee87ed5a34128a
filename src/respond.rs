//! The one place where errors become responses (fixed texts, HTML or JSON by
//! `Accept`); details go to logs only.
//!
//! OWNER: engine-core helper. Contract signatures below must stay.

use bytes::Bytes;
use http::{HeaderMap, Method, Response, Uri};
use http_body_util::combinators::BoxBody;

/// The body type of every response realmgate sends (generated or proxied).
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    let _ = bytes.into();
    todo!("engine-core")
}

/// An empty body.
pub fn empty() -> Body {
    todo!("engine-core")
}

/// Everything that stops a request from being forwarded.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No session (or bearer token): 302 to the login page for browser
    /// navigation, else 401 JSON with `WWW-Authenticate: Bearer` (SPEC 5.1).
    #[error("not signed in")]
    NotSignedIn,
    /// 404 for an unknown `/.auth/` endpoint.
    #[error("not found")]
    NotFound,
    /// Signed in but the route's policy says no: 403 (page says who and why, offers sign-out).
    #[error("access denied")]
    Denied(Box<crate::policy::Denied>),
    /// The session store failed: fail closed with 503.
    #[error("session store unavailable")]
    StoreUnavailable,
    /// The identity provider of this connection cannot be reached: 503 for new logins.
    #[error("identity provider unavailable")]
    ProviderUnavailable,
    /// A `/.auth/` endpoint called with the wrong method: 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Malformed input to a realmgate endpoint: 400 with this fixed text.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A bug or an unexpected failure: 500 with a fixed text.
    #[error("internal error")]
    Internal,
}

/// True when the client prefers HTML (browser navigation) over JSON.
pub fn prefers_html(headers: &HeaderMap) -> bool {
    let _ = headers;
    todo!("engine-core")
}

/// The response for `err`: HTML (rendered with `pages` when given) or JSON by `Accept`.
pub fn error_response(
    err: &GatewayError,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    pages: Option<&crate::ui::Pages>,
) -> Response<Body> {
    let _ = (err, headers, method, uri, pages);
    todo!("engine-core")
}
