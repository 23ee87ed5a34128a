//! The `/.auth/*` endpoints realmgate answers itself on every route host.
//!
//! [`serve`] routes them: sign-in and its callback (`auth::signin`, for now
//! beside the rest of `auth`), `me`, `verify` (forward authentication, which
//! runs the pipeline's own `authenticate` and `authorize` phases), `keys`,
//! `logout` (and `logout/done`, and the front-channel `logout/frontchannel`),
//! `refresh` (`auth::refresh`) and the OIDC
//! `backchannel` logout. On a route with `oauth2_proxy_endpoints`, the
//! same handlers also answer at oauth2-proxy's `/oauth2/*` names (`oauth2`);
//! on the hosts of `pomerium` profile routes, `/.auth/keys` also answers at
//! Pomerium's `/.well-known/pomerium/jwks.json` (`keys`).
//! Every answer is `Cache-Control: no-store`; every
//! error goes through `respond`.

pub(crate) mod backchannel;
pub mod frontchannel;
pub(crate) mod keys;
pub(crate) mod logout;
pub(crate) mod me;
pub mod oauth2;
pub mod verify;

use std::sync::Arc;

use http::header::{HeaderValue, CACHE_CONTROL};
use http::{Method, Response};

use crate::auth::form;
use crate::auth::{AuthState, Ctx};
use crate::config::RouteSettings;
use crate::peer::ConnInfo;
use crate::respond::{self, Body, GatewayError};

/// True for paths realmgate answers itself on every route host.
pub fn is_auth_path(path: &str) -> bool {
    path == "/.auth" || path.starts_with("/.auth/")
}

/// True when a request's canonical target is realmgate's own, as forwarded
/// or as judged (`/.auth%2Fme`): such a request never reaches an upstream.
pub fn is_auth_target(target: &crate::pathnorm::CanonicalTarget<'_>) -> bool {
    is_auth_path(target.path()) || is_auth_path(target.judged())
}

/// True when realmgate answers the request itself on `route` of `host`:
/// `/.auth/*` ([`is_auth_target`]), with `oauth2_proxy_endpoints`
/// `/oauth2/*`, and on a host with a `pomerium` profile route Pomerium's
/// JWKS path.
pub fn is_own_target(
    router: &crate::router::Router,
    host: &str,
    route: &RouteSettings,
    target: &crate::pathnorm::CanonicalTarget<'_>,
) -> bool {
    is_auth_target(target)
        || oauth2::is_alias_target(route, target)
        || keys::is_pomerium_target(router, host, target)
}

/// Serves `/.auth/*` (and `/oauth2/*` on routes with
/// `oauth2_proxy_endpoints`). Every response is `Cache-Control: no-store`.
pub async fn serve(
    state: &AuthState,
    route: &Arc<RouteSettings>,
    req: http::Request<hyper::body::Incoming>,
    conn: &ConnInfo,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let server = &state.settings.server;
    let forwarded_redirect = crate::peer::peer_is_trusted(server, conn)
        .then(|| single_header(&parts.headers, "x-auth-request-redirect"))
        .flatten();
    crate::phase::strip::identity_headers(&mut parts.headers, state);
    let ctx = Ctx {
        state,
        route,
        origin: crate::peer::request_origin(server, &parts, conn),
        https: crate::peer::is_https(server, &parts, conn),
        client: crate::peer::client_address(server, &parts.headers, conn),
        forwarded_redirect,
    };
    let path = parts.uri.path().to_string();
    let result = match path.strip_prefix("/.auth") {
        Some(rest) => dispatch(&ctx, state, &parts, body, rest, conn).await,
        // Not `/.auth`: the pipeline sends only `oauth2::is_alias_target`
        // requests here.
        None if oauth2::is_alias_path(&path) => oauth2::serve(&ctx, &mut parts, body, conn).await,
        // The pipeline sends it here only on hosts of `pomerium` profile
        // routes (`keys::is_pomerium_target`).
        None if path == keys::POMERIUM_JWKS
            && matches!(parts.method, Method::GET | Method::HEAD) =>
        {
            Ok(keys::keys(state))
        }
        None => Err(GatewayError::NotFound),
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => respond::error_response(
            &e,
            &respond::Negotiation::of(&parts.headers),
            &parts.method,
            &parts.uri,
            Some(&state.pages),
        ),
    };
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The value of `name` when sent exactly once, as visible text.
fn single_header(headers: &http::HeaderMap, name: &str) -> Option<String> {
    let mut all = headers.get_all(name).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return None;
    };
    let text = v.to_str().ok()?.trim();
    (!text.is_empty() && text.len() <= 8192).then(|| text.to_string())
}

/// `/.auth{rest}`.
async fn dispatch(
    ctx: &Ctx<'_>,
    state: &AuthState,
    parts: &http::request::Parts,
    body: hyper::body::Incoming,
    rest: &str,
    conn: &ConnInfo,
) -> Result<Response<Body>, GatewayError> {
    match (&parts.method, rest) {
        (_, "/login") => crate::auth::signin::serve(ctx, parts, body, rest, conn).await,
        (_, rest) if rest.starts_with("/login/") => {
            crate::auth::signin::serve(ctx, parts, body, rest, conn).await
        }
        // A connection kind's own endpoints (SAML metadata, single logout).
        (_, rest) if rest.starts_with("/saml/") => {
            let tail = rest.strip_prefix("/saml/").unwrap_or("");
            crate::auth::signin::kind_endpoint(ctx, parts, body, tail).await
        }
        (&Method::GET | &Method::HEAD, "/me") => me::me(ctx, parts).await,
        // Any method: Envoy ext_authz sends the original one; verify reads
        // no body and changes nothing.
        (_, "/verify") => verify::verify(ctx, parts, conn, verify::Dialect::Realmgate, None).await,
        (&Method::GET | &Method::HEAD, "/keys") => Ok(keys::keys(state)),
        (&Method::GET | &Method::POST, "/logout") => logout::logout(ctx, parts, body).await,
        (&Method::GET | &Method::HEAD, "/logout/done") => Ok(logout::signed_out(ctx)),
        (&Method::GET | &Method::HEAD, "/logout/frontchannel") => {
            frontchannel::logout(ctx, parts, None).await
        }
        (&Method::GET | &Method::HEAD, rest) if rest.starts_with("/logout/frontchannel/") => {
            let name = rest.strip_prefix("/logout/frontchannel/").unwrap_or("");
            frontchannel::logout(ctx, parts, Some(name)).await
        }
        (&Method::GET | &Method::HEAD, "/refresh") => {
            crate::auth::refresh::endpoint(ctx, parts).await
        }
        (&Method::POST, "/backchannel-logout") => match form::read_form(body).await {
            Ok(form) => Ok(backchannel::logout(ctx, &form).await),
            Err(e) => Err(e),
        },
        (_, "/logout") => Err(GatewayError::MethodNotAllowed("GET, POST")),
        (_, "/backchannel-logout") => Err(GatewayError::MethodNotAllowed("POST")),
        (_, "/me" | "/logout/done" | "/refresh" | "/keys") => {
            Err(GatewayError::MethodNotAllowed("GET, HEAD"))
        }
        _ => Err(GatewayError::NotFound),
    }
}
