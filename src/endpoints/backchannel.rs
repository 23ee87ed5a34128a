//! `POST /.auth/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0.
//! The provider POSTs a `logout_token` (form field); realmgate validates it
//! with the provider that issued it (signature, `iss`, `aud`, `iat`/`exp`,
//! the back-channel `events` claim, `sid` or `sub`, no `nonce`, a `jti` not
//! seen before: `Provider::verify_logout_token`, and with Redis not seen by
//! any replica: `SessionStore::begin_once`, marked done once the sessions
//! have ended) and ends the matching sessions on every replica through the
//! store. A logout the store fails half-way is a 503 whose retry is taken.
//!
//! Which sessions end — only sessions of the connection whose provider
//! accepted the token (its issuer signed it, for its client id): the store
//! operations take that connection, so a partner's token naming a contoso
//! `sid` or a contoso user's `oid` as `sub` ends nothing (SPEC 6.1):
//! - with `sid`: every session of that connection with that provider
//!   session id (`revoke_sid`);
//! - without `sid`: every session of the user through that connection.
//!   Sessions are indexed by `user_id` (`user_id_for`): `oid` on Entra, so
//!   an Entra token must carry `oid` (Entra's `sub` is pairwise per
//!   application and is not the session's user id), `<connection>:<sub>`
//!   elsewhere.
//!
//! Several connections may accept one token when they share an issuer and
//! a client id (two Entra connections of one tenant and one app
//! registration that differ in scopes or parameters). The provider signed
//! it for that app, so it acts on the sessions of each of them, and of no
//! other connection.
//!
//! Answers: 200 JSON `{"sessions_ended": n}` (also when nothing matched: the
//! provider has done its part); 400 JSON `{"error": "invalid_request",
//! "error_description": …}` naming what was wrong; 503 when the provider's
//! keys or the session store cannot be reached (the provider may retry).
//! `Cache-Control: no-store` is set by the `/.auth/` dispatcher.

use http::{Response, StatusCode};
use serde_json::json;

use std::sync::Arc;

use crate::auth::form::{form_get, form_pairs};
use crate::auth::Ctx;
use crate::config::ConnectionSettings;
use crate::oidc::{LogoutToken, OidcError};
use crate::respond::json;
use crate::respond::Body;

pub(crate) async fn logout(ctx: &Ctx<'_>, form: &[u8]) -> Response<Body> {
    let pairs = form_pairs(form);
    let Some(raw) = form_get(&pairs, "logout_token").filter(|t| !t.is_empty()) else {
        return bad_request("the form must carry exactly one logout_token field");
    };
    let (connections, token) = match verify(ctx, raw).await {
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
    // Replay across replicas (SPEC 4: each logout token once): each
    // process remembers the `jti`s it saw (`verify_logout_token`); a shared
    // store remembers them for every replica, so a captured token is not
    // accepted once more per replica (review 12). Keyed by the token's
    // issuer (`jti` is unique per issuer), which every replica reads alike
    // whatever the order of connections in its file. The mark is `pending`
    // until the sessions are ended: a logout that fails half-way (the
    // store down) is a 503 the provider retries, and the retry must end
    // them, not read as a replay. A mark left pending (the store failed
    // again while finishing) lets a replay end the user's sessions once
    // more: the safe side.
    let once = (!connections.is_empty()).then(|| {
        (
            format!("iss:{}", token.iss),
            format!("logout-jti:{}", token.jti),
            token.remember_for,
        )
    });
    if let Some((scope, key, ttl)) = &once {
        match ctx.state.shared.sessions.begin_once(scope, key, *ttl).await {
            Ok(Some(false)) => {
                tracing::info!(issuer = %scope, "back-channel logout refused: replayed on another replica");
                return bad_request("logout token replayed (jti seen before)");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "session store failed during back-channel logout");
                forget_jti(ctx, &connections, &token.jti);
                return store_unavailable();
            }
        }
    }
    // What to end in each accepting connection, decided before anything ends.
    let mut targets = Vec::with_capacity(connections.len());
    for conn in &connections {
        let target = match (&token.sid, &token.sub) {
            (Some(sid), _) => Target::Sid(sid.clone()),
            (None, sub) => match crate::session::model::user_id_for(
                conn,
                sub.as_deref().unwrap_or_default(),
                token.oid.as_deref(),
            ) {
                Some(user_id) => Target::User(user_id),
                None => {
                    return bad_request(
                        "the logout token has no sid, and no user id this gateway keys sessions by (oid on Entra, sub otherwise)",
                    )
                }
            },
        };
        targets.push((conn.name.as_str(), target));
    }
    let sessions = &ctx.state.shared.sessions;
    let mut result: Result<u64, crate::session::store::StoreError> = Ok(0);
    for (conn, target) in &targets {
        let ended = match target {
            Target::Sid(sid) => sessions.revoke_sid(conn, sid).await,
            Target::User(user_id) => sessions.revoke_user(conn, user_id).await,
        };
        result = match (result, ended) {
            (Ok(a), Ok(b)) => Ok(a.saturating_add(b)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
    }
    let names: Vec<&str> = targets.iter().map(|(c, _)| *c).collect();
    match result {
        Ok(n) => {
            if let Some((scope, key, ttl)) = &once {
                if let Err(e) = ctx
                    .state
                    .shared
                    .sessions
                    .finish_once(scope, key, *ttl)
                    .await
                {
                    tracing::warn!(error = %e, "back-channel logout done, but not marked done in the session store: a replay of this token would end the user's sessions again");
                }
            }
            tracing::info!(connection = %names.join(","), sessions = n, by_sid = token.sid.is_some(), "back-channel logout");
            ctx.state
                .audit
                .record(crate::audit::Event::BackchannelLogout {
                    connection: &names.join(","),
                    by: if token.sid.is_some() { "sid" } else { "sub" },
                    ended: n,
                });
            json(StatusCode::OK, &json!({"sessions_ended": n}))
        }
        Err(e) => {
            tracing::error!(error = %e, "session store failed during back-channel logout");
            forget_jti(ctx, &connections, &token.jti);
            store_unavailable()
        }
    }
}

/// Forgets `jti` in each accepting connection's memory of the tokens it
/// saw, so the provider's retry of a logout that failed is taken.
fn forget_jti(ctx: &Ctx<'_>, connections: &[Arc<ConnectionSettings>], jti: &str) {
    for conn in connections {
        if let Some(provider) = ctx.state.shared.providers.get(&conn.name) {
            provider.forget_logout_jti(jti);
        }
    }
}

fn store_unavailable() -> Response<Body> {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": "temporarily_unavailable", "error_description": "the session store cannot be reached; retry later"}),
    )
}

/// What a logout token ends within one connection.
enum Target {
    Sid(String),
    User(String),
}

enum Refusal {
    Invalid(String),
    Unavailable(String),
}

/// Tries the token against each configured connection's provider and
/// answers every connection that accepts it (usually one: issuer and
/// audience differ between connections, or the tenant does; see the module
/// docs for several). When none accepts it, the most telling reason is
/// returned: a check other than the issuer/tenant one (signature, replay,
/// events, nonce…) beats "not this provider".
async fn verify(
    ctx: &Ctx<'_>,
    raw: &str,
) -> Result<(Vec<Arc<ConnectionSettings>>, LogoutToken), Refusal> {
    let mut reason: Option<(u8, String)> = None;
    let mut unavailable = None;
    let mut accepted: Option<(Vec<Arc<ConnectionSettings>>, LogoutToken)> = None;
    for conn in &ctx.state.settings.connections {
        let Some(provider) = ctx.state.shared.providers.get(&conn.name) else {
            continue;
        };
        match provider.verify_logout_token(raw).await {
            Ok(token) => match &mut accepted {
                // The same signed token: its claims are the same.
                Some((conns, _)) => conns.push(conn.clone()),
                None => accepted = Some((vec![conn.clone()], token)),
            },
            Err(OidcError::InvalidToken(why)) => {
                // Another audience is more telling than another issuer or
                // key: the token's signer and issuer were this provider's
                // (review 13, H3: "unknown kid" hid a wrong `aud`).
                let rank = if why.starts_with("aud") {
                    2
                } else if is_other_provider(&why) {
                    1
                } else {
                    3
                };
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
    if let Some(found) = accepted {
        return Ok(found);
    }
    match (reason, unavailable) {
        // A connection whose keys are unreachable may be the issuer: retry later.
        (Some((rank, _)), Some(u)) if rank < 3 => Err(Refusal::Unavailable(u)),
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
