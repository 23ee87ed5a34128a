//! `GET/POST /.auth/login` (home realm discovery) and
//! `GET /.auth/login/{connection}` (the start of a sign-in at the
//! connection's kind: a redirect to the provider, or the kind's own page).

use http::request::Parts;
use http::{Response, StatusCode};

use super::{form_get, form_pairs, html, redirect, Ctx};
use crate::config::ConnectionSettings;
use crate::connection::{Begin, BeginRequest, Blame, Pending};
use crate::respond::{Body, GatewayError};
use crate::session::cookie::FLASH_COOKIE;
use crate::session::state::PendingLogin;
use crate::ui::{LoginButton, LoginView};

/// The login page, or straight to the only connection when there is nothing
/// to ask (one allowed connection without home realm domains).
pub(super) async fn page(ctx: &Ctx<'_>, parts: &Parts) -> Result<Response<Body>, GatewayError> {
    let query = form_pairs(parts.uri.query().unwrap_or("").as_bytes());
    let raw_target = form_get(&query, "post_login_redirect_uri").or_else(|| form_get(&query, "rd"));
    let target = ctx.safe_target(parts, raw_target);
    let carried = carried(ctx, &[&query]);
    // Signed in already (first hour 6): say who, offer to continue or to
    // use another account (`switch=1`: the usual page; a new sign-in
    // replaces this session).
    if form_get(&query, "switch").is_none() {
        if let Some(page) = signed_in_page(ctx, parts, &target, &carried, false).await? {
            return Ok(page);
        }
    }
    // Back from an unknown-domain attempt (POST-redirect-GET): its message
    // and email, once.
    if let Some((message, email)) = take_flash(parts) {
        let mut resp = render(
            ctx,
            &target,
            &email,
            Some(message),
            &carried,
            StatusCode::OK,
        );
        resp.headers_mut()
            .append(http::header::SET_COOKIE, flash_cookie(ctx, None));
        return Ok(resp);
    }
    let allowed = ctx.allowed_connections();
    if let [only] = allowed.as_slice() {
        if only.home_realm_domains.is_empty() {
            // A start another site began, as `/.auth/login/{connection}`
            // checks it (review 14: this shortcut skipped the check).
            if let Some(page) =
                switch_started_elsewhere(ctx, parts, only, &target, &carried).await?
            {
                return Ok(page);
            }
            // As `/.auth/login/{connection}` does (SPEC 3: `forward_params`
            // "may be passed through /.auth/login?…").
            let extra = allow_listed(&only.forward_params, &carried);
            return start_flow(ctx, parts, only, &target, extra, None).await;
        }
    }
    Ok(render(ctx, &target, "", None, &carried, StatusCode::OK))
}

/// Fields of the sign-in page's own form and query, never carried as
/// forwarded parameters (a second field of one name would make both absent).
const PAGE_FIELDS: &[&str] = &["email", "post_login_redirect_uri", "rd", "switch"];

/// The parameters the sign-in page carries on towards the provider (SPEC 3
/// `forward_params`): each name that some connection this route allows
/// lists in its `forward_params`, but none of [`PAGE_FIELDS`], with its
/// value from the first of `sources` that has it once (a repeated
/// parameter is ambiguous, so absent there). The page carries them in
/// hidden fields, in its buttons' links and through an unknown-domain
/// attempt; the connection chosen then passes on those it allow-lists.
fn carried(ctx: &Ctx<'_>, sources: &[&[(String, String)]]) -> Vec<(String, String)> {
    let allowed = ctx.allowed_connections();
    let mut out: Vec<(String, String)> = Vec::new();
    for name in allowed.iter().flat_map(|c| c.forward_params.iter()) {
        if PAGE_FIELDS.contains(&name.as_str()) || out.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Some(v) = sources.iter().find_map(|pairs| form_get(pairs, name)) {
            out.push((name.clone(), v.to_string()));
        }
    }
    out
}

/// The pairs of `pairs` whose name `allow` lists (a connection's
/// `forward_params`), in the allow-list's order; a repeated name counts as
/// absent.
fn allow_listed(allow: &[String], pairs: &[(String, String)]) -> Vec<(String, String)> {
    allow
        .iter()
        .filter_map(|p| form_get(pairs, p).map(|v| (p.clone(), v.to_string())))
        .collect()
}

/// The "you are signed in" page, when this browser has a live session of a
/// connection this route allows (`any_connection`: of any configured
/// connection, as a session shared with another route host through
/// `cookie_domain` may be).
async fn signed_in_page(
    ctx: &Ctx<'_>,
    parts: &Parts,
    target: &str,
    carried: &[(String, String)],
    any_connection: bool,
) -> Result<Option<Response<Body>>, GatewayError> {
    let Some(id) = ctx.state.cookies.read_for(&parts.headers, ctx.https) else {
        return Ok(None);
    };
    let Some(session) = super::state::load_session(ctx.state, &id).await? else {
        return Ok(None);
    };
    let allowed = ctx.allowed_connections();
    let conn = allowed
        .into_iter()
        .find(|c| c.name == session.connection)
        .or_else(|| {
            any_connection
                .then(|| ctx.state.settings.connections.iter())
                .into_iter()
                .flatten()
                .find(|c| c.name == session.connection)
        });
    let Some(conn) = conn else {
        return Ok(None);
    };
    // As the denied page names the user: never an email (SPEC 6).
    let who = crate::respond::who(&session).unwrap_or("your account");
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("switch", "1");
    q.append_pair("post_login_redirect_uri", target);
    q.extend_pairs(carried);
    let switch = format!("/.auth/login?{}", q.finish());
    let page = ctx
        .state
        .pages
        .signed_in(who, &conn.display_name, target, &switch);
    Ok(Some(html(StatusCode::OK, page)))
}

/// A sign-in at `conn` that a page of another site started, in a browser
/// signed in through another connection: the signed-in page (continue, or
/// use another account) instead of the flow. Completing the flow ends the
/// browser's session (a new id at every sign-in); a partner IdP that
/// answers at once for an account of its choosing would otherwise sign a
/// user out and into that account from one cross-site link, where a
/// sign-out started elsewhere asks first (review 13). Tiles for users not
/// signed in, or signed in through `conn` itself, start at once.
async fn switch_started_elsewhere(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn: &ConnectionSettings,
    target: &str,
    carried: &[(String, String)],
) -> Result<Option<Response<Body>>, GatewayError> {
    if !crate::endpoints::logout::started_elsewhere(ctx, parts) {
        return Ok(None);
    }
    let Some(id) = ctx.state.cookies.read_for(&parts.headers, ctx.https) else {
        return Ok(None);
    };
    match super::state::load_session(ctx.state, &id).await? {
        Some(session) if session.connection != conn.name => {
            tracing::info!(route.name = %ctx.route.name, connection = %conn.name, "sign-in at another connection started by another site: showing who is signed in");
            // Any connection's session: one this route does not allow,
            // shared through `cookie_domain` with another route host, is
            // ended by this sign-in all the same (review 14).
            signed_in_page(ctx, parts, target, carried, true).await
        }
        _ => Ok(None),
    }
}

/// The two messages an unknown-domain attempt can show.
const NO_DOMAIN: &str = "Enter your full work email address, like name@company.com.";
const UNKNOWN_DOMAIN: &str = "No sign-in is set up for the domain of that email address. Check the address, or ask your IT department which account to use.";

/// `Set-Cookie` of the flash cookie, which carries an unknown-domain
/// attempt's message and email from the `POST` to the `GET` it redirects
/// to: short-lived, only sent to `/.auth/login`, and stripped from requests
/// to apps like realmgate's other cookies. Its value only ever fills the
/// page's email field and picks one of two fixed messages.
/// `Some((message, email))` sets it, None deletes it.
fn flash_cookie(ctx: &Ctx<'_>, value: Option<(&str, &str)>) -> http::HeaderValue {
    use base64::Engine;
    let v = match value {
        Some((message, email)) => format!(
            "{}.{}",
            if message == NO_DOMAIN { "d" } else { "n" },
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(email.as_bytes())
        ),
        None => String::new(),
    };
    let mut cookie = cookie::Cookie::build((FLASH_COOKIE, v))
        .path("/.auth/login")
        .http_only(true)
        .secure(ctx.https)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(if value.is_some() {
            120
        } else {
            0
        }));
    if value.is_none() {
        cookie = cookie.expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
    }
    crate::session::cookie::set_cookie_value(&cookie.build())
}

/// The message and email of the flash cookie, if this request has one
/// well-formed one.
fn take_flash(parts: &Parts) -> Option<(&'static str, String)> {
    use base64::Engine;
    let raw = crate::session::cookie::single_value(crate::session::cookie::cookie_values(
        &parts.headers,
        FLASH_COOKIE,
    ))?;
    let raw = std::str::from_utf8(raw).ok()?;
    let (code, email) = raw.split_once('.')?;
    let message = match code {
        "d" => NO_DOMAIN,
        "n" => UNKNOWN_DOMAIN,
        _ => return None,
    };
    let email = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(email)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|e| e.len() <= 320 && !e.chars().any(char::is_control))?;
    Some((message, email))
}

/// The email's domain picks the connection; the flow starts at once with
/// `login_hint` and `domain_hint`.
pub(super) async fn submit(
    ctx: &Ctx<'_>,
    parts: &Parts,
    form: Vec<u8>,
) -> Result<Response<Body>, GatewayError> {
    let form = form_pairs(&form);
    let query = form_pairs(parts.uri.query().unwrap_or("").as_bytes());
    // The form's target (the page writes it), else the query's, as the GET
    // takes it: `post_login_redirect_uri`, else its alias `rd`.
    let raw_target = form_get(&form, "post_login_redirect_uri")
        .or_else(|| form_get(&form, "rd"))
        .or_else(|| form_get(&query, "post_login_redirect_uri"))
        .or_else(|| form_get(&query, "rd"));
    let target = ctx.safe_target(parts, raw_target);
    // The page's hidden fields, else the query.
    let carried = carried(ctx, &[&form, &query]);
    let email = form_get(&form, "email").unwrap_or("").trim();
    // Emails are never logged (SPEC 5.3).
    let allowed = ctx.allowed_connections();
    let found = crate::discovery::connection_for(email, allowed.iter().map(|c| &***c));
    match found {
        Some(conn) => {
            if let Some(page) =
                switch_started_elsewhere(ctx, parts, conn, &target, &carried).await?
            {
                return Ok(page);
            }
            let domain = crate::discovery::domain_of(email).unwrap_or_default();
            let mut extra = vec![
                ("login_hint".to_string(), email.to_string()),
                ("domain_hint".to_string(), domain),
            ];
            // Then what the chosen connection allow-lists, as
            // `/.auth/login/{connection}` passes it on; the hints realmgate
            // takes from the email typed are not replaced by forwarded ones.
            for (k, v) in allow_listed(&conn.forward_params, &carried) {
                if !extra.iter().any(|(e, _)| *e == k) {
                    extra.push((k, v));
                }
            }
            start_flow(ctx, parts, conn, &target, extra, None).await
        }
        None => {
            tracing::info!(route.name = %ctx.route.name, "home realm discovery found no connection");
            let message = if crate::discovery::domain_of(email).is_none() {
                NO_DOMAIN
            } else {
                UNKNOWN_DOMAIN
            };
            // SPEC 4: the page again, 200, message and email kept. A
            // browser's own navigation (`Sec-Fetch-Mode: navigate`) gets it
            // by POST-redirect-GET instead: the page then comes from a GET,
            // so Back and reload never ask to send the form again (there is
            // no JavaScript to rewrite the history entry). The email
            // travels in a short-lived cookie, not in the URL (where proxies
            // would log it). Either way the same page, message and email.
            if !is_navigation(parts) {
                return Ok(render(
                    ctx,
                    &target,
                    email,
                    Some(message),
                    &carried,
                    StatusCode::OK,
                ));
            }
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("post_login_redirect_uri", &target);
            q.extend_pairs(&carried);
            let mut resp = redirect(
                &format!("/.auth/login?{}", q.finish()),
                [flash_cookie(ctx, Some((message, email)))],
            )?;
            *resp.status_mut() = StatusCode::SEE_OTHER;
            Ok(resp)
        }
    }
}

/// True for a browser's top-level navigation (a form it submits): Fetch
/// Metadata's `Sec-Fetch-Mode: navigate`, sent by every current browser.
fn is_navigation(parts: &Parts) -> bool {
    parts
        .headers
        .get("sec-fetch-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"navigate"))
}

/// `GET /.auth/login/{connection}`: only connections the route allows.
pub(super) async fn start(
    ctx: &Ctx<'_>,
    parts: &Parts,
    name: &str,
) -> Result<Response<Body>, GatewayError> {
    let Some(conn) = ctx
        .allowed_connections()
        .into_iter()
        .find(|c| c.name == name)
    else {
        return Err(GatewayError::NotFound);
    };
    let query = form_pairs(parts.uri.query().unwrap_or("").as_bytes());
    let raw_target = form_get(&query, "post_login_redirect_uri").or_else(|| form_get(&query, "rd"));
    let target = ctx.safe_target(parts, raw_target);
    if let Some(page) =
        switch_started_elsewhere(ctx, parts, conn, &target, &carried(ctx, &[&query])).await?
    {
        return Ok(page);
    }
    // Only allow-listed parameters pass through to the provider.
    let extra = allow_listed(&conn.forward_params, &query);
    start_flow(ctx, parts, conn, &target, extra, Some(&query)).await
}

/// Begins the sign-in at the connection's kind (`crate::connection`): a
/// redirect to the provider, or a page of realmgate's own. A pending login
/// the kind hands back is bound to the browser by the state cookie.
/// `query`: the query of `GET /.auth/login/{name}`; None when begun from
/// the sign-in page (`/.auth/login`).
async fn start_flow(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn: &ConnectionSettings,
    target: &str,
    mut extra: Vec<(String, String)>,
    query: Option<&[(String, String)]>,
) -> Result<Response<Body>, GatewayError> {
    let kinds = ctx.kinds();
    let kind = kinds.for_connection(conn).ok_or(GatewayError::NotFound)?;
    if kind.completes_at_login_post() && query.is_none() {
        // A kind with a form of its own (LDAP) serves it at its own URL
        // only: the sign-in page (and its home realm discovery POST) sends
        // the browser there with the email typed, so a reload of the form
        // does not post the sign-in page again.
        let hint = extra
            .iter()
            .find(|(k, _)| k == "login_hint")
            .map(|(_, v)| v.as_str());
        return redirect(&page_url(conn, target, hint), []);
    }
    // Operator parameters first; a forwarded one with the same name wins only
    // if the operator allow-listed it.
    for (k, v) in &conn.upstream_params {
        if !extra.iter().any(|(e, _)| e == k) {
            extra.push((k.clone(), v.clone()));
        }
    }
    let redirect_uri = ctx.redirect_uri(conn);
    let begun = kind
        .begin(BeginRequest {
            connection: conn,
            redirect_uri: &redirect_uri,
            target,
            extra: &extra,
            query: query.unwrap_or_default(),
            pages: &ctx.state.pages,
        })
        .await
        .map_err(|e| {
            tracing::warn!(connection = %conn.name, error = %e, "cannot start sign-in");
            match e.reason.blame() {
                Blame::Unavailable => GatewayError::ProviderUnavailable,
                Blame::Expired
                | Blame::Foreign
                | Blame::Provider
                | Blame::Unverified
                | Blame::Account
                | Blame::Limited => {
                    GatewayError::BadRequest("The sign-in could not be started. Start again.")
                }
            }
        })?;
    let bind = |pending: Pending| bind_pending(ctx, parts, conn, target, pending);
    tracing::info!(route.name = %ctx.route.name, connection = %conn.name, "sign-in started");
    match begun {
        Begin::Redirect { url, pending } => redirect(&url, [bind(pending)]),
        Begin::Page {
            status,
            html: page,
            pending,
        } => {
            let mut resp = html(status, page);
            if let Some(pending) = pending {
                resp.headers_mut()
                    .append(http::header::SET_COOKIE, bind(pending));
            }
            Ok(resp)
        }
    }
}

/// The `Set-Cookie` that binds a kind's pending login (of `conn`, going to
/// `target`) to this browser.
pub(super) fn bind_pending(
    ctx: &Ctx<'_>,
    parts: &Parts,
    conn: &ConnectionSettings,
    target: &str,
    pending: Pending,
) -> http::HeaderValue {
    let login = PendingLogin {
        state: pending.state,
        nonce: pending.nonce,
        pkce_verifier: pending.pkce_verifier,
        connection: conn.name.clone(),
        redirect_uri: ctx.redirect_uri(conn),
        target: target.to_string(),
        created_at: super::now(),
    };
    ctx.state.states.add(&parts.headers, ctx.https, login)
}

/// `/.auth/login/{name}`.
fn login_path(conn: &ConnectionSettings) -> String {
    format!("/.auth/login/{}", conn.name)
}

/// The URL of a kind's own page with the target and `login_hint`.
fn page_url(conn: &ConnectionSettings, target: &str, login_hint: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("post_login_redirect_uri", target);
    if let Some(h) = login_hint {
        q.append_pair("login_hint", h);
    }
    format!("{}?{}", login_path(conn), q.finish())
}

/// The sign-in page: `carried` (see [`carried`]) goes into its form as
/// hidden fields and into each button's link as far as that connection
/// allow-lists it.
fn render(
    ctx: &Ctx<'_>,
    target: &str,
    email: &str,
    message: Option<&str>,
    carried: &[(String, String)],
    status: StatusCode,
) -> Response<Body> {
    let buttons: Vec<LoginButton> = ctx
        .allowed_connections()
        .into_iter()
        .filter(|c| c.always_show_button || c.home_realm_domains.is_empty())
        .map(|c| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("post_login_redirect_uri", target);
            q.extend_pairs(allow_listed(&c.forward_params, carried));
            LoginButton {
                label: c.display_name.clone(),
                href: format!("/.auth/login/{}?{}", c.name, q.finish()),
            }
        })
        .collect();
    let show_email = ctx
        .allowed_connections()
        .iter()
        .any(|c| !c.home_realm_domains.is_empty());
    let view = LoginView {
        email: email.to_string(),
        message: message.map(str::to_string),
        target: target.to_string(),
        forward: carried.to_vec(),
        buttons,
        show_email_form: show_email,
    };
    html(status, ctx.state.pages.login(&view))
}
