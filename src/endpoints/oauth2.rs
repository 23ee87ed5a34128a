//! oauth2-proxy's endpoint names, on routes with `oauth2_proxy_endpoints =
//! true` (issue 22), so redirect URIs registered for oauth2-proxy and
//! ingress-nginx `auth-url` / `auth-signin` annotations keep working. Each
//! is an alias of a `/.auth/*` handler; only `/oauth2/auth`'s query
//! restrictions ([`query_restrictions`]) are logic of their own:
//!
//! | oauth2-proxy | realmgate |
//! | --- | --- |
//! | `/oauth2/start?rd=`, `/oauth2/sign_in` | `/.auth/login` (the same target checks) |
//! | `/oauth2/callback` | `/.auth/login/{connection}/callback`, the connection from the pending sign-in's `state` |
//! | `/oauth2/sign_out?rd=` | `/.auth/logout` |
//! | `/oauth2/auth` | `/.auth/verify`, answering 202 (not 200) and never 302; its query's `allowed_*` restrictions narrow the route's policy |
//! | `/oauth2/userinfo` | `/.auth/me`, in oauth2-proxy's JSON shape |
//!
//! Which requests come here ([`is_alias_target`]): on such a route every
//! path whose canonical form (`pathnorm`), as forwarded or as judged, is
//! `/oauth2` or below it. None of them reaches the app, as with `/.auth/`:
//! an upstream that decodes `/oauth2%2Fauth` never sees it. Only the
//! plain spellings are served ([`serve`] looks at the canonical path as
//! forwarded); an encoded one (`/oauth2%2Fauth`) is a 404. Paths that are
//! not `/oauth2/...` after canonicalisation (`/oauth2/../app` is `/app`,
//! `//oauth2/auth`, `/OAUTH2/auth`: oauth2-proxy's paths are case-sensitive
//! too) are the app's and go through sign-in and policy like any other. On
//! a route without the option, `/oauth2/*` is the app's.

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Response, Uri};

use crate::auth::form::{form_get, form_pairs};
use crate::auth::Ctx;
use crate::config::RouteSettings;
use crate::pathnorm::CanonicalTarget;
use crate::peer::ConnInfo;
use crate::respond::{Body, GatewayError};

use super::{logout, me, verify};

/// The prefix oauth2-proxy's endpoints live under (its `--proxy-prefix`
/// default, the only one realmgate offers).
pub const PREFIX: &str = "/oauth2";

/// True for `/oauth2` and any path below it.
pub fn is_alias_path(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// True when the request is realmgate's at oauth2-proxy's names: the route
/// has `oauth2_proxy_endpoints` and the canonical target, as forwarded or
/// as judged (decoded), is under `/oauth2`.
pub fn is_alias_target(route: &RouteSettings, target: &CanonicalTarget<'_>) -> bool {
    route.oauth2_proxy_endpoints && (is_alias_path(target.path()) || is_alias_path(target.judged()))
}

/// Serves `/oauth2/*` (the caller checked [`is_alias_target`]).
pub(crate) async fn serve(
    ctx: &Ctx<'_>,
    parts: &mut Parts,
    body: hyper::body::Incoming,
    conn: &ConnInfo,
) -> Result<Response<Body>, GatewayError> {
    if !ctx.route.oauth2_proxy_endpoints {
        return Err(GatewayError::NotFound);
    }
    let path = parts.uri.path().to_string();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    match (&parts.method, rest) {
        (&Method::GET | &Method::HEAD, "/start" | "/sign_in") => {
            redirect_from_trusted_proxy(ctx, parts)?;
            crate::auth::signin::serve(ctx, parts, body, "/login", conn).await
        }
        (_, "/callback") => crate::auth::signin::oauth2_callback(ctx, parts, body).await,
        (&Method::GET | &Method::POST, "/sign_out") => logout::logout(ctx, parts, body).await,
        // Any method, as `/.auth/verify`: nginx sends the original one.
        (_, "/auth") => {
            // JSON like every other answer of this endpoint.
            let narrow = match query_restrictions(ctx, parts) {
                Ok(narrow) => narrow,
                Err(e) => return Ok(crate::respond::json_error(&e)),
            };
            verify::verify(
                ctx,
                parts,
                conn,
                verify::Dialect::Oauth2Proxy,
                narrow.as_ref(),
            )
            .await
        }
        (&Method::GET | &Method::HEAD, "/userinfo") => me::userinfo(ctx, parts).await,
        (_, "/sign_out") => Err(GatewayError::MethodNotAllowed("GET, POST")),
        (_, "/start" | "/sign_in" | "/userinfo") => {
            Err(GatewayError::MethodNotAllowed("GET, HEAD"))
        }
        _ => Err(GatewayError::NotFound),
    }
}

/// oauth2-proxy's `/oauth2/auth` query parameters that narrow who passes
/// (ingress-nginx `auth-url: …/oauth2/auth?allowed_groups=admins`): the
/// user must also be in one of `allowed_groups`, have one of
/// `allowed_emails` and an email of one of `allowed_email_domains` (each
/// comma-separated, repeatable; empty entries ignored, as oauth2-proxy
/// does). They are read as `[route.allow]`'s `groups`, `users` and
/// `email_domains` are (`config::allow_lists`). Ignoring them would let
/// every signed-in user through a restriction the operator wrote, so one
/// that cannot be read is a 403 (fail closed), not dropped.
fn query_restrictions(
    ctx: &Ctx<'_>,
    parts: &Parts,
) -> Result<Option<crate::config::AllowSettings>, GatewayError> {
    let query = form_pairs(parts.uri.query().unwrap_or("").as_bytes());
    let list = |name: &str| -> Vec<String> {
        query
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .filter(|entry| !entry.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (groups, users, domains) = (
        list("allowed_groups"),
        list("allowed_emails"),
        list("allowed_email_domains"),
    );
    if groups.is_empty() && users.is_empty() && domains.is_empty() {
        return Ok(None);
    }
    crate::config::allow_lists(groups, users, domains, &ctx.state.settings.connections)
        .map(Some)
        .map_err(|problem| {
            tracing::warn!(
                route.name = %ctx.route.name,
                %problem,
                "/oauth2/auth refused: a restriction in its query cannot be read; fix the proxy's auth URL or use [route.allow]"
            );
            GatewayError::Unjudgeable(crate::respond::Unjudgeable::UnreadableRestriction)
        })
}

/// oauth2-proxy takes the target of `/oauth2/start` from `rd`, else from
/// `X-Auth-Request-Redirect`. realmgate believes that header from a trusted
/// proxy only (SPEC 6.1; `Ctx::forwarded_redirect`), and adds it to the
/// query as `rd`, where the login handler validates it like any target
/// (`redirect::safe_target`).
fn redirect_from_trusted_proxy(ctx: &Ctx<'_>, parts: &mut Parts) -> Result<(), GatewayError> {
    let query = form_pairs(parts.uri.query().unwrap_or("").as_bytes());
    if form_get(&query, "rd").is_some() || form_get(&query, "post_login_redirect_uri").is_some() {
        return Ok(());
    }
    let Some(target) = &ctx.forwarded_redirect else {
        return Ok(());
    };
    let mut q = url::form_urlencoded::Serializer::new(parts.uri.query().unwrap_or("").to_string());
    q.append_pair("rd", target);
    let pq = format!("{}?{}", parts.uri.path(), q.finish());
    let bad = || GatewayError::BadRequest("The request target is not a valid path.");
    let mut uri_parts = parts.uri.clone().into_parts();
    uri_parts.path_and_query = Some(pq.parse::<PathAndQuery>().map_err(|_| bad())?);
    parts.uri = Uri::from_parts(uri_parts).map_err(|_| bad())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_paths_are_the_prefix_and_below() {
        for p in ["/oauth2", "/oauth2/", "/oauth2/auth", "/oauth2/x/y"] {
            assert!(is_alias_path(p), "{p}");
        }
        for p in [
            "/oauth2x",
            "/oauth22/auth",
            "/OAUTH2/auth",
            "//oauth2/auth",
            "/",
            "/app/oauth2/auth",
        ] {
            assert!(!is_alias_path(p), "{p}");
        }
    }

    #[test]
    fn encoded_and_dotted_spellings_are_judged_on_the_canonical_form() {
        // Decoded, it is an alias: never forwarded (serve answers 404 for
        // the encoded spelling).
        let t = CanonicalTarget::parse("/oauth2%2Fauth").unwrap();
        assert!(is_alias_path(t.judged()) && !is_alias_path(t.path()));
        // Dot segments leave /oauth2: the app's path, signed in as usual.
        let t = CanonicalTarget::parse("/oauth2/../admin").unwrap();
        assert_eq!(t.path(), "/admin");
        assert!(!is_alias_path(t.path()) && !is_alias_path(t.judged()));
        let t = CanonicalTarget::parse("/oauth2/%2e%2e/admin").unwrap();
        assert!(!is_alias_path(t.path()) && !is_alias_path(t.judged()));
        // Into /oauth2 from elsewhere: an alias once resolved.
        let t = CanonicalTarget::parse("/app/../oauth2/auth").unwrap();
        assert!(is_alias_path(t.path()));
    }
}
