//! `GET/POST /.auth/login/{connection}/callback`: the end of the
//! authorization code flow. Every check fails closed; the user sees a fixed
//! text and the log says which check failed (never the code, tokens or email).

use std::sync::Arc;

use http::request::Parts;
use http::{Response, StatusCode};
use sha2::{Digest, Sha256};

use super::{form_get, form_pairs, html, redirect, Ctx};
use crate::config::ConnectionSettings;
use crate::oidc::VerifiedIdToken;
use crate::respond::{Body, GatewayError};
use crate::session::model::{EmailTrust, Session};
use crate::session::store::SessionId;

/// Why a callback was refused, for logs and metrics.
#[derive(Debug, Clone, Copy)]
enum Failure {
    ProviderError,
    NoState,
    UnknownState,
    ReplayedState,
    ConnectionMismatch,
    IssuerMismatch,
    NoCode,
    CodeExchange,
    IdToken,
    MissingUserId,
    /// The token endpoint or JWKS could not be reached: 503, try later.
    ProviderUnavailable,
    /// The session could not be stored: 503, fail closed.
    StoreUnavailable,
    /// Group overage and Graph could not list the groups while some route's
    /// policy needs groups: 503, try later.
    GroupsUnavailable,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::ProviderError => "provider_error",
            Failure::NoState => "no_state",
            Failure::UnknownState => "unknown_state",
            Failure::ReplayedState => "replayed_state",
            Failure::ConnectionMismatch => "connection_mismatch",
            Failure::IssuerMismatch => "issuer_mismatch",
            Failure::NoCode => "no_code",
            Failure::CodeExchange => "code_exchange",
            Failure::IdToken => "id_token",
            Failure::MissingUserId => "missing_user_id",
            Failure::ProviderUnavailable => "provider_unavailable",
            Failure::StoreUnavailable => "store_unavailable",
            Failure::GroupsUnavailable => "groups_unavailable",
        }
    }
}

pub(super) async fn finish(
    ctx: &Ctx<'_>,
    parts: &Parts,
    name: &str,
    params: &[u8],
) -> Result<Response<Body>, GatewayError> {
    let Some(conn) = ctx
        .allowed_connections()
        .into_iter()
        .find(|c| c.name == name)
        .cloned()
    else {
        return Err(GatewayError::NotFound);
    };
    match complete(ctx, parts, &conn, params).await {
        Ok(resp) => {
            ctx.state.shared.metrics.record_login(&conn.name, "success");
            Ok(resp)
        }
        Err((failure, detail)) => {
            ctx.state
                .shared
                .metrics
                .record_login(&conn.name, failure.label());
            tracing::warn!(
                route.name = %ctx.route.name,
                connection = %conn.name,
                outcome = failure.label(),
                detail = %detail,
                "sign-in failed"
            );
            Ok(failure_page(ctx, failure, &conn))
        }
    }
}

type Fail = (Failure, String);

async fn complete(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn: &Arc<ConnectionSettings>,
    params: &[u8],
) -> Result<Response<Body>, Fail> {
    let params = form_pairs(params);
    let state_param = form_get(&params, "state");
    // Redeem the pending login first, even on error, so the state is spent.
    let taken = state_param.and_then(|s| ctx.state.states.take(&parts.headers, ctx.https, s));
    if let Some(err) = form_get(&params, "error") {
        // Only a safe token of the error code is logged.
        let code: String = err
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err((Failure::ProviderError, code));
    }
    let Some(state) = state_param else {
        return Err((Failure::NoState, "no state parameter".into()));
    };
    let Some((pending, state_cookie)) = taken else {
        return Err((
            Failure::UnknownState,
            "state not found in this browser's pending logins".into(),
        ));
    };
    let digest: [u8; 32] = Sha256::digest(state.as_bytes()).into();
    // Check-and-insert in one step, so two concurrent callbacks with the same
    // state cannot both pass.
    if !ctx
        .state
        .shared
        .used_states
        .entry(digest)
        .or_insert(())
        .await
        .is_fresh()
    {
        return Err((Failure::ReplayedState, "state already redeemed".into()));
    }
    if pending.connection != conn.name {
        // RFC 9700 mix-up defence: the response came back to another
        // connection's callback than the one the login started at.
        return Err((
            Failure::ConnectionMismatch,
            format!("login started at {:?}", pending.connection),
        ));
    }
    let provider = ctx.state.shared.providers.get(&conn.name).ok_or((
        Failure::ConnectionMismatch,
        "connection has no provider".to_string(),
    ))?;
    // RFC 9207: the authorization response's issuer, when sent (or required).
    provider
        .check_authorization_response_iss(form_get(&params, "iss"))
        .map_err(|e| (Failure::IssuerMismatch, e.to_string()))?;
    let Some(code) = form_get(&params, "code") else {
        return Err((Failure::NoCode, "no code parameter".into()));
    };
    let tokens = provider
        .exchange_code(code, &pending.pkce_verifier, &pending.redirect_uri)
        .await
        .map_err(|e| (oidc_failure(&e, Failure::CodeExchange), e.to_string()))?;
    let verified = provider
        .verify_id_token(&tokens.id_token, &pending.nonce)
        .await
        .map_err(|e| (oidc_failure(&e, Failure::IdToken), e.to_string()))?;
    let now = super::now();
    let mut session = build_session(ctx, conn, &verified, &tokens, now)?;
    session.groups = groups_or_fail(ctx, conn, &verified, tokens.access_token.as_deref()).await?;
    if conn.extended_profile {
        // The ID token's extra claims and userinfo's (SPEC 5.5); a userinfo
        // failure is logged and counted, never a failed login.
        session.claims = Some(
            provider
                .profile_claims(&verified, tokens.access_token.as_deref())
                .await,
        );
    }

    // A new id at every login (no fixation); the old session, if any, ends.
    if let Some(old) = ctx.state.cookies.read_for(&parts.headers, ctx.https) {
        let _ = ctx.state.shared.sessions.delete(&old).await;
    }
    let id = SessionId::generate();
    let user_id = session.user_id.clone();
    ctx.state
        .shared
        .sessions
        .put(&id, session)
        .await
        .map_err(|e| (Failure::StoreUnavailable, format!("session store: {e}")))?;
    tracing::info!(
        route.name = %ctx.route.name,
        connection = %conn.name,
        user.id = %user_id,
        "signed in"
    );
    let session_cookie = ctx.state.cookies.set(&id, ctx.https);
    redirect(&pending.target, [session_cookie, state_cookie])
        .map_err(|_| (Failure::CodeExchange, "bad target".into()))
}

/// The session for a verified ID token. The user id is `oid` for Entra
/// (stable, unlike email or preferred_username) and `<connection>:<sub>`
/// otherwise (SPEC 6.1, `user_id_for`).
fn build_session(
    ctx: &Ctx<'_>,
    conn: &ConnectionSettings,
    token: &VerifiedIdToken,
    tokens: &crate::oidc::TokenSet,
    now: u64,
) -> Result<Session, Fail> {
    let Some(user_id) = crate::session::model::user_id_for(conn, token.sub(), token.oid()) else {
        return Err((Failure::MissingUserId, "no oid/sub claim".into()));
    };
    let email_trust = email_trust(
        conn,
        token.email().is_some(),
        token.email_verified(),
        token.xms_edov(),
    );
    // On overage the caller fills them in from Graph (`groups_or_fail`).
    let groups = if conn.groups && !token.has_group_overage() {
        token.groups()
    } else {
        Vec::new()
    };
    let lifetime = ctx.state.settings.session.lifetime.as_secs();
    let token_exp = tokens
        .expires_in
        .map(|d| now.saturating_add(d.as_secs()))
        .into_iter()
        .chain(token.exp())
        .min();
    Ok(Session {
        version: crate::session::model::SESSION_VERSION,
        user_id,
        subject: token.sub().to_string(),
        tenant_id: token.tid().map(str::to_string),
        connection: conn.name.clone(),
        issuer: token.iss().to_string(),
        sid: token.sid().map(str::to_string),
        email: token.email().map(str::to_string),
        email_trust,
        name: token.name().map(str::to_string),
        preferred_username: token.preferred_username().map(str::to_string),
        groups,
        // With `extended_profile`, the caller fills them in (userinfo too).
        claims: None,
        // Tokens are kilobytes each (bench/sessions.md): keep only what a
        // feature needs. The ID token is the `id_token_hint` of RP-initiated
        // logout; the access token only for routes that pass it on; the
        // refresh token only when refreshing is on.
        id_token: Some(tokens.id_token.clone()),
        access_token: ctx
            .state
            .settings
            .routes
            .iter()
            .any(|r| r.pass_access_token)
            .then(|| tokens.access_token.clone())
            .flatten(),
        refresh_token: ctx
            .state
            .settings
            .session
            .refresh_tokens
            .then(|| tokens.refresh_token.clone())
            .flatten(),
        tokens_expire_at: token_exp,
        created_at: now,
        expires_at: now.saturating_add(lifetime),
    })
}

/// The session's groups (SPEC 5.4): the claim, or Graph on overage. When
/// Graph fails, the login fails if some route's policy needs groups (a user
/// without them would only be refused later, confusingly); otherwise the
/// session has no groups, and the failure is logged and counted
/// (`record_idp_call(.., "graph", .., false)`).
async fn groups_or_fail(
    ctx: &Ctx<'_>,
    conn: &ConnectionSettings,
    token: &VerifiedIdToken,
    access_token: Option<&str>,
) -> Result<Vec<String>, Fail> {
    match super::graph::session_groups(
        ctx.state.shared.providers.http_client(),
        &ctx.state.shared.metrics,
        conn,
        token,
        access_token,
    )
    .await
    {
        Ok(groups) => Ok(groups),
        Err(e) if !ctx.state.policy_groups.is_empty() => {
            Err((Failure::GroupsUnavailable, format!("group overage: {e}")))
        }
        Err(e) => {
            tracing::warn!(
                connection = %conn.name,
                error = %e,
                "group overage: the groups could not be read from Graph; the session has no groups"
            );
            Ok(Vec::new())
        }
    }
}

/// Why an email is believed (SPEC 5.6): the provider verified it, Entra
/// verified its domain (`xms_edov`), or the operator trusts the connection.
pub(crate) fn email_trust(
    conn: &ConnectionSettings,
    has_email: bool,
    email_verified: Option<bool>,
    xms_edov: Option<bool>,
) -> EmailTrust {
    if !has_email {
        EmailTrust::Unverified
    } else if email_verified == Some(true) {
        EmailTrust::ProviderVerified
    } else if conn.is_entra() && xms_edov == Some(true) {
        EmailTrust::EntraDomainVerified
    } else if conn.trusted_email {
        EmailTrust::TrustedConnection
    } else {
        EmailTrust::Unverified
    }
}

/// An unreachable provider is not the user's fault: it gets its own page.
fn oidc_failure(e: &crate::oidc::OidcError, otherwise: Failure) -> Failure {
    match e {
        crate::oidc::OidcError::Unavailable(_) => Failure::ProviderUnavailable,
        _ => otherwise,
    }
}

fn failure_page(ctx: &Ctx<'_>, failure: Failure, conn: &ConnectionSettings) -> Response<Body> {
    let retry = format!("/.auth/login/{}", conn.name);
    let (status, title, message) = match failure {
        Failure::NoState | Failure::UnknownState | Failure::ReplayedState => (
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "Your sign-in took too long, was already completed, or was started in another browser. Start again.",
        ),
        // A response that does not belong to this login (RFC 9700 mix-up,
        // RFC 9207 issuer) or lacks its code is malformed input.
        Failure::ConnectionMismatch | Failure::IssuerMismatch | Failure::NoCode => (
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The sign-in response does not belong to the sign-in this browser started, so you were not signed in. Start again.",
        ),
        Failure::ProviderUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            "Your organization's identity provider cannot be reached right now. Try again in a few minutes; if it keeps happening, contact your IT department.",
        ),
        Failure::GroupsUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            "You are a member of many groups, and your group memberships could not be read from Microsoft Graph right now, so access cannot be decided. Try again in a few minutes; if it keeps happening, contact your IT department.",
        ),
        Failure::StoreUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            "Your sign-in could not be saved right now. Try again in a few minutes; if it keeps happening, contact your IT department.",
        ),
        Failure::ProviderError => (
            StatusCode::UNAUTHORIZED,
            "Sign-in was not completed",
            "Your identity provider did not complete the sign-in. Try again, or contact your IT department if it keeps happening.",
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            "Sign-in failed",
            "The sign-in response could not be verified, so you were not signed in. Try again, or contact your IT department if it keeps happening.",
        ),
    };
    html(
        status,
        ctx.state
            .pages
            .error(status.as_u16(), title, message, Some(("Try again", &retry))),
    )
}
