//! Routes the sign-in endpoints: `/.auth/login` (the page and its form),
//! `/.auth/login/<connection>` (start) and `/.auth/login/<connection>/callback`
//! (and WS-Fed sign-out there), and `/.auth/saml/<connection>/<path>` (a
//! kind's own endpoints).
//! Inside `auth` because `login` and `callback` keep their items `pub(super)`.

use http::request::Parts;
use http::{Method, Response};

use super::form::read_form;
use super::{callback, form_get, form_pairs, login, Ctx};
use crate::respond::{Body, GatewayError};

/// `rest` is the path after `/.auth`: `/login` or `/login/...`.
pub(crate) async fn serve(
    ctx: &Ctx<'_>,
    parts: &Parts,
    body: hyper::body::Incoming,
    rest: &str,
    _conn: &crate::peer::ConnInfo,
) -> Result<Response<Body>, GatewayError> {
    let method = &parts.method;
    if rest == "/login" {
        return match *method {
            Method::GET | Method::HEAD => login::page(ctx, parts).await,
            Method::POST => {
                let form = read_form(body).await?;
                login::submit(ctx, parts, form).await
            }
            _ => Err(GatewayError::MethodNotAllowed("GET, HEAD, POST")),
        };
    }
    let Some(tail) = rest.strip_prefix("/login/") else {
        return Err(GatewayError::NotFound);
    };
    match tail.split_once('/') {
        None if *method == Method::GET || *method == Method::HEAD => {
            login::start(ctx, parts, tail).await
        }
        // A kind whose form posts back to itself (`connection::SignIn`).
        None if *method == Method::POST && callback::completes_at_login_post(ctx, tail) => {
            let form = read_form(body).await?;
            callback::finish(ctx, parts, tail, form).await
        }
        // WS-Fed sign-out (`wa=wsignout1.0` / `wsignoutcleanup1.0`) comes to
        // the callback of a WS-Fed connection.
        Some((name, "callback"))
            if *method == Method::GET && wsfed_signout_asked(ctx, parts, name) =>
        {
            wsfed_signout(ctx, parts, name).await
        }
        Some((name, "callback")) if *method == Method::GET => {
            let query = parts.uri.query().unwrap_or("").as_bytes().to_vec();
            callback::finish(ctx, parts, name, query).await
        }
        Some((name, "callback")) if *method == Method::POST => {
            let form = read_form(body).await?;
            callback::finish(ctx, parts, name, form).await
        }
        Some((_, "callback")) => Err(GatewayError::MethodNotAllowed("GET, POST")),
        None if callback::completes_at_login_post(ctx, tail) => {
            Err(GatewayError::MethodNotAllowed("GET, HEAD, POST"))
        }
        None => Err(GatewayError::MethodNotAllowed("GET, HEAD")),
        _ => Err(GatewayError::NotFound),
    }
}

/// `GET, POST /oauth2/callback` (oauth2-proxy's redirect URI, on a route
/// with `oauth2_proxy_endpoints`): the callback of the connection whose
/// pending login this browser's `state` names, among the route's OpenID
/// Connect connections (`check` allows one there, so the shared redirect
/// URI opens no mix-up). Without such a pending login, that one connection's
/// callback refuses it like any unknown state. The rest is
/// `callback::finish`, as at `/.auth/login/{connection}/callback`.
pub(crate) async fn oauth2_callback(
    ctx: &Ctx<'_>,
    parts: &Parts,
    body: hyper::body::Incoming,
) -> Result<Response<Body>, GatewayError> {
    let params = match parts.method {
        Method::GET => parts.uri.query().unwrap_or("").as_bytes().to_vec(),
        Method::POST => read_form(body).await?,
        _ => return Err(GatewayError::MethodNotAllowed("GET, POST")),
    };
    let oidc: Vec<String> = ctx
        .allowed_connections()
        .into_iter()
        .filter(|c| c.is_oidc())
        .map(|c| c.name.clone())
        .collect();
    let state = form_get(&form_pairs(&params), "state").map(str::to_string);
    let name = state
        .and_then(|s| {
            ctx.state
                .states
                .connection_of(&parts.headers, ctx.https, &s)
        })
        .filter(|n| oidc.contains(n))
        .or_else(|| oidc.into_iter().next())
        .ok_or(GatewayError::NotFound)?;
    callback::finish(ctx, parts, &name, params).await
}

/// True for `GET /.auth/login/{wsfed connection}/callback?wa=wsignout1.0`
/// (or `wsignoutcleanup1.0`) at a connection this route allows.
fn wsfed_signout_asked(ctx: &Ctx<'_>, parts: &Parts, name: &str) -> bool {
    let query = form_pairs(parts.uri.query().unwrap_or("").as_bytes());
    matches!(
        form_get(&query, "wa"),
        Some("wsignout1.0" | "wsignoutcleanup1.0")
    ) && ctx
        .allowed_connections()
        .iter()
        .any(|c| c.name == name && matches!(c.kind, crate::config::ConnectionKind::WsFed(_)))
}

/// The IdP signs the user out (WS-Fed passive sign-out, unsigned by the
/// protocol): this browser's session ends if it was made by this
/// connection, and its cookie is cleared. A session of another connection
/// is left alone.
async fn wsfed_signout(
    ctx: &Ctx<'_>,
    parts: &Parts,
    name: &str,
) -> Result<Response<Body>, GatewayError> {
    // A link on any page is a top-level GET that carries the Lax session
    // cookie: a sign-out another site started gets the confirmation page
    // (review 9), as at `/.auth/logout`. The IdP's own pages are not
    // another site. (Its `wsignoutcleanup1.0` in a hidden frame or image
    // never carries the Lax cookie, so it ends nothing either way.)
    let idp_host = match ctx.state.connection(name) {
        Some(conn) => ctx
            .state
            .shared
            .saml
            .check(conn, ctx.state.shared.providers.http_client())
            .await
            .ok()
            .and_then(|md| url::Url::parse(&md.sso_url).ok())
            .and_then(|u| u.host_str().map(str::to_string)),
        None => None,
    };
    if let Some(page) =
        crate::endpoints::logout::confirm_if_started_elsewhere(ctx, parts, idp_host.as_deref())
    {
        tracing::info!(connection = %name, "WS-Fed sign-out started by another site: asking the user to confirm");
        return Ok(page);
    }
    if let Some(id) = ctx.state.cookies.read_for(&parts.headers, ctx.https) {
        let session = super::state::load_session(ctx.state, &id).await?;
        if session.is_some_and(|s| s.connection == name) {
            ctx.state.shared.sessions.delete(&id).await.map_err(|e| {
                tracing::error!(error = %e, "session store failed during WS-Fed sign-out");
                GatewayError::StoreUnavailable
            })?;
            tracing::info!(connection = %name, "WS-Fed sign-out ended the session");
            ctx.state
                .audit
                .record(crate::audit::Event::FrontchannelLogout {
                    connection: name,
                    ended: 1,
                });
        }
    }
    let mut resp = crate::endpoints::logout::signed_out(ctx);
    resp.headers_mut()
        .append(http::header::SET_COOKIE, ctx.state.cookies.clear(ctx.https));
    Ok(resp)
}

/// `/.auth/saml/{name}/{path}`: the endpoints a connection's kind owns
/// (`connection::SignIn::endpoint`: SAML metadata and single logout), at
/// connections this route allows.
pub(crate) async fn kind_endpoint(
    ctx: &Ctx<'_>,
    parts: &Parts,
    body: hyper::body::Incoming,
    rest: &str,
) -> Result<Response<Body>, GatewayError> {
    let Some((name, path)) = rest.split_once('/') else {
        return Err(GatewayError::NotFound);
    };
    let Some(conn) = ctx
        .allowed_connections()
        .into_iter()
        .find(|c| c.name == name)
        .cloned()
    else {
        return Err(GatewayError::NotFound);
    };
    let body = if parts.method == Method::POST {
        read_form(body).await?
    } else {
        Vec::new()
    };
    let kinds = ctx.kinds();
    let kind = kinds.for_connection(&conn).ok_or(GatewayError::NotFound)?;
    // The pending logout (or login) this request names, spent here: an
    // answer to a logout this browser started (SAML LogoutResponse).
    let params = if parts.method == Method::POST {
        form_pairs(&body)
    } else {
        form_pairs(parts.uri.query().unwrap_or("").as_bytes())
    };
    let taken = form_get(&params, kind.state_param())
        .and_then(|s| ctx.state.states.take(&parts.headers, ctx.https, s));
    let (pending, state_cookie) = match taken {
        Some((p, c)) => (Some(p), Some(c)),
        None => (None, None),
    };
    let served = kind.endpoint(
        path,
        crate::connection::EndpointRequest {
            connection: &conn,
            parts,
            body: &body,
            pages: &ctx.state.pages,
            origin: &ctx.origin,
            pending: pending.as_ref(),
            audit: &ctx.state.audit,
            session_id: ctx.state.cookies.read_for(&parts.headers, ctx.https),
        },
    );
    let mut resp = match served {
        Some(f) => f.await?,
        None => return Err(GatewayError::NotFound),
    };
    if let Some(c) = state_cookie {
        resp.headers_mut().append(http::header::SET_COOKIE, c);
    }
    Ok(resp)
}
