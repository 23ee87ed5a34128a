//! `GET /.auth/logout/frontchannel/{connection}?sid=…` and `GET
//! /.auth/logout/frontchannel?iss=…&sid=…`: OpenID Connect Front-Channel
//! Logout (SPEC 5.10). The provider's logout page loads the registered URL
//! in a hidden iframe; realmgate ends the sessions of that connection with
//! that provider session id, on every replica (`SessionStore::revoke_sid`).
//!
//! - Entra calls the URL with `sid` only (no `iss`, a known deviation from
//!   the spec), so each connection has its own URL (`check` prints it). An
//!   `iss` sent there must be the connection's issuer (else 400: a URL
//!   registered at the wrong provider).
//! - The generic form picks every OpenID connection whose provider issues
//!   tokens as `iss` and ends that `sid` in each of them.
//!
//! The answer is 200 whether or not the sid was known (the provider has
//! done its part, and the answer tells no one which sids exist), 503 when
//! the store cannot be reached. It is meant to be framed by the provider:
//! its CSP `frame-ancestors` names the providers' origins instead of
//! `'none'`, and it sets no `X-Frame-Options`. The page has no control to
//! click, so framing it cannot be used for clickjacking. Nothing is read
//! from cookies (a cross-site iframe gets none with `SameSite=Lax`), and
//! the `sid` is never logged or put in a header (it is as good as a logout
//! token).

use http::header::HeaderValue;
use http::request::Parts;
use http::{Response, StatusCode};

use crate::auth::form::{form_get, form_pairs};
use crate::auth::Ctx;
use crate::config::{ConnectionKind, ConnectionSettings};
use crate::respond::{Body, GatewayError};

/// Longest `sid` looked at: provider session ids are short tokens.
const MAX_SID_LEN: usize = 1024;

/// The per-connection URL path, as `check` prints it for registration.
pub fn path_for(connection: &str) -> String {
    crate::config::ConnectionSettings::frontchannel_path(connection)
}

/// Serves both forms; `connection` is the path's `{connection}`, when given.
pub(crate) async fn logout(
    ctx: &Ctx<'_>,
    parts: &Parts,
    connection: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    let query = form_pairs(parts.uri.query().unwrap_or("").as_bytes());
    let sid = form_get(&query, "sid").filter(|s| !s.is_empty() && s.len() <= MAX_SID_LEN);
    let iss = form_get(&query, "iss").filter(|s| !s.is_empty());
    let connections: Vec<&ConnectionSettings> = match connection {
        Some(name) => {
            let Some(conn) = ctx.state.connection(name).filter(|c| speaks_oidc(c)) else {
                return Err(GatewayError::NotFound);
            };
            if let Some(iss) = iss {
                if !issued_by(ctx, conn, iss).await {
                    tracing::info!(connection = %conn.name, "front-channel logout refused: iss is not this connection's issuer");
                    return Err(GatewayError::BadRequest(
                        "the iss parameter is not the issuer of this connection; register this URL at the connection's own identity provider",
                    ));
                }
            }
            vec![&**conn]
        }
        None => {
            let Some(iss) = iss else {
                return Err(GatewayError::BadRequest(
                    "the generic front-channel logout URL needs iss and sid; Entra sends sid only: register /.auth/logout/frontchannel/{connection} instead",
                ));
            };
            let mut found = Vec::new();
            for conn in ctx.state.settings.connections.iter() {
                if speaks_oidc(conn) && issued_by(ctx, conn, iss).await {
                    found.push(&**conn);
                }
            }
            if found.is_empty() {
                tracing::info!(
                    "front-channel logout: no connection has that issuer; nothing ended"
                );
            }
            found
        }
    };
    let mut ended = 0u64;
    if let Some(sid) = sid {
        for conn in &connections {
            match ctx.state.shared.sessions.revoke_sid(&conn.name, sid).await {
                Ok(n) => ended = ended.saturating_add(n),
                Err(e) => {
                    tracing::error!(error = %e, "session store failed during front-channel logout");
                    return Err(GatewayError::StoreUnavailable);
                }
            }
        }
    }
    let names: Vec<&str> = connections.iter().map(|c| c.name.as_str()).collect();
    tracing::info!(connection = %names.join(","), sessions = ended, with_sid = sid.is_some(), "front-channel logout");
    ctx.state
        .audit
        .record(crate::audit::Event::FrontchannelLogout {
            connection: &names.join(","),
            ended,
        });
    let page = ctx.state.pages.error(
        200,
        "You are signed out",
        "You have been signed out of this application.",
        None,
    );
    let mut resp = crate::respond::html_response(StatusCode::OK, page);
    let csp = csp(&connections);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut()
            .insert(http::header::CONTENT_SECURITY_POLICY, v);
    }
    Ok(resp)
}

/// The kinds with OpenID Connect sessions ids (`sid`).
fn speaks_oidc(conn: &ConnectionSettings) -> bool {
    matches!(
        conn.kind,
        ConnectionKind::Entra(_) | ConnectionKind::Oidc(_)
    )
}

/// Whether `conn`'s provider issues tokens as `iss` (its discovered
/// issuer; for multi-tenant Entra the `{tenantid}` template). A provider
/// that cannot be reached matches nothing.
async fn issued_by(ctx: &Ctx<'_>, conn: &ConnectionSettings, iss: &str) -> bool {
    let Some(provider) = ctx.state.shared.providers.get(&conn.name) else {
        return false;
    };
    provider
        .may_have_issued_access_token(iss)
        .await
        .unwrap_or(false)
}

/// The page CSP with `frame-ancestors` naming the providers' origins (where
/// their logout pages run) instead of `'none'`.
pub(crate) fn csp(connections: &[&ConnectionSettings]) -> String {
    let mut origins: Vec<String> = Vec::new();
    for conn in connections {
        let url = match &conn.kind {
            ConnectionKind::Entra(e) => e.authority_host.clone(),
            _ => conn.issuer_url(),
        };
        // An ASCII origin has no space or `;`: it cannot add a directive.
        let origin = url.origin().ascii_serialization();
        if origin != "null" && !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    let ancestors = if origins.is_empty() {
        "'none'".to_string()
    } else {
        origins.join(" ")
    };
    crate::ui::CONTENT_SECURITY_POLICY.replace(
        "frame-ancestors 'none'",
        &format!("frame-ancestors {ancestors}"),
    )
}

#[cfg(test)]
mod tests;
