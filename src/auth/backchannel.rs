//! `POST /.auth/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0.
//! The provider POSTs a `logout_token` (form field); realmgate validates it
//! with the provider that issued it (signature, `iss`, `aud`, `iat`/`exp`,
//! the back-channel `events` claim, `sid` or `sub`, no `nonce`, a `jti` not
//! seen before: `Provider::verify_logout_token`) and ends the matching
//! sessions on every replica through the store.
//!
//! Which sessions end:
//! - with `sid`: every session with that provider session id (`revoke_sid`);
//! - without `sid`: every session of the user. Sessions are indexed by
//!   `user_id`, which is `oid` on Entra and `sub` elsewhere, so an Entra
//!   token must carry `oid` (Entra's `sub` is pairwise per application and
//!   is not the session's user id); a generic OIDC token's `sub` is used.
//!
//! Answers: 200 JSON `{"sessions_ended": n}` (also when nothing matched: the
//! provider has done its part); 400 JSON `{"error": "invalid_request",
//! "error_description": …}` naming what was wrong; 503 when the provider's
//! keys or the session store cannot be reached (the provider may retry).
//! `Cache-Control: no-store` is set by the `/.auth/` dispatcher.

use http::{Response, StatusCode};
use serde_json::json;

use super::{form_get, form_pairs, json, Ctx};
use crate::oidc::{LogoutToken, OidcError};
use crate::respond::Body;

pub(super) async fn logout(ctx: &Ctx<'_>, form: &[u8]) -> Response<Body> {
    let pairs = form_pairs(form);
    let Some(raw) = form_get(&pairs, "logout_token").filter(|t| !t.is_empty()) else {
        return bad_request("the form must carry exactly one logout_token field");
    };
    let (connection, token) = match verify(ctx, raw).await {
        Ok(found) => found,
        Err(Refusal::Invalid(reason)) => {
            tracing::info!(reason = %reason, "back-channel logout refused");
            return bad_request(&reason);
        }
        Err(Refusal::Unavailable(reason)) => {
            tracing::warn!(reason = %reason, "back-channel logout: provider unavailable");
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "temporarily_unavailable", "error_description": "the identity provider's keys cannot be fetched right now; retry later"}),
            );
        }
    };
    let is_entra = ctx
        .state
        .connection(&connection)
        .is_some_and(|c| c.is_entra());
    let sessions = &ctx.state.shared.sessions;
    let result = match (&token.sid, is_entra, &token.oid, &token.sub) {
        (Some(sid), ..) => sessions.revoke_sid(sid).await,
        (None, true, Some(oid), _) => sessions.revoke_user(oid).await,
        (None, false, _, Some(sub)) => sessions.revoke_user(sub).await,
        _ => {
            return bad_request(
                "the logout token has no sid, and no user id this gateway keys sessions by (oid on Entra, sub otherwise)",
            )
        }
    };
    match result {
        Ok(n) => {
            tracing::info!(connection = %connection, sessions = n, by_sid = token.sid.is_some(), "back-channel logout");
            json(StatusCode::OK, &json!({"sessions_ended": n}))
        }
        Err(e) => {
            tracing::error!(error = %e, "session store failed during back-channel logout");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "temporarily_unavailable", "error_description": "the session store cannot be reached; retry later"}),
            )
        }
    }
}

enum Refusal {
    Invalid(String),
    Unavailable(String),
}

/// Tries the token against each configured connection's provider. A token
/// passes at most one (issuer and audience differ between connections, or
/// the tenant does); when none accepts it, the most telling reason is
/// returned: a check other than the issuer/tenant one (signature, replay,
/// events, nonce…) beats "not this provider".
async fn verify(ctx: &Ctx<'_>, raw: &str) -> Result<(String, LogoutToken), Refusal> {
    let mut reason: Option<(u8, String)> = None;
    let mut unavailable = None;
    for conn in &ctx.state.settings.connections {
        let Some(provider) = ctx.state.shared.providers.get(&conn.name) else {
            continue;
        };
        match provider.verify_logout_token(raw).await {
            Ok(token) => return Ok((conn.name.clone(), token)),
            Err(OidcError::InvalidToken(why)) => {
                let rank = if is_other_provider(&why) { 1 } else { 2 };
                if reason.as_ref().is_none_or(|(r, _)| rank > *r) {
                    reason = Some((rank, why));
                }
            }
            Err(OidcError::Unavailable(why)) => unavailable = Some(why),
            Err(other) => {
                if reason.is_none() {
                    reason = Some((0, other.to_string()));
                }
            }
        }
    }
    match (reason, unavailable) {
        // A connection whose keys are unreachable may be the issuer: retry later.
        (Some((rank, _)), Some(u)) if rank < 2 => Err(Refusal::Unavailable(u)),
        (Some((_, why)), _) => Err(Refusal::Invalid(format!("invalid logout token: {why}"))),
        (None, Some(u)) => Err(Refusal::Unavailable(u)),
        (None, None) => Err(Refusal::Invalid("no connection is configured".into())),
    }
}

/// Check failures that only say "issued by/for someone else".
fn is_other_provider(why: &str) -> bool {
    why.starts_with("iss ")
        || why.starts_with("tid")
        || why.contains("tenant")
        || why.starts_with("aud")
        || why.contains("unknown kid")
}

fn bad_request(reason: &str) -> Response<Body> {
    json(
        StatusCode::BAD_REQUEST,
        &json!({"error": "invalid_request", "error_description": reason}),
    )
}
