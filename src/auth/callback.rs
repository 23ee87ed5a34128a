//! `GET/POST /.auth/login/{connection}/callback` (and `POST
//! /.auth/login/{connection}` for a kind whose form posts back to itself):
//! the end of a sign-in, for every connection kind (`crate::connection`).
//! What all kinds share is done here, before the kind is asked: the pending
//! login is taken from the state cookie (spent even on error), redeemed
//! once, and must have started at this connection. Then the kind verifies
//! the response into a `VerifiedIdentity`, which becomes the session. Every
//! check fails closed; the user sees a fixed text and the log says which
//! check failed (never the code, tokens or email).

use std::sync::Arc;

use http::request::Parts;
use http::Response;
use sha2::{Digest, Sha256};

use super::{form_get, form_pairs, html, redirect, Ctx};
use crate::config::ConnectionSettings;
use crate::connection::{CompleteRequest, Refusal, SignIn, SignInError};
use crate::respond::{Body, GatewayError};
use crate::session::model::{Session, SessionTerms};
use crate::session::store::SessionId;

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
        Err(e) => {
            let label = e.reason.label();
            ctx.state.shared.metrics.record_login(&conn.name, label);
            tracing::warn!(
                route.name = %ctx.route.name,
                connection = %conn.name,
                outcome = label,
                detail = %e.detail,
                "sign-in failed"
            );
            Ok(failure_page(ctx, e.reason, &conn))
        }
    }
}

/// True when `POST /.auth/login/{name}` completes a sign-in at this route
/// (the connection's kind serves a form that posts back to itself).
pub(super) fn completes_at_login_post(ctx: &Ctx<'_>, name: &str) -> bool {
    let allowed = ctx.allowed_connections();
    let Some(conn) = allowed.iter().find(|c| c.name == name) else {
        return false;
    };
    ctx.kinds()
        .for_connection(conn)
        .is_some_and(|k| k.completes_at_login_post())
}

async fn complete(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn: &Arc<ConnectionSettings>,
    params: &[u8],
) -> Result<Response<Body>, SignInError> {
    let kinds = ctx.kinds();
    let kind: Box<dyn SignIn + '_> = kinds.for_connection(conn).ok_or_else(|| {
        SignInError::new(Refusal::ConnectionMismatch, "connection has no provider")
    })?;
    let params = form_pairs(params);
    let state_param = form_get(&params, kind.state_param());
    // Redeem the pending login first, even on error, so the state is spent.
    let taken = state_param.and_then(|s| ctx.state.states.take(&parts.headers, ctx.https, s));
    let now = super::now();
    let request = |pending| CompleteRequest {
        connection: conn,
        method: &parts.method,
        params: &params,
        pending,
        client: ctx.client,
        groups_required: !ctx.state.policy_groups.is_empty(),
        now,
    };
    if let Some(e) = kind.provider_error(&params) {
        return Err(e);
    }
    let Some(state) = state_param else {
        return Err(SignInError::new(Refusal::NoState, "no state parameter"));
    };
    let Some((pending, state_cookie)) = taken else {
        return Err(SignInError::new(
            Refusal::UnknownState,
            "state not found in this browser's pending logins",
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
        return Err(SignInError::new(
            Refusal::ReplayedState,
            "state already redeemed",
        ));
    }
    if pending.connection != conn.name {
        // RFC 9700 mix-up defence: the response came back to another
        // connection's callback than the one the login started at.
        return Err(SignInError::new(
            Refusal::ConnectionMismatch,
            format!("login started at {:?}", pending.connection),
        ));
    }
    let identity = kind.complete(request(&pending)).await?;
    let session = Session::new(
        identity,
        SessionTerms {
            created_at: now,
            expires_at: now.saturating_add(ctx.state.settings.session.lifetime.as_secs()),
            keep_access_token: ctx
                .state
                .settings
                .routes
                .iter()
                .any(|r| r.pass_access_token),
            keep_refresh_token: ctx.state.settings.session.refresh_tokens,
        },
    );

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
        .map_err(|e| SignInError::new(Refusal::StoreUnavailable, format!("session store: {e}")))?;
    tracing::info!(
        route.name = %ctx.route.name,
        connection = %conn.name,
        user.id = %user_id,
        "signed in"
    );
    let session_cookie = ctx.state.cookies.set(&id, ctx.https);
    redirect(&pending.target, [session_cookie, state_cookie])
        .map_err(|_| SignInError::new(Refusal::CodeExchange, "bad target"))
}

/// The page of a refused sign-in: its status from the refusal's blame
/// (`Refusal::status`), a text that says what happened and what to do.
fn failure_page(ctx: &Ctx<'_>, reason: Refusal, conn: &ConnectionSettings) -> Response<Body> {
    let retry = format!("/.auth/login/{}", conn.name);
    let status = reason.status();
    let (title, message) = match reason {
        Refusal::NoState | Refusal::UnknownState | Refusal::ReplayedState => (
            "Sign-in expired",
            "Your sign-in took too long, was already completed, or was started in another browser. Start again.",
        ),
        Refusal::ConnectionMismatch | Refusal::IssuerMismatch | Refusal::NoCode => (
            "Sign-in failed",
            "The sign-in response does not belong to the sign-in this browser started, so you were not signed in. Start again.",
        ),
        Refusal::GroupsUnavailable => (
            "Sign-in is unavailable",
            "You are a member of many groups, and your group memberships could not be read from Microsoft Graph right now, so access cannot be decided. Try again in a few minutes; if it keeps happening, contact your IT department.",
        ),
        Refusal::StoreUnavailable => (
            "Sign-in is unavailable",
            "Your sign-in could not be saved right now. Try again in a few minutes; if it keeps happening, contact your IT department.",
        ),
        Refusal::ProviderUnavailable => (
            "Sign-in is unavailable",
            "Your organization's identity provider cannot be reached right now. Try again in a few minutes; if it keeps happening, contact your IT department.",
        ),
        Refusal::ProviderError => (
            "Sign-in was not completed",
            "Your identity provider did not complete the sign-in. Try again, or contact your IT department if it keeps happening.",
        ),
        Refusal::CodeExchange | Refusal::IdToken | Refusal::MissingUserId | Refusal::Assertion => (
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
