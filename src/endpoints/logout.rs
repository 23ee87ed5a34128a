//! `GET/POST /.auth/logout` and `GET /.auth/logout/done`.
//!
//! A sign-out that a page of another site started (see [`initiator`]) is not
//! carried out: it gets a confirmation page whose button POSTs the same
//! request from this origin.

use http::request::Parts;
use http::{Response, StatusCode};

use crate::auth::form::{form_get, form_pairs, is_form, read_form};
use crate::auth::Ctx;
use crate::respond::{html, redirect};
use crate::respond::{Body, GatewayError};

mod initiator;

/// Ends the session here (store and cookie), then at the provider when it
/// supports RP-initiated logout, then lands on a validated target.
///
/// The target is the query's `post_logout_redirect_uri` (alias `rd`); when
/// the query has neither, a form `POST` (`application/x-www-form-urlencoded`,
/// read within the `/.auth/` form limit) may carry them in its body.
pub(crate) async fn logout(
    ctx: &Ctx<'_>,
    parts: &Parts,
    body: hyper::body::Incoming,
) -> Result<Response<Body>, GatewayError> {
    let pick = |pairs: &[(String, String)]| {
        form_get(pairs, "post_logout_redirect_uri")
            .or_else(|| form_get(pairs, "rd"))
            .map(str::to_string)
    };
    let mut raw_target = pick(&form_pairs(parts.uri.query().unwrap_or("").as_bytes()));
    if raw_target.is_none() && parts.method == http::Method::POST && is_form(&parts.headers) {
        raw_target = pick(&form_pairs(&read_form(body).await?));
    }
    let target = raw_target.map(|t| ctx.safe_target(parts, Some(&t)));
    if initiator::from_another_site(
        &parts.headers,
        &crate::peer::host_of(parts),
        &ctx.state.route_hosts,
    ) {
        tracing::info!(method = %parts.method, "sign-out started by another site: asking the user to confirm");
        return Ok(confirm(ctx, target.as_deref()));
    }
    let mut provider_logout = None;
    if let Some(id) = ctx.state.cookies.read_for(&parts.headers, ctx.https) {
        if let Ok(Some(session)) = ctx.state.shared.sessions.get(&id).await {
            if let Some(provider) = ctx.state.shared.providers.get(&session.connection) {
                provider_logout = provider
                    .end_session_url(
                        session.id_token.as_deref(),
                        &absolute(ctx, target.as_deref().unwrap_or("/.auth/logout/done")),
                    )
                    .await
                    .map(|u| (u.to_string(), None));
            } else {
                provider_logout = kind_logout(ctx, parts, &session, target.as_deref()).await;
            }
            tracing::info!(user.id = %session.user_id, connection = %session.connection, "signed out");
            ctx.state.audit.record(crate::audit::Event::SignOut {
                route: &ctx.route.name,
                connection: &session.connection,
                user_id: &session.user_id,
                client: ctx.client,
            });
        }
        ctx.state.shared.sessions.delete(&id).await.map_err(|e| {
            tracing::error!(error = %e, "session store failed during logout");
            GatewayError::StoreUnavailable
        })?;
    }
    let clear = ctx.state.cookies.clear(ctx.https);
    if let Some((url, state_cookie)) = provider_logout {
        return redirect(&url, std::iter::once(clear).chain(state_cookie));
    }
    match target {
        Some(t) => redirect(&t, [clear]),
        None => {
            let mut resp = signed_out(ctx);
            resp.headers_mut().append(http::header::SET_COOKIE, clear);
            Ok(resp)
        }
    }
}

/// Logout at the provider by the session's connection kind (SAML
/// SP-initiated single logout), at a connection this route allows (its
/// answer comes back here): the URL to send the browser to, and the state
/// cookie that binds the provider's answer to this browser (with the
/// post-logout target).
async fn kind_logout(
    ctx: &Ctx<'_>,
    parts: &Parts,
    session: &crate::session::model::Session,
    target: Option<&str>,
) -> Option<(String, Option<http::HeaderValue>)> {
    let allowed = ctx.allowed_connections();
    let conn = allowed.iter().find(|c| c.name == session.connection)?;
    let kinds = ctx.kinds();
    let kind = kinds.for_connection(conn)?;
    let out = kind
        .provider_logout(crate::connection::LogoutAtProvider {
            connection: conn,
            session,
            origin: &ctx.origin,
        })
        .await?;
    let pending = crate::session::state::PendingLogin {
        state: out.pending.state,
        nonce: out.pending.nonce,
        pkce_verifier: out.pending.pkce_verifier,
        connection: conn.name.clone(),
        redirect_uri: out.answer_uri,
        target: target.unwrap_or("/.auth/logout/done").to_string(),
        created_at: crate::auth::now(),
    };
    let cookie = ctx.state.states.add(&parts.headers, ctx.https, pending);
    Some((out.url, Some(cookie)))
}

/// True when a page of another site started this request (the rules of
/// [`initiator`], with this host and every route host as ours). The
/// sign-in start uses it too: a sign-in another site starts ends the
/// browser's session when it completes.
pub(crate) fn started_elsewhere(ctx: &Ctx<'_>, parts: &Parts) -> bool {
    initiator::from_another_site(
        &parts.headers,
        &crate::peer::host_of(parts),
        &ctx.state.route_hosts,
    )
}

/// For another kind's own sign-out endpoint (WS-Fed's `wsignout1.0` at the
/// callback): the confirmation page when a page of another site started
/// it, as for `/.auth/logout`; `idp_host` (the IdP's sign-in host) counts
/// as ours, since its sign-out pages send the browser here.
pub(crate) fn confirm_if_started_elsewhere(
    ctx: &Ctx<'_>,
    parts: &Parts,
    idp_host: Option<&str>,
) -> Option<Response<Body>> {
    let mut ours: std::collections::HashSet<String> = (*ctx.state.route_hosts).clone();
    ours.extend(idp_host.map(str::to_ascii_lowercase));
    initiator::from_another_site(&parts.headers, &crate::peer::host_of(parts), &ours)
        .then(|| confirm(ctx, None))
}

/// The confirmation page: 200, the page headers (CSP with `frame-ancestors
/// 'none'`, nosniff, no-store) plus `X-Frame-Options: DENY` for browsers that
/// predate CSP framing rules (the button must not be clickjacked), and a
/// form that POSTs to `/.auth/logout` with the already validated target.
fn confirm(ctx: &Ctx<'_>, target: Option<&str>) -> Response<Body> {
    let action = match target {
        Some(t) => {
            let encoded: String = url::form_urlencoded::byte_serialize(t.as_bytes()).collect();
            format!("/.auth/logout?post_logout_redirect_uri={encoded}")
        }
        None => "/.auth/logout".to_string(),
    };
    let mut resp =
        crate::respond::html_response(StatusCode::OK, ctx.state.pages.confirm_logout(&action));
    resp.headers_mut().insert(
        http::header::X_FRAME_OPTIONS,
        http::HeaderValue::from_static("DENY"),
    );
    resp
}

/// `GET /.auth/logout/done`: where the provider sends the browser back after
/// RP-initiated logout when no target was given.
pub(crate) fn signed_out(ctx: &Ctx<'_>) -> Response<Body> {
    html(
        StatusCode::OK,
        ctx.state.pages.error(
            200,
            "You are signed out",
            "You have been signed out of this application.",
            Some(("Sign in again", "/.auth/login")),
        ),
    )
}

/// An absolute URL on this origin for a validated target (which may already
/// be absolute on a configured route host).
fn absolute(ctx: &Ctx<'_>, target: &str) -> String {
    if target.starts_with('/') {
        format!("{}{}", ctx.origin, target)
    } else {
        target.to_string()
    }
}
