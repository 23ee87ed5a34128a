//! `GET /.auth/me`: the signed-in user as JSON.

use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::json;

use crate::auth::Ctx;
use crate::respond::{json, Body, GatewayError};

/// The signed-in user as JSON; 401 JSON when not signed in.
pub(crate) async fn me(ctx: &Ctx<'_>, parts: &Parts) -> Result<Response<Body>, GatewayError> {
    let session = match ctx.state.cookies.read_for(&parts.headers, ctx.https) {
        Some(id) => crate::auth::state::load_session(ctx.state, &id).await?,
        None => None,
    };
    let Some(s) = session.filter(|s| ctx.state.connection(&s.connection).is_some()) else {
        return Ok(json(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "not_signed_in", "message": "No session. Sign in at /.auth/login."}),
        ));
    };
    let conn = ctx.state.connection(&s.connection);
    let mut body = json!({
        "user_id": s.user_id,
        "email": s.email,
        // True only for an email that counts (verified and one plain
        // addr-spec, `Session::verified_email`): the one headers carry.
        "email_verified": s.verified_email().is_some(),
        "email_verified_by": s.email_trust,
        "name": s.name,
        "preferred_username": s.preferred_username,
        "groups": s.groups,
        "connection": s.connection,
        "tenant_id": s.tenant_id,
        "expires_at": s.expires_at,
    });
    if let Some(c) = conn.filter(|c| c.group_names_from_graph) {
        body["group_names"] = crate::connection::entra::group_names::names_of(c, &s.groups).into();
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
