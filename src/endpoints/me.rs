//! `GET /.auth/me`: the signed-in user as JSON. On a route with
//! `headers = "easyauth"`, in Easy Auth's shape (SPEC 5.10), so apps and
//! single-page front ends moved from App Service keep working.

use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::json;

use crate::auth::Ctx;
use crate::config::{ConnectionSettings, HeaderProfile, RouteSettings};
use crate::headers::identity::{borrowed_group, easy_auth_idp, principal_claims, Vouched};
use crate::respond::{json, Body, GatewayError};
use crate::session::model::{strs, Session};

/// The signed-in user as JSON; 401 JSON when not signed in.
pub(crate) async fn me(ctx: &Ctx<'_>, parts: &Parts) -> Result<Response<Body>, GatewayError> {
    let Some(s) = signed_in(ctx, parts).await? else {
        return Ok(not_signed_in());
    };
    let conn = ctx.state.connection(&s.connection);
    if let (HeaderProfile::EasyAuth, Some(c)) = (ctx.route.headers, conn) {
        return Ok(json(StatusCode::OK, &easy_auth(ctx.route, c, &s)));
    }
    let mut body = json!({
        "user_id": s.user_id,
        "email": s.email,
        // True only for an email that counts (verified and one plain
        // addr-spec, `Session::verified_email`): the one headers carry.
        "email_verified": conn.and_then(|c| s.vouched_email(c)).is_some(),
        "email_verified_by": s.email_trust,
        "name": conn.and_then(|c| s.vouched_name(c)),
        // Not another connection's domain (`Session::vouched_username`):
        // single-page apps show and key on it as Easy Auth's name.
        "preferred_username": conn.and_then(|c| s.vouched_username(c)),
        "groups": shown_groups(conn.map(|c| &**c), &s),
        "roles": strs(&s.roles),
        "connection": s.connection,
        "tenant_id": conn.and_then(|c| s.tenant(c)),
        "expires_at": s.expires_at,
    });
    // Names where the headers show names: `group_names` of the connection,
    // and Graph's with `group_names_from_graph` (first hour 6). `groups`
    // stays the ids, as before.
    if let Some(c) = conn {
        let names = crate::connection::entra::group_names::names_of(c, &s.groups);
        if !names.is_empty() || c.group_names_from_graph {
            body["group_names"] = names.into();
        }
    }
    if conn.is_some_and(|c| c.extended_profile) {
        body["claims"] = s
            .claims
            .clone()
            .map(serde_json::Value::Object)
            .unwrap_or_else(|| json!({}));
    }
    Ok(json(StatusCode::OK, &body))
}

/// The session of this request's cookie, if it is valid and its connection
/// still configured.
async fn signed_in(
    ctx: &Ctx<'_>,
    parts: &Parts,
) -> Result<Option<std::sync::Arc<Session>>, GatewayError> {
    let session = match ctx.state.cookies.read_for(&parts.headers, ctx.https) {
        Some(id) => crate::auth::state::load_session(ctx.state, &id).await?,
        None => None,
    };
    Ok(session.filter(|s| ctx.state.connection(&s.connection).is_some()))
}

/// The session's groups as `/.auth/me` and `/oauth2/userinfo` show them:
/// without a value that reads as another connection's mapped group, as in
/// the group headers (`borrowed_group`). Apps and their front ends read
/// these answers with the user's cookie as they read the headers.
fn shown_groups<'a>(conn: Option<&ConnectionSettings>, s: &'a Session) -> Vec<&'a str> {
    strs(&s.groups)
        .into_iter()
        .filter(|g| !conn.is_some_and(|c| borrowed_group(c, g)))
        .collect()
}

fn not_signed_in() -> Response<Body> {
    json(
        StatusCode::UNAUTHORIZED,
        &json!({"error": "not_signed_in", "message": "No session. Sign in at /.auth/login."}),
    )
}

/// `GET /oauth2/userinfo` (`endpoints::oauth2`): the session in
/// oauth2-proxy's shape, `{"user", "email", "groups", "preferredUsername"}`,
/// 401 when not signed in. `email` is the verified email only (the one
/// headers carry); `user` is realmgate's user id (SPEC 6.1), not
/// oauth2-proxy's (docs/migrating.md).
pub(crate) async fn userinfo(ctx: &Ctx<'_>, parts: &Parts) -> Result<Response<Body>, GatewayError> {
    let Some(s) = signed_in(ctx, parts).await? else {
        return Ok(not_signed_in());
    };
    let mut body = json!({"user": s.user_id});
    let conn = ctx.state.connection(&s.connection);
    if let Some(email) = conn.and_then(|c| s.vouched_email(c)) {
        body["email"] = email.into();
    }
    let groups = shown_groups(conn.map(|c| &**c), &s);
    if !groups.is_empty() {
        body["groups"] = groups.into();
    }
    if let Some(u) = conn.and_then(|c| s.vouched_username(c)) {
        body["preferredUsername"] = u.into();
    }
    Ok(json(StatusCode::OK, &body))
}

/// Easy Auth's `/.auth/me`: an array of one `{provider_name, user_id,
/// user_claims: [{typ, val}], access_token, id_token, expires_on}`.
/// `user_id` is what App Service puts there (the principal's name: the
/// username, else the verified email, else the user id); `expires_on` an
/// ISO 8601 UTC time. The tokens are given only where the route already
/// passes them to the app (`pass_access_token`, `pass_id_token`): this
/// answer is readable by any script of the origin, and the refresh token
/// never is. Nor are they given to a user the route does not admit (its
/// connections and `[route.allow]`, `policy::decide`): the proxy never
/// hands such a user's tokens to the app, and a script of the app's own
/// pages (public ones, or any page of an optional route) would read them
/// here, say an employee's from a partner-only route that shares the
/// session through `cookie_domain` (review 14).
fn easy_auth(route: &RouteSettings, conn: &ConnectionSettings, s: &Session) -> serde_json::Value {
    let admitted = crate::policy::decide(route, Some(conn), s).is_ok();
    let vouched = Vouched::of(s, conn);
    let groups = shown_groups(Some(conn), s);
    let claims = principal_claims(s, conn, &vouched, groups.iter().copied());
    let user_claims: Vec<serde_json::Value> = claims
        .iter()
        .map(|c| json!({"typ": c.typ, "val": c.val}))
        .collect();
    let expires_on = std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(s.expires_at))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string());
    let user_id = vouched.principal_name();
    json!([{
        "provider_name": easy_auth_idp(conn),
        "user_id": user_id,
        "user_claims": user_claims,
        "access_token": s.access_token.as_deref().filter(|_| admitted && route.pass_access_token),
        "id_token": s.id_token.as_deref().filter(|_| admitted && route.pass_id_token),
        "expires_on": expires_on,
    }])
}
