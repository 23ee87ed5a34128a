//! The one place where errors become responses (fixed texts, HTML or JSON by
//! `Accept`); details go to logs only.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

/// The body type of every response realmgate sends (generated or proxied).
pub type Body = BoxBody<Bytes, hyper::Error>;

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
}
