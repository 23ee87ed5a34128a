//! `GET /.auth/verify`: forward authentication for a proxy in front of the app
//! (nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`, Envoy
//! ext_authz). The proxy asks, the gateway answers; nothing is forwarded.
//!
//! Answers:
//!
//! - **200** with the `auth_request` profile's headers (`X-Auth-Request-User`,
//!   `-Email` when verified, `-Preferred-Username`, `-Groups`) when the session
//!   cookie is valid, or on a route with `api_audiences` the bearer token is
//!   (see `bearer`), and the route's policy allows the user. A public path of
//!   the route (known only from a trusted proxy, see below) is 200 without
//!   identity headers.
//! - **200** `{"anonymous": true}` without identity headers on a route with
//!   `auth = "optional"` when there is no session (SPEC 5.10).
//! - **302** to `/.auth/login?post_login_redirect_uri=<target>` for browser
//!   navigation (HTML `Accept`, forwarded method GET/HEAD) when the proxy says
//!   where the user was going with `X-Forwarded-Uri` or `?rd=` (Traefik, Caddy
//!   and Envoy pass such a 302 on to the browser).
//! - **401** JSON with `WWW-Authenticate: Bearer` otherwise. It always carries
//!   `X-Realmgate-Login-Url` (the same login URL the 302 would have used) so
//!   nginx, which treats anything but 2xx/401/403 from `auth_request` as an
//!   error, can redirect with `error_page 401` (see docs/policies.md). nginx
//!   sends the original URI as `X-Original-URI`, which never triggers a 302.
//! - **401** JSON with `WWW-Authenticate: Bearer error="invalid_token"` when
//!   a bearer token was sent to an `api_audiences` route and failed a check
//!   (never a 302: the client is a program); 400 for two `Authorization`
//!   headers.
//! - **403** JSON when signed in but the policy says no, or when no route
//!   serves the forwarded host and path.
//! - **400** JSON when a trusted proxy's forwarded path is not its own
//!   canonical form (SPEC 6.1): dot segments (`/admin/../static/x`), or a
//!   path `pathnorm` refuses (`..;`, `%2F..`, `\`, `%252e`), or one whose
//!   readings select different routes. The proxy forwards the path as it
//!   is, so the gateway cannot judge it as any one path.
//!
//! `GET /oauth2/auth` (oauth2-proxy's name, `endpoints::oauth2`) is this
//! endpoint in oauth2-proxy's dialect ([`Dialect::Oauth2Proxy`]): 202
//! instead of 200, and never a 302 (ingress-nginx's `auth-signin` sends the
//! browser to sign in on a 401).
//!
//! ingress-nginx's `auth-url` sends `X-Original-URL`
//! (`$scheme://$http_host$request_uri`) and `X-Auth-Request-Redirect`
//! (`$request_uri`). Both are believed from a trusted proxy only, at either
//! name of this endpoint: `X-Original-URL`'s path is judged like
//! `X-Original-URI`'s and its host like `X-Forwarded-Host` (a different
//! host or path in two such headers is unreadable, 400), and
//! `X-Auth-Request-Redirect` is the login target when no other header names
//! one. From anyone else both are ignored.
//!
//! Which route's policy applies: the route the router picked for this request
//! by its `Host` (and path), unless the peer is one of `trusted_proxies`. Only
//! then do `X-Forwarded-Host` and the path of `X-Forwarded-Uri` /
//! `X-Original-URI` select the route, exactly as the router would for the
//! original request, so per-path policies (`/admin` stricter than `/`) hold
//! behind a proxy. From anyone else those headers could select a laxer
//! route, so they are ignored for that purpose (they still name the login
//! target, which `redirect::safe_target` validates like any other).
//! The forwarded path is judged exactly as the pipeline judges a request's
//! own (`pathnorm::CanonicalTarget`): router, `public` and policy.

use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::json;

use crate::auth::form::{form_get, form_pairs};
use crate::auth::Ctx;
use crate::config::{AllowSettings, RouteAuth, RouteSettings};
use crate::pathnorm::CanonicalTarget;
use crate::peer::{host_of, ConnInfo};
use crate::phase::{authenticate, authorize, inject};
use crate::respond::{self, json, redirect, Body, GatewayError, Unjudgeable, LOGIN_PATH};
use crate::router::Lookup;

pub use crate::respond::X_REALMGATE_LOGIN_URL;

/// Where the proxy says the user was going (Traefik, Caddy, Envoy).
const X_FORWARDED_URI: &str = "x-forwarded-uri";
/// The same for nginx (`proxy_set_header X-Original-URI $request_uri`).
const X_ORIGINAL_URI: &str = "x-original-uri";
/// The method of the original request (Traefik, Caddy).
const X_FORWARDED_METHOD: &str = "x-forwarded-method";
/// ingress-nginx's name for the original method.
const X_ORIGINAL_METHOD: &str = "x-original-method";
/// The original host, believed from trusted proxies only.
const X_FORWARDED_HOST: &str = "x-forwarded-host";
/// The original URL, absolute (ingress-nginx); trusted proxies only.
const X_ORIGINAL_URL: &str = "x-original-url";
/// Longest forwarded URI looked at (longer ones are ignored, like a missing header).
const MAX_URI_LEN: usize = 8192;

/// Which endpoint's answers: realmgate's `/.auth/verify`, or oauth2-proxy's
/// `/oauth2/auth` (202 for 200, no 302).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Realmgate,
    Oauth2Proxy,
}

/// `GET /.auth/verify`: the pipeline's own `authenticate`, `authorize` and
/// `inject` phases, on the route the forwarded request selects.
/// `narrow`: restrictions the request itself adds to the route's policy
/// (`/oauth2/auth`'s query, `endpoints::oauth2`); both must allow the user.
pub(crate) async fn verify(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn: &ConnInfo,
    dialect: Dialect,
    narrow: Option<&AllowSettings>,
) -> Result<Response<Body>, GatewayError> {
    let mut resp = judge(ctx, parts, conn, dialect, narrow).await?;
    if dialect == Dialect::Oauth2Proxy && resp.status() == StatusCode::OK {
        *resp.status_mut() = StatusCode::ACCEPTED;
    }
    Ok(resp)
}

async fn judge(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn: &ConnInfo,
    dialect: Dialect,
    narrow: Option<&AllowSettings>,
) -> Result<Response<Body>, GatewayError> {
    let trusted = crate::peer::peer_is_trusted(&ctx.state.settings.server, conn);
    // Untrusted forwarded headers decide nothing, but (read as a trusted
    // proxy's) they must not name another route, nor a path whose raw form
    // resolves differently (SPEC 6.1: a 400 whoever sent it, as the proxy
    // in front forwards it as it is). Either way no answer is right: a
    // proxy left out of `trusted_proxies` would have its subrequests judged
    // by the wrong route (a user denied on /admin would get 200), and a 400
    // makes the mistake loud.
    if !trusted {
        match untrusted_forward(ctx, parts) {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!(route.name = %ctx.route.name, "forward auth refused: X-Forwarded-Uri/X-Original-URI/X-Forwarded-Host from a peer not in server.trusted_proxies names another route");
                return Ok(refused(Unjudgeable::UntrustedForward));
            }
            Err(why) => {
                tracing::warn!(route.name = %ctx.route.name, reason = why.reason(), "forward auth refused: the forwarded path (from a peer not in server.trusted_proxies) is not canonical or cannot be read");
                return Ok(refused(why));
            }
        }
    }
    let mut fwd = Forwarded::read(parts, trusted, ctx.forwarded_redirect.clone());
    if dialect == Dialect::Oauth2Proxy {
        // oauth2-proxy's /oauth2/auth never redirects: the proxy in front
        // sends the browser to /oauth2/start on a 401.
        fwd.may_redirect = false;
    }
    if fwd.unreadable_uri {
        tracing::warn!(route.name = %ctx.route.name, "forward auth refused: the forwarded URI cannot be read");
        return Ok(refused(Unjudgeable::UnreadableUri));
    }
    // SPEC 6.1: the proxy in front forwards the path as it is, so only a
    // path that is its own canonical form can be judged; anything else is
    // a 400 (the proxy should refuse or normalize it).
    let target = match fwd
        .trusted_path
        .as_deref()
        .map(forwarded_target)
        .transpose()
    {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!(route.name = %ctx.route.name, reason = why.reason(), "forward auth refused: the forwarded path is not canonical");
            return Ok(refused(why));
        }
    };
    // `X-Original-URL` may only name a host of the route the request's own
    // `Host` chose, never another route's: plain nginx passes a client's
    // copy into its auth subrequest, and a lax route's policy must not be
    // chosen for a strict route's request (SPEC 6.1). ingress-nginx's
    // `auth-url` on the app's host, or on a Service name added to the app's
    // route, both meet this; its path still picks among that host's routes.
    if fwd.host_from_original_url
        && !fwd.trusted_host.as_deref().is_some_and(|h| {
            crate::router::normalize_host(h)
                .is_some_and(|h| ctx.route.hosts.iter().any(|r| *r == h))
        })
    {
        tracing::warn!(route.name = %ctx.route.name, "forward auth refused: X-Original-URL names a host of another route");
        return Ok(refused(Unjudgeable::UnreadableUri));
    }
    let route = match policy_route(ctx, parts, &fwd, target.as_ref()) {
        Ok(route) => route,
        Err(why @ Unjudgeable::NoRoute) => {
            tracing::warn!(route.name = %ctx.route.name, reason = why.reason(), "forward auth refused: no route can be decided");
            return Ok(refused(why));
        }
        Err(why) => {
            tracing::warn!(route.name = %ctx.route.name, reason = why.reason(), "forward auth refused: the forwarded path is ambiguous");
            return Ok(refused(why));
        }
    };
    // WebDAV's COPY/MOVE `Destination` and the methods that act on a whole
    // collection, judged as the pipeline judges them (`phase::route`): the
    // proxy forwards them as they are (review 11).
    let public = target.as_ref().is_some_and(|t| t.is_public(&route.public));
    let host = match &fwd.trusted_host {
        Some(h) => h.clone(),
        None => host_of(parts),
    };
    // `/_next/image?url=/admin/x.png`: judged as that path too (review 12, C12).
    let public = match &target {
        Some(t) => crate::phase::route::check_next_image(
            &ctx.state.router,
            &host,
            fwd.trusted_query.as_deref(),
            t,
            &route,
            public,
        )?,
        None => public,
    };
    crate::phase::route::check_destination(
        &ctx.state.router,
        &host,
        &parts.headers,
        &route,
        public,
    )?;
    // The other host and path overrides the proxy path refuses or strips
    // (review 13, H3): here they are forwarded as they are, by the proxy in
    // front, to an app that may act on them.
    let own;
    let judged = match &target {
        Some(t) => t,
        None => {
            own = CanonicalTarget::parse(parts.uri.path()).map_err(|_| {
                GatewayError::Unjudgeable(Unjudgeable::NonCanonicalPath(NOT_CANONICAL))
            })?;
            &own
        }
    };
    crate::phase::route::check_forwarded_host(
        &ctx.state.router,
        true,
        &parts.headers,
        &route,
        judged,
    )?;
    check_path_overrides(&parts.headers, judged)?;
    check_framework_internals(&parts.headers)?;
    if let Some(target) = &target {
        let method = original_method(parts, trusted)?;
        crate::phase::route::check_subtree(
            &ctx.state.router,
            &host,
            &method,
            &parts.headers,
            &route,
            target,
        )?;
    }
    if public {
        return Ok(json(StatusCode::OK, &json!({"public": true})));
    }
    // The same authentication as the pipeline's (a bearer token on an API
    // route decides alone; else the session, refreshed when due), with the
    // cookie read, not removed: nothing is forwarded.
    let session = ctx.state.cookies.read_for(&parts.headers, ctx.https);
    // A restriction in the request is one no anonymous user meets.
    let optional = route.auth == RouteAuth::Optional && narrow.is_none();
    let authenticated =
        match authenticate::authenticate(ctx.state, &route, &parts.headers, session).await {
            Ok(a) => a,
            // `auth = "optional"` (SPEC 5.10): anonymous passes, without
            // identity headers; a refused bearer token does not.
            Err(GatewayError::NotSignedIn) if optional => return Ok(anonymous()),
            Err(GatewayError::NotSignedIn) => return not_signed_in(ctx, parts, &fwd),
            Err(e) => return Err(e),
        };
    let connection = authenticated.connection;
    // 200 with the identity headers, or 403 JSON.
    let permit = match authorize::authorize(&route, &connection, authenticated.user) {
        Ok(permit) => permit,
        // As in the pipeline: a user of a connection the optional route
        // does not accept is anonymous there.
        Err(GatewayError::Denied(_)) if optional => return Ok(anonymous()),
        Err(denied) => return Ok(respond::json_error(&denied)),
    };
    if let Some(allow) = narrow {
        if let Err(reason) = crate::policy::decide_allow(allow, Some(&connection), permit.user()) {
            tracing::info!(route.name = %route.name, user.id = %permit.user().user_id, %reason, "access denied by the restrictions in the /oauth2/auth query");
            let denied = crate::policy::Denied {
                reason,
                user: permit.user_arc().clone(),
            };
            return Ok(respond::json_error(&GatewayError::Denied(Box::new(denied))));
        }
    }
    // The app's host, for a pomerium route's assertion (`aud`).
    let app_host = crate::router::normalize_host(&host);
    let headers = inject::forward_auth_headers(
        ctx.state,
        &route,
        &permit,
        &connection,
        &ctx.origin,
        app_host.as_deref(),
    );
    let mut resp = json(StatusCode::OK, &json!({"user_id": permit.user().user_id}));
    resp.headers_mut().extend(headers);
    Ok(resp)
}

/// The method of the request the proxy asks about: a trusted proxy's
/// `X-Forwarded-Method` (Traefik, Caddy) or `X-Original-Method`
/// (ingress-nginx), else this request's own (Envoy sends the original).
///
/// ingress-nginx sets `X-Original-Method` but passes the client's own
/// headers on, `X-Forwarded-Method` included: two that disagree, or one
/// that cannot be read, is unreadable (as two URIs are), never the other
/// one or this request's method (review 11). `Err`: a 400.
fn original_method(parts: &Parts, trusted: bool) -> Result<Method, GatewayError> {
    if !trusted {
        return Ok(parts.method.clone());
    }
    let unreadable = || GatewayError::Unjudgeable(Unjudgeable::UnreadableUri);
    let mut found: Option<Method> = None;
    for name in [X_FORWARDED_METHOD, X_ORIGINAL_METHOD] {
        if !sent(&parts.headers, name) {
            continue;
        }
        let method = header_text(&parts.headers, name)
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .ok_or_else(unreadable)?;
        if found.as_ref().is_some_and(|f| *f != method) {
            return Err(unreadable());
        }
        found = Some(method);
    }
    Ok(found.unwrap_or_else(|| parts.method.clone()))
}

/// 200 without identity headers: an anonymous user of an optional route.
fn anonymous() -> Response<Body> {
    json(StatusCode::OK, &json!({"anonymous": true}))
}

/// The JSON answer for a forwarded request that cannot be judged.
fn refused(why: Unjudgeable) -> Response<Body> {
    respond::json_error(&GatewayError::Unjudgeable(why))
}

/// What the proxy told us about the original request.
struct Forwarded {
    /// Validated later; from `?rd=`, else `X-Forwarded-Uri`, else `X-Original-URI`.
    target: Option<String>,
    /// `?rd=` or `X-Forwarded-Uri` was given: a browser may be redirected.
    may_redirect: bool,
    /// The original method is GET or HEAD (or unknown).
    navigation: bool,
    /// From a trusted proxy only: the original host (`X-Forwarded-Host`,
    /// else the host of `X-Original-URL`).
    trusted_host: Option<String>,
    /// `trusted_host` is `X-Original-URL`'s: it may only name a host of the
    /// route the request's own `Host` chose.
    host_from_original_url: bool,
    /// From a trusted proxy only: the original path, without query.
    trusted_path: Option<String>,
    /// From a trusted proxy only: the original query (Next.js's image
    /// optimizer reads another path from it, `phase::route::check_next_image`).
    trusted_query: Option<String>,
    /// From a trusted proxy only: a URI header was sent but cannot be read
    /// (repeated, too long, not visible ASCII), or `X-Forwarded-Uri` and
    /// `X-Original-URI` name different paths. Never judged as another
    /// path: Traefik and Caddy pass the client's own headers on, so the
    /// other header (or none, the root) may be the client's choice.
    unreadable_uri: bool,
}

impl Forwarded {
    /// `redirect_header`: `X-Auth-Request-Redirect` from a trusted proxy
    /// (`Ctx::forwarded_redirect`, read before identity headers are stripped).
    fn read(parts: &Parts, trusted: bool, redirect_header: Option<String>) -> Forwarded {
        let query = form_pairs(parts.uri.query().unwrap_or("").as_bytes());
        let rd = form_get(&query, "rd").map(str::to_string);
        let forwarded_uri = header_text(&parts.headers, X_FORWARDED_URI);
        let original_uri = header_text(&parts.headers, X_ORIGINAL_URI);
        // ingress-nginx's headers: from a trusted proxy only (SPEC 6.1).
        let original_url = trusted
            .then(|| header_text(&parts.headers, X_ORIGINAL_URL))
            .flatten();
        let may_redirect = rd.is_some() || forwarded_uri.is_some();
        let paths: Vec<&str> = [&forwarded_uri, &original_uri, &original_url]
            .into_iter()
            .flatten()
            .map(|u| path_of(u))
            .collect();
        let two_paths = paths.windows(2).any(|w| w[0] != w[1]);
        let url_host: Option<Option<String>> = original_url
            .as_deref()
            .map(|u| host_of_url(u).map(str::to_string));
        // Compared as the router compares hosts (lowercase, no port).
        let same_host = |a: &str, b: &str| {
            crate::router::normalize_host(a)
                .is_some_and(|a| Some(a) == crate::router::normalize_host(b))
        };
        // A list means several proxies, each naming the host it was asked
        // for: one host however many times. Different hosts (a proxy that
        // appends to the client's own copy, as Apache's mod_proxy does) or
        // a repeated header cannot say which is the user's, so it is
        // unreadable (below), never the first item (review 11).
        let forwarded_host = header_text(&parts.headers, X_FORWARDED_HOST).and_then(|h| {
            let mut hosts = h.split(',').map(str::trim);
            let first = hosts.next()?;
            hosts
                .all(|other| same_host(first, other))
                .then(|| first.to_string())
        });
        let two_hosts =
            matches!((&url_host, &forwarded_host), (Some(Some(u)), Some(f)) if !same_host(u, f));
        // Skipping an unreadable header would judge the other one, or `/`.
        let unreadable_uri = trusted
            && ((forwarded_uri.is_none() && sent(&parts.headers, X_FORWARDED_URI))
                || (original_uri.is_none() && sent(&parts.headers, X_ORIGINAL_URI))
                || (original_url.is_none() && sent(&parts.headers, X_ORIGINAL_URL))
                || (forwarded_host.is_none() && sent(&parts.headers, X_FORWARDED_HOST))
                || matches!(url_host, Some(None))
                || two_paths
                || two_hosts);
        let uri = forwarded_uri.or(original_uri).or(original_url);
        let navigation = match header_text(&parts.headers, X_FORWARDED_METHOD) {
            Some(m) => m.eq_ignore_ascii_case("GET") || m.eq_ignore_ascii_case("HEAD"),
            None => parts.method == Method::GET || parts.method == Method::HEAD,
        };
        let host_from_original_url =
            trusted && forwarded_host.is_none() && matches!(url_host, Some(Some(_)));
        let trusted_host = trusted
            .then(|| forwarded_host.or(url_host.flatten()))
            .flatten();
        let trusted_path = trusted
            .then(|| uri.as_deref().map(path_of))
            .flatten()
            .map(str::to_string);
        let trusted_query = trusted
            .then(|| uri.as_deref().and_then(query_of))
            .flatten()
            .map(str::to_string);
        Forwarded {
            target: rd.or(uri.clone()).or(redirect_header),
            may_redirect,
            navigation,
            trusted_host,
            host_from_original_url,
            trusted_path,
            trusted_query,
            unreadable_uri,
        }
    }
}

/// A single header's value as text; absent when repeated, empty, too long or not visible ASCII.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let text = first.to_str().ok()?.trim();
    (!text.is_empty() && text.len() <= MAX_URI_LEN).then(|| text.to_string())
}

/// True when `name` was sent with a non-empty value (which [`header_text`]
/// may still be unable to read: repeated, too long, not visible ASCII).
fn sent(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().is_empty())
}

/// The path of a forwarded URI: `/a/b?x#y` -> `/a/b`; an absolute
/// `https://h/a?x` -> `/a` (its host is not believed: only X-Forwarded-Host is).
fn path_of(uri: &str) -> &str {
    let rest = match uri.split_once("://") {
        Some((_, after)) if !uri.starts_with('/') => {
            let start = after.find('/').unwrap_or(after.len());
            &after[start..]
        }
        _ => uri,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// The query of a forwarded URI: `/a?x=1#f` -> `x=1`.
fn query_of(uri: &str) -> Option<&str> {
    let (_, query) = uri.split_once('?')?;
    Some(query.split('#').next().unwrap_or(query))
}

/// The authority of an absolute URL (`https://h:8443/a` -> `h:8443`);
/// `None` for anything else (a path-only value has no host to believe).
fn host_of_url(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    // Up to the first `/` only, and then all of it must be a host: nginx
    // accepts `?` and `#` in a Host header, so `https://a.test?` (built from
    // `$http_host`) is not `a.test` to the proxy that routed the request.
    let end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_like = !authority.is_empty()
        && !authority.contains(['@', '?', '#'])
        && crate::router::normalize_host(authority).is_some();
    host_like.then_some(authority)
}

/// Path overrides that apps and frameworks route on (IIS URL Rewrite and
/// Symfony's `X-Rewrite-URL`, Envoy's original path, ...), besides those
/// this endpoint reads as the forwarded URI (`X-Forwarded-Uri`,
/// `X-Original-URI`, `X-Original-URL`). The proxy path removes them from
/// every peer (`headers::spoofable`); the proxy in front of this endpoint
/// passes them on to the app.
const PATH_OVERRIDES: [&str; 10] = [
    "x-rewrite-url",
    "x-rewrite-uri",
    "x-original-path",
    "x-original-request-uri",
    "x-forwarded-url",
    "x-forwarded-path",
    "x-envoy-original-path",
    "x-envoy-original-url",
    "x-request-uri",
    "x-waws-unencoded-url",
];

/// Each path override sent (from any peer) must name the very path judged:
/// an app that routes on `X-Rewrite-URL: /admin/users` would serve it
/// under the decision made for `/static/x` (a public path, or a laxer
/// route's). Another path, or one that is not its own canonical form, is
/// a 400 (SPEC 6.1), as the proxy in front forwards the request as it is.
fn check_path_overrides(
    headers: &HeaderMap,
    judged: &CanonicalTarget<'_>,
) -> Result<(), GatewayError> {
    for name in PATH_OVERRIDES {
        for value in headers.get_all(name) {
            let same = value.to_str().ok().is_some_and(|text| {
                forwarded_target(path_of(text.trim())).is_ok_and(|t| t.judged() == judged.judged())
            });
            if !same {
                return Err(GatewayError::BadRequest(
                    "A path override header (X-Rewrite-URL, X-Original-Path, X-Forwarded-Path, X-Envoy-Original-Path, ...) names another path than the one this request is judged by, or one that is not its own canonical form; an app that routes on it would serve that path. The proxy in front should remove such headers from client requests.",
                ));
            }
        }
    }
    Ok(())
}

/// Next.js's internal routing headers, which no client sends: one skips its
/// middleware (`x-middleware-subrequest`, CVE-2025-29927), the others pick
/// the page or output served. The proxy path removes them from every peer;
/// here, where the proxy in front passes them on, their presence is a 400.
fn check_framework_internals(headers: &HeaderMap) -> Result<(), GatewayError> {
    let internal = |name: &str| {
        matches!(
            name,
            "x-middleware-subrequest" | "x-matched-path" | "x-now-route-matches"
        ) || name.starts_with("x-invoke-")
    };
    if headers.keys().any(|k| internal(k.as_str())) {
        return Err(GatewayError::BadRequest(
            "The request carries a Next.js internal header (x-middleware-subrequest, x-matched-path, x-now-route-matches, x-invoke-*) that makes the app skip its middleware or serve another page. The proxy in front should remove them from client requests.",
        ));
    }
    Ok(())
}

/// The canonical target of a trusted proxy's forwarded path, which must be
/// its own canonical form (an empty path, `https://host`, is `/`).
fn forwarded_target(path: &str) -> Result<CanonicalTarget<'_>, Unjudgeable> {
    let path = if path.is_empty() { "/" } else { path };
    match CanonicalTarget::parse(path) {
        Ok(t) if t.rewritten() => Err(Unjudgeable::NonCanonicalPath(NOT_CANONICAL)),
        Ok(t) => Ok(t),
        Err(e) => Err(Unjudgeable::NonCanonicalPath(e.message())),
    }
}

/// The route whose policy decides (see the module docs).
fn policy_route(
    ctx: &Ctx<'_>,
    parts: &Parts,
    fwd: &Forwarded,
    target: Option<&CanonicalTarget<'_>>,
) -> Result<Arc<RouteSettings>, Unjudgeable> {
    if fwd.trusted_host.is_none() && target.is_none() {
        return Ok(ctx.route.clone());
    }
    let host = match &fwd.trusted_host {
        Some(h) => crate::router::normalize_host(h)
            .ok_or(Unjudgeable::NoRoute)?
            .into_owned(),
        None => host_of(parts),
    };
    let root =
        CanonicalTarget::parse("/").map_err(|e| Unjudgeable::NonCanonicalPath(e.message()))?;
    // The same router, on the same canonical form, as the pipeline uses
    // for the request itself.
    match ctx
        .state
        .router
        .lookup_target(&host, target.unwrap_or(&root))
    {
        Lookup::Found(route) => Ok(route.clone()),
        Lookup::UnknownHost | Lookup::NoPrefix => Err(Unjudgeable::NoRoute),
        Lookup::AmbiguousPath => Err(Unjudgeable::AmbiguousPath),
    }
}

/// True when the forwarded host and URI of an untrusted peer, read as a
/// trusted proxy's would be, select another route than the one the request
/// is judged by (review 9). Untrusted, they decide nothing; silently
/// ignoring them let a proxy missing from `trusted_proxies` get every
/// subrequest judged by the route of `/.auth/verify`'s own path (a user
/// denied on `/admin` got 200). Err for a forwarded path that is not its
/// own canonical form (SPEC 6.1's 400, whoever sent it), and for forwarded
/// URI or host headers that cannot be read (repeated, too long, not visible
/// ASCII, two that disagree): the proxy forwards the request they describe
/// all the same, and ignoring them judged it by this route, so a client
/// (through Caddy or Traefik, which pass its own `X-Original-URI` on) or a
/// padded URI turned the 400 for another route into a 200 (review 11).
/// Values that select no route are still only a sign-in target, validated
/// as before.
fn untrusted_forward(ctx: &Ctx<'_>, parts: &Parts) -> Result<bool, Unjudgeable> {
    let as_trusted = Forwarded::read(parts, true, None);
    if as_trusted.unreadable_uri {
        return Err(Unjudgeable::UnreadableUri);
    }
    if as_trusted.trusted_host.is_none() && as_trusted.trusted_path.is_none() {
        return Ok(false);
    }
    // Only a path: a value that is no path at all (`javascript:...`) is no
    // request a proxy forwards, and stays a (validated) sign-in target.
    let target = match as_trusted.trusted_path.as_deref() {
        Some(path) if path.starts_with('/') => Some(forwarded_target(path)?),
        Some(path) => forwarded_target(path).ok(),
        None => None,
    };
    // Untrusted, the request is judged by its own route (`policy_route`
    // without a forwarded host or path).
    match policy_route(ctx, parts, &as_trusted, target.as_ref()) {
        // Next.js's image optimizer fetching another route's path is the
        // trusted proxy's 400 too (review 12, C12).
        Ok(named)
            if target.as_ref().is_some_and(|t| {
                let host = as_trusted
                    .trusted_host
                    .clone()
                    .unwrap_or_else(|| host_of(parts));
                crate::phase::route::check_next_image(
                    &ctx.state.router,
                    &host,
                    as_trusted.trusted_query.as_deref(),
                    t,
                    &named,
                    false,
                )
                .is_err()
            }) =>
        {
            Err(Unjudgeable::AmbiguousPath)
        }
        Ok(named) => Ok(!Arc::ptr_eq(&named, ctx.route)),
        // A path whose readings select different routes (`/ADMIN/users`,
        // `/admin;x/users`, `//x/admin/users`, `/index.php/admin/users`) is
        // the trusted proxy's 400 too: set aside, it was judged by this
        // route, and the proxy forwards it to an app that may serve it
        // from a stricter one (review 12).
        Err(why @ Unjudgeable::AmbiguousPath) => Err(why),
        Err(_) => Ok(false),
    }
}

/// 302 to the login page for a browser whose proxy can pass it on; else 401
/// JSON. Both name the login URL with the validated target.
fn not_signed_in(
    ctx: &Ctx<'_>,
    parts: &Parts,
    fwd: &Forwarded,
) -> Result<Response<Body>, GatewayError> {
    let target = ctx.safe_target(parts, fwd.target.as_deref());
    let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    let login = format!("{LOGIN_PATH}?post_login_redirect_uri={encoded}");
    if fwd.may_redirect && fwd.navigation && crate::respond::prefers_html(&parts.headers) {
        return redirect(&login, []);
    }
    Ok(respond::forward_auth_sign_in(&login))
}

/// The 400 text for a forwarded path with dot segments.
const NOT_CANONICAL: &str = "The forwarded path has dot segments ('.', '..' or %2e forms) that the proxy in front passes on unresolved, so the app could serve another path than the one checked. The proxy should refuse such paths or forward the resolved path.";

#[cfg(test)]
mod tests {
    use super::{host_of_url, path_of};

    #[test]
    fn host_of_original_urls() {
        assert_eq!(host_of_url("https://app.test/a?b"), Some("app.test"));
        assert_eq!(host_of_url("http://app.test:8080"), Some("app.test:8080"));
        // Only absolute http(s) URLs name a host; userinfo is not a host.
        assert_eq!(host_of_url("/a"), None);
        assert_eq!(host_of_url("javascript://app.test/"), None);
        assert_eq!(host_of_url("https://evil@app.test/"), None);
        assert_eq!(host_of_url("https:///a"), None);
        // nginx routes `Host: app.test?` to its default server, not to
        // app.test: such an authority names no host.
        assert_eq!(host_of_url("https://app.test?/a"), None);
        assert_eq!(host_of_url("https://app.test#x/a"), None);
        assert_eq!(host_of_url("https://app.test?"), None);
    }

    #[test]
    fn path_of_forwarded_uris() {
        assert_eq!(path_of("/a/b?x=1#f"), "/a/b");
        assert_eq!(path_of("/"), "/");
        assert_eq!(path_of("https://evil.example/admin?x"), "/admin");
        assert_eq!(path_of("https://evil.example"), "");
        assert_eq!(path_of("/x?next=https://evil.example/"), "/x");
    }
}
