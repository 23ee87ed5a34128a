//! `GET/POST /.auth/login/{connection}` for `type = "ldap"` connections
//! (SPEC 9): realmgate's own password form.
//!
//! - **CSRF**: the form carries a token that is the `state` of a pending
//!   login in the browser's state cookie (`session::state`, HMAC-signed,
//!   `HttpOnly`): the same binding as the OpenID Connect `state`. A POST
//!   without a token of this browser's pending logins for this connection
//!   is refused before the password is looked at. The pending login also
//!   carries the validated target, so the POST cannot change it.
//! - **Failures** are counted per login name and per client address
//!   (`ldap::limit`); beyond `max_failed_logins` within `failure_window`
//!   the form refuses that login without asking the directory.
//! - **The password** is moved into a [`Password`] (zeroized on drop) as
//!   soon as the form is parsed; the form body and parsed copies are
//!   zeroized too. It is never logged, rendered or stored. Neither is the
//!   login name (it is usually an email address, SPEC 5.3).
//! - **Success**: [`session_for`] is the one conversion from a directory
//!   user to a session; then the same steps as the OpenID Connect callback
//!   (old session ended, new id, cookie, redirect to the saved target).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use rand::RngCore;
use zeroize::Zeroize;

use super::{form_get, form_pairs, html, redirect, Ctx};
use crate::config::ConnectionSettings;
use crate::ldap::{Directory, DirectoryError, DirectoryUser, Password};
use crate::peer::ConnInfo;
use crate::respond::{Body, GatewayError};
use crate::session::model::Session;
use crate::session::state::PendingLogin;
use crate::session::store::SessionId;
use crate::ui::PasswordView;

/// Longest `login_hint` pre-filled.
const MAX_HINT: usize = 512;

/// `GET /.auth/login/{connection}`: the form, with a fresh CSRF token.
pub(super) async fn form(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn: &ConnectionSettings,
) -> Result<Response<Body>, GatewayError> {
    let query = form_pairs(parts.uri.query().unwrap_or("").as_bytes());
    let raw_target = form_get(&query, "post_login_redirect_uri").or_else(|| form_get(&query, "rd"));
    let target = ctx.safe_target(parts, raw_target);
    let hint = form_get(&query, "login_hint")
        .map(str::trim)
        .filter(|h| h.len() <= MAX_HINT && !h.chars().any(char::is_control))
        .unwrap_or("");
    let (token, cookie) = new_token(ctx, parts, conn, &target);
    let view = view(conn, Some(token), hint, None);
    let mut resp = html(StatusCode::OK, ctx.state.pages.password(&view));
    resp.headers_mut().append(http::header::SET_COOKIE, cookie);
    Ok(resp)
}

/// The URL of the form with `login_hint` and the target (for home realm
/// discovery, which found an LDAP connection by the email's domain).
pub(super) fn form_url(
    conn: &ConnectionSettings,
    target: &str,
    login_hint: Option<&str>,
) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("post_login_redirect_uri", target);
    if let Some(h) = login_hint {
        q.append_pair("login_hint", h);
    }
    format!("/.auth/login/{}?{}", conn.name, q.finish())
}

/// `POST /.auth/login/{connection}`: checks the password.
pub(super) async fn submit(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn_info: &ConnInfo,
    conn: &Arc<ConnectionSettings>,
    mut body: Vec<u8>,
) -> Result<Response<Body>, GatewayError> {
    let mut pairs = form_pairs(&body);
    body.zeroize();
    let password = Password::new(form_get(&pairs, "password").unwrap_or("").to_string());
    let csrf = form_get(&pairs, "csrf").unwrap_or("").to_string();
    let login = form_get(&pairs, "username")
        .unwrap_or("")
        .trim()
        .to_string();
    for (_, v) in &mut pairs {
        v.zeroize();
    }
    drop(pairs);
    let login = if login.len() > crate::ldap::directory::MAX_LOGIN_BYTES {
        String::new()
    } else {
        login
    };

    // The token must be one of this browser's pending logins for this
    // connection; else the password is not looked at.
    let taken = ctx.state.states.take(&parts.headers, ctx.https, &csrf);
    let Some((pending, spent_cookie)) = taken.filter(|(p, _)| p.connection == conn.name) else {
        ctx.state.shared.metrics.record_login(&conn.name, "csrf");
        tracing::warn!(route.name = %ctx.route.name, connection = %conn.name, outcome = "csrf", "password sign-in refused: the form's token is missing, expired or not this browser's");
        let (token, cookie) = new_token(ctx, parts, conn, "/");
        let view = view(conn, Some(token), &login, Some("This sign-in form expired or was opened in another browser. Enter your password again."));
        let mut resp = html(StatusCode::BAD_REQUEST, ctx.state.pages.password(&view));
        resp.headers_mut().append(http::header::SET_COOKIE, cookie);
        return Ok(resp);
    };
    let directory = match directory(ctx, conn) {
        Ok(d) => d,
        Err(e) => return Ok(refused(ctx, conn, &e, &csrf, &login)),
    };
    let cfg = directory.settings();
    let client =
        crate::ldap::limit::client_address(&ctx.state.settings.server, &parts.headers, conn_info);
    let keys = crate::ldap::limit::keys(&conn.name, &login, client);
    let failures = &ctx.state.shared.ldap_failures;
    let store = &ctx.state.shared.sessions;
    // Held until the outcome is recorded: an attempt under way counts
    // against the limit, so concurrent guesses cannot all pass the check.
    let _attempt = match failures
        .begin(store, &keys, cfg.max_failed_logins, cfg.failure_window)
        .await
    {
        Ok(Some(attempt)) => attempt,
        Ok(None) => {
            ctx.state
                .shared
                .metrics
                .record_login(&conn.name, "rate_limited");
            tracing::warn!(route.name = %ctx.route.name, connection = %conn.name, client = %client, outcome = "rate_limited", "password sign-in refused: too many failures for this login or address");
            let minutes = cfg.failure_window.as_secs().div_ceil(60);
            let message = format!("Too many failed sign-ins for this account or from your network. Try again in {minutes} minute{}.", if minutes == 1 { "" } else { "s" });
            let v = view(conn, Some(csrf.clone()), &login, Some(&message));
            return Ok(html(
                StatusCode::TOO_MANY_REQUESTS,
                ctx.state.pages.password(&v),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "failure counters unavailable; sign-in refused");
            return Err(GatewayError::StoreUnavailable);
        }
    };

    let result = directory.authenticate(&login, &password).await;
    drop(password);
    let user = match result {
        Ok(u) => u,
        Err(e) => {
            ctx.state.shared.metrics.record_login(&conn.name, e.label());
            if matches!(
                e,
                DirectoryError::InvalidCredentials | DirectoryError::Account(_)
            ) {
                if let Err(se) = failures.record(store, &keys, cfg.failure_window).await {
                    tracing::error!(error = %se, "a failed sign-in could not be counted");
                }
            }
            match &e {
                DirectoryError::Unavailable(_)
                | DirectoryError::Directory(_)
                | DirectoryError::NoUserId(_) => {
                    tracing::error!(route.name = %ctx.route.name, connection = %conn.name, outcome = e.label(), error = %e, "password sign-in failed");
                }
                _ => {
                    tracing::info!(route.name = %ctx.route.name, connection = %conn.name, client = %client, outcome = e.label(), "password sign-in refused");
                }
            }
            return Ok(refused(ctx, conn, &e, &csrf, &login));
        }
    };
    let now = super::now();
    let Some(session) = session_for(ctx, conn, user, now) else {
        // An empty id attribute: the directory's answer names nobody.
        let e = DirectoryError::NoUserId("(empty)".into());
        tracing::error!(route.name = %ctx.route.name, connection = %conn.name, outcome = e.label(), "password sign-in failed");
        return Ok(refused(ctx, conn, &e, &csrf, &login));
    };
    if let Some(old) = ctx.state.cookies.read_for(&parts.headers, ctx.https) {
        let _ = ctx.state.shared.sessions.delete(&old).await;
    }
    let id = SessionId::generate();
    let user_id = session.user_id.clone();
    if let Err(e) = ctx.state.shared.sessions.put(&id, session).await {
        ctx.state
            .shared
            .metrics
            .record_login(&conn.name, "store_unavailable");
        tracing::error!(error = %e, "the session could not be stored");
        return Err(GatewayError::StoreUnavailable);
    }
    ctx.state.shared.metrics.record_login(&conn.name, "success");
    tracing::info!(route.name = %ctx.route.name, connection = %conn.name, user.id = %user_id, "signed in");
    let session_cookie = ctx.state.cookies.set(&id, ctx.https);
    redirect(&pending.target, [session_cookie, spent_cookie])
}

/// The one conversion from a directory user to a session, through the
/// seam's identity (`crate::connection`): the user id is
/// `<connection>:<objectGUID or entryUUID>` (SPEC 6.1), never the login;
/// the email counts as verified only with `trusted_email` (SPEC 9).
pub(crate) fn session_for(
    ctx: &Ctx<'_>,
    conn: &ConnectionSettings,
    user: DirectoryUser,
    now: u64,
) -> Option<Session> {
    let lifetime = ctx.state.settings.session.lifetime.as_secs();
    let email_trust = crate::connection::email_trust(conn, user.email.is_some(), None, false);
    // The directory that vouched: no issuer URL of its own.
    let issuer = format!("ldap:{}", conn.name);
    let identity =
        crate::connection::VerifiedIdentity::builder(conn, &user.subject, None, &issuer)?
            .email(user.email.as_deref(), email_trust)
            .name(user.name.as_deref())
            .preferred_username(user.username)
            .groups(user.groups)
            .build();
    Some(Session::new(
        identity,
        crate::session::model::SessionTerms {
            created_at: now,
            expires_at: now.saturating_add(lifetime),
            keep_access_token: false,
            keep_refresh_token: false,
        },
    ))
}

fn directory(ctx: &Ctx<'_>, conn: &ConnectionSettings) -> Result<Arc<Directory>, DirectoryError> {
    match ctx.state.directories.get(&conn.name) {
        Some(Ok(d)) => Ok(d.clone()),
        Some(Err(e)) => Err(DirectoryError::Directory(e.clone())),
        None => Err(DirectoryError::Directory(
            "no directory for this connection".into(),
        )),
    }
}

/// The answer to a refused sign-in: the form again (same token, user name
/// kept) with the reason, or the 503 page when the directory is down.
fn refused(
    ctx: &Ctx<'_>,
    conn: &ConnectionSettings,
    e: &DirectoryError,
    csrf: &str,
    login: &str,
) -> Response<Body> {
    let (status, title, message) = crate::ldap::refusal(e);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let retry = format!("/.auth/login/{}", conn.name);
        return html(
            status,
            ctx.state
                .pages
                .error(status.as_u16(), title, message, Some(("Try again", &retry))),
        );
    }
    let mut v = view(conn, Some(csrf.to_string()), login, Some(message));
    if let (DirectoryError::Account(state), crate::config::ConnectionKind::Ldap(l)) =
        (e, &conn.kind)
    {
        if crate::ldap::needs_password_change(*state) {
            v.change_url = l.password_change_url.as_ref().map(|u| u.to_string());
        }
    }
    html(status, ctx.state.pages.password(&v))
}

fn view(
    conn: &ConnectionSettings,
    csrf: Option<String>,
    username: &str,
    message: Option<&str>,
) -> PasswordView {
    PasswordView {
        connection: conn.display_name.clone(),
        action: format!("/.auth/login/{}", conn.name),
        csrf,
        username: username.to_string(),
        message: message.map(str::to_string),
        change_url: None,
        back: "/.auth/login".to_string(),
    }
}

/// A new CSRF token: a pending login of this browser for `conn`.
fn new_token(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn: &ConnectionSettings,
    target: &str,
) -> (String, HeaderValue) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let pending = PendingLogin {
        state: token.clone(),
        nonce: String::new(),
        pkce_verifier: String::new(),
        connection: conn.name.clone(),
        redirect_uri: String::new(),
        target: target.to_string(),
        created_at: super::now(),
    };
    let cookie = ctx.state.states.add(&parts.headers, ctx.https, pending);
    (token, cookie)
}
