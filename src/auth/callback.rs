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
use crate::connection::{CompleteRequest, Refusal, RefusalPage, SignIn, SignInError};
use crate::respond::{Body, GatewayError};
use crate::session::model::{Session, SessionTerms};
use crate::session::store::SessionId;

/// `params`: the query (GET) or form body (POST); zeroized when done (a
/// kind's form may carry a password).
pub(super) async fn finish(
    ctx: &Ctx<'_>,
    parts: &Parts,
    name: &str,
    params: Vec<u8>,
) -> Result<Response<Body>, GatewayError> {
    let params = zeroize::Zeroizing::new(params);
    let Some(conn) = ctx
        .allowed_connections()
        .into_iter()
        .find(|c| c.name == name)
        .cloned()
    else {
        return Err(GatewayError::NotFound);
    };
    match complete(ctx, parts, &conn, &params).await {
        Ok(resp) => {
            ctx.state.shared.metrics.record_login(&conn.name, "success");
            Ok(resp)
        }
        Err(Refused {
            error: e,
            target,
            spent_target,
        }) => {
            // Back to the IdP after signing in, and the account chosen
            // again (first hour 6): the state is spent, but this browser is
            // signed in; send it on to its target instead of "Sign-in
            // expired". Nothing is exchanged and no session changes. A
            // replay of the answer that redeemed the state stays refused.
            if let Some((spent, session)) = &spent_target {
                if let Some(resp) = already_signed_in(ctx, parts, spent, session).await {
                    return Ok(resp);
                }
            }
            let label = e.reason.label();
            ctx.state.shared.metrics.record_login(&conn.name, label);
            ctx.state.audit.record(crate::audit::Event::SignInFailed {
                route: &ctx.route.name,
                connection: &conn.name,
                reason: label,
                client: ctx.client,
            });
            tracing::warn!(
                route.name = %ctx.route.name,
                connection = %conn.name,
                outcome = label,
                detail = %e.detail,
                "sign-in failed"
            );
            Ok(match e.page {
                // The kind's own answer (its form again, with the reason).
                Some(page) => {
                    let RefusalPage {
                        status,
                        html: body,
                        pending,
                    } = *page;
                    let mut resp = html(status, body);
                    if let Some(pending) = pending {
                        // The next attempt's token, for the same target.
                        let target = target.as_deref().unwrap_or("/");
                        let cookie = super::login::bind_pending(ctx, parts, &conn, target, pending);
                        resp.headers_mut().append(http::header::SET_COOKIE, cookie);
                    }
                    resp
                }
                None => failure_page(ctx, e.reason, &conn),
            })
        }
    }
}

/// A redirect to `target` (else `/`) when this browser has a live session of
/// a connection this route allows.
async fn already_signed_in(
    ctx: &Ctx<'_>,
    parts: &Parts,
    target: &str,
    session_digest: &[u8; 32],
) -> Option<Response<Body>> {
    let id = ctx.state.cookies.read_for(&parts.headers, ctx.https)?;
    // The session the spent state's own sign-in made, nobody else's.
    let digest: [u8; 32] = Sha256::digest(id.as_bytes()).into();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        &digest[..],
        &session_digest[..],
    )) {
        return None;
    }
    let session = super::state::load_session(ctx.state, &id).await.ok()??;
    let allowed = ctx.allowed_connections();
    if !allowed.iter().any(|c| c.name == session.connection) {
        return None;
    }
    tracing::info!(
        route.name = %ctx.route.name,
        connection = %session.connection,
        "a spent sign-in came back to a signed-in browser: sent on to its target"
    );
    redirect(target, []).ok()
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

/// A refused sign-in, with the target of its pending login when one was
/// redeemed (a kind's page binds the next attempt to the same target).
struct Refused {
    error: SignInError,
    target: Option<String>,
    /// The target of a state already redeemed, when the callback brings a
    /// new answer to it (never for a replayed answer), with the digest of
    /// the session that redemption made (none: no browser is sent on).
    spent_target: Option<(String, [u8; 32])>,
}

impl From<SignInError> for Refused {
    fn from(error: SignInError) -> Refused {
        Refused {
            error,
            target: None,
            spent_target: None,
        }
    }
}

/// Decoded parameters, zeroized when dropped.
struct Params(Vec<(String, String)>);

impl Drop for Params {
    fn drop(&mut self) {
        for (k, v) in &mut self.0 {
            zeroize::Zeroize::zeroize(k);
            zeroize::Zeroize::zeroize(v);
        }
    }
}

async fn complete(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn: &Arc<ConnectionSettings>,
    params: &[u8],
) -> Result<Response<Body>, Refused> {
    let kinds = ctx.kinds();
    let kind: Box<dyn SignIn + '_> = kinds.for_connection(conn).ok_or_else(|| {
        SignInError::new(Refusal::ConnectionMismatch, "connection has no provider")
    })?;
    // The answer as sent: a second callback with exactly these parameters
    // is a replay, whoever sends it.
    let answer: [u8; 32] = Sha256::digest(params).into();
    let params = Params(form_pairs(params));
    let params = &params.0;
    let state_param = form_get(params, kind.state_param());
    // Redeem the pending login first, even on error, so the state is spent.
    let taken = state_param.and_then(|s| ctx.state.states.take(&parts.headers, ctx.https, s));
    let now = super::now();
    let request = |pending, unsolicited| CompleteRequest {
        connection: conn,
        method: &parts.method,
        params,
        pending,
        unsolicited,
        client: ctx.client,
        groups_required: !ctx.state.policy_groups.is_empty(),
        now,
        pages: &ctx.state.pages,
    };
    if let Some(e) = kind.provider_error(params) {
        return Err(e.into());
    }
    let mut spent = None;
    let (pending, state_cookie, unsolicited) = match (state_param, taken) {
        (Some(state), Some((pending, state_cookie))) => {
            let digest: [u8; 32] = Sha256::digest(state.as_bytes()).into();
            // Check-and-insert in one step, so two concurrent callbacks with
            // the same state cannot both pass. A sign-in adds its session
            // and target, for a browser that comes back with a spent state.
            let entry = ctx
                .state
                .shared
                .used_states
                .entry(digest)
                .or_insert(Arc::new(super::state::SpentState {
                    answer,
                    signed_in: std::sync::OnceLock::new(),
                }))
                .await;
            if !entry.is_fresh() {
                return Err(Refused {
                    error: SignInError::new(Refusal::ReplayedState, "state already redeemed"),
                    target: Some(pending.target.clone()),
                    spent_target: None,
                });
            }
            spent = Some(entry.into_value());
            (pending, Some(state_cookie), false)
        }
        // No pending login of this browser is named: refused, unless the
        // kind verifies unsolicited answers itself (SAML IdP-initiated,
        // when the connection allows it).
        (state, _) => match kind.unsolicited(params) {
            Some(Ok(raw_target)) => {
                let pending = crate::session::state::PendingLogin {
                    state: String::new(),
                    nonce: String::new(),
                    pkce_verifier: String::new(),
                    connection: conn.name.clone(),
                    redirect_uri: ctx.redirect_uri(conn),
                    // The same open-redirect checks as every return URL.
                    target: ctx.safe_target(parts, raw_target.as_deref()),
                    created_at: now,
                };
                (pending, None, true)
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                let Some(state) = state else {
                    return Err(SignInError::new(Refusal::NoState, "no state parameter").into());
                };
                // Spent already, by this browser's own sign-in when it comes
                // back (Back to the IdP's account picker) with a new answer:
                // its target, if it was. The same answer again is a replay.
                let digest: [u8; 32] = Sha256::digest(state.as_bytes()).into();
                let spent_target = ctx
                    .state
                    .shared
                    .used_states
                    .get(&digest)
                    .await
                    .filter(|spent| spent.answer != answer)
                    .and_then(|spent| {
                        let done = spent.signed_in.get()?;
                        Some((done.target.to_string(), done.session))
                    });
                return Err(Refused {
                    error: SignInError::new(
                        Refusal::UnknownState,
                        "state not found in this browser's pending logins",
                    ),
                    target: None,
                    spent_target,
                });
            }
        },
    };
    if pending.connection != conn.name {
        // RFC 9700 mix-up defence: the response came back to another
        // connection's callback than the one the login started at.
        return Err(SignInError::new(
            Refusal::ConnectionMismatch,
            format!("login started at {:?}", pending.connection),
        )
        .into());
    }
    let identity = kind
        .complete(request(&pending, unsolicited))
        .await
        .map_err(|error| Refused {
            error,
            target: Some(pending.target.clone()),
            spent_target: None,
        })?;
    let mut session = Session::new(
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
    // Shown by the admin listing (`GET /sessions`), never to the app.
    session.client_addr = Some(ctx.client);
    let settings = &ctx.state.settings;
    session.disown_foreign_email(|domain| settings.domain_owner(domain));
    if !keeps_id_token(&ctx.state.settings, conn) {
        session.id_token = None;
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
        .map_err(|e| SignInError::new(Refusal::StoreUnavailable, format!("session store: {e}")))?;
    if let Some(spent) = &spent {
        // This browser, and only it, may come back with the spent state.
        let _ = spent.signed_in.set(super::state::SignedIn {
            session: Sha256::digest(id.as_bytes()).into(),
            target: pending.target.as_str().into(),
        });
    }
    tracing::info!(
        route.name = %ctx.route.name,
        connection = %conn.name,
        user.id = %user_id,
        "signed in"
    );
    ctx.state.audit.record(crate::audit::Event::SignIn {
        route: &ctx.route.name,
        connection: &conn.name,
        user_id: &user_id,
        client: ctx.client,
    });
    let session_cookie = ctx.state.cookies.set(&id, ctx.https);
    if let Some(notice) = kind.notice() {
        // Signed in; the user reads the notice, then follows Continue.
        let link = notice.link.as_ref().map(|(l, h)| (l.as_str(), h.as_str()));
        let page = ctx
            .state
            .pages
            .notice(&notice.title, &notice.message, link, &pending.target);
        let mut resp = html(http::StatusCode::OK, page);
        for c in std::iter::once(session_cookie).chain(state_cookie) {
            resp.headers_mut().append(http::header::SET_COOKIE, c);
        }
        return Ok(resp);
    }
    redirect(
        &pending.target,
        std::iter::once(session_cookie).chain(state_cookie),
    )
    .map_err(|_| SignInError::new(Refusal::CodeExchange, "bad target").into())
}

/// Whether sessions of `connection` keep the provider's ID token (SPEC 7:
/// a session keeps only what a configured feature needs; an ID token is
/// 1.5-2 KB, more than the rest of an Entra session). It is needed when
/// some route passes it on (`pass_id_token`: the token header, Easy
/// Auth's `X-MS-TOKEN-AAD-ID-TOKEN`, `/.auth/me`), and as the
/// `id_token_hint` of RP-initiated logout at a generic provider, which may
/// refuse a logout or its `post_logout_redirect_uri` without one. Entra's
/// logout request has no such parameter (it takes `post_logout_redirect_uri`
/// and `client_id`, which realmgate sends), so an Entra session keeps no ID
/// token unless a route passes it.
pub(crate) fn keeps_id_token(
    settings: &crate::config::Settings,
    connection: &ConnectionSettings,
) -> bool {
    !connection.is_entra() || settings.routes.iter().any(|r| r.pass_id_token)
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
        Refusal::Unsolicited => (
            "Sign-in from the portal is not enabled",
            "This application does not accept sign-ins started at your organization's portal or app tile. Start the sign-in here instead.",
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
        // The kinds that refuse these (LDAP) answer with their own form;
        // these texts are the fallback.
        Refusal::InvalidCredentials => (
            "Sign-in failed",
            "The user name or password is incorrect. Check them and try again.",
        ),
        Refusal::AccountState => (
            "Sign-in not possible",
            "The directory refused to sign this account in. Contact your IT department.",
        ),
        Refusal::RateLimited => (
            "Too many attempts",
            "Too many failed sign-ins for this account or from your network. Wait a few minutes, then try again.",
        ),
        Refusal::DirectoryUnavailable | Refusal::DirectoryError => (
            "Sign-in is unavailable",
            "Your organization's directory cannot be reached right now. Try again in a few minutes; if it keeps happening, contact your IT department.",
        ),
    };
    html(
        status,
        ctx.state
            .pages
            .error(status.as_u16(), title, message, Some(("Try again", &retry))),
    )
}
