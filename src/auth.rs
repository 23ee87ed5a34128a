//! The `/.auth/*` endpoints and the authentication step of the pipeline.
//!
//! The handler calls [`endpoint`] for every request under `/.auth/` and
//! [`gate`] for every other routed request, after hop-by-hop headers are
//! removed and before forwarding headers are added. `gate` strips every
//! identity header and realmgate's own cookies, then lets a public path
//! through without identity, or authenticates (a bearer token on routes with
//! `api_audiences`, see `bearer`; else the session cookie), authorizes
//! (`policy`) and injects the identity headers of the route's profile.

mod account;
pub mod assertion;
mod backchannel;
mod bearer;
pub(crate) mod callback;
mod graph;
mod login;
mod refresh;
mod verify;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;

use crate::config::{ConnectionSettings, RouteSettings, Settings};
use crate::headers::identity::Injected;
use crate::oidc::Providers;
use crate::peer::ConnInfo;
use crate::policy::{self, Permit};
use crate::respond::{self, Body, GatewayError};
use crate::session::cookie::SessionCookies;
use crate::session::model::Session;
use crate::session::state::StateCookies;
use crate::session::store::{SessionId, SessionStore};
use crate::ui::Pages;

/// Authentication state that survives config reloads: the session store and
/// the provider caches. Created once at startup.
#[derive(Clone)]
pub struct AuthShared {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub sessions: Arc<dyn SessionStore>,
    pub providers: Providers,
    /// States already redeemed (SHA-256 of the state), so a callback URL
    /// cannot be replayed even with a copy of the old state cookie.
    used_states: moka::future::Cache<[u8; 32], ()>,
    /// Per-session token refresh locks (single-flight, see `refresh`).
    refresh_flights: refresh::Flights,
}

impl AuthShared {
    pub fn new(
        settings: &Settings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, GatewayError> {
        let sessions = crate::session::open_store(&settings.session).map_err(|e| {
            tracing::error!(error = %e, "cannot open the session store");
            GatewayError::Internal
        })?;
        let providers = Providers::new(settings, metrics.clone()).map_err(|e| {
            tracing::error!(error = %e, "cannot build the identity provider clients");
            GatewayError::Internal
        })?;
        Ok(AuthShared {
            metrics,
            sessions,
            providers,
            used_states: moka::future::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(crate::session::state::STATE_LIFETIME)
                .build(),
            refresh_flights: refresh::new_flights(),
        })
    }
}

/// Authentication state built from one config generation.
#[derive(Clone)]
pub struct AuthState {
    pub settings: Arc<Settings>,
    pub shared: AuthShared,
    pub pages: Arc<Pages>,
    cookies: Arc<SessionCookies>,
    states: Arc<StateCookies>,
    /// Every `headers_extra` name of every route: stripped from every request.
    extra_headers: Arc<[HeaderName]>,
    /// Routes by host and path prefix (the pipeline's router too).
    pub router: Arc<crate::router::Router>,
    /// Every route host, for login target validation.
    route_hosts: Arc<HashSet<String>>,
    /// Group ids or names used by some `allow.groups` (for `groups_in_headers = "known"`).
    policy_groups: Arc<HashSet<String>>,
    /// Signs `X-Realmgate-Assertion`, when `server.assertion_key` is set.
    assertions: Option<Arc<assertion::Assertions>>,
}

impl AuthState {
    pub fn new(settings: Arc<Settings>, shared: &AuthShared) -> Self {
        shared.providers.update(&settings);
        let mut extra: Vec<HeaderName> = settings
            .routes
            .iter()
            .flat_map(|r| r.headers_extra.iter().map(|(h, _)| h.clone()))
            .collect();
        extra.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        extra.dedup();
        AuthState {
            pages: Arc::new(Pages::new(&settings.ui)),
            cookies: Arc::new(SessionCookies::new(&settings.session)),
            states: Arc::new(StateCookies::new(&settings.session)),
            extra_headers: extra.into(),
            router: Arc::new(crate::router::Router::new(&settings.routes)),
            route_hosts: Arc::new(
                settings
                    .routes
                    .iter()
                    .flat_map(|r| r.hosts.iter().cloned())
                    .collect(),
            ),
            policy_groups: Arc::new(
                settings
                    .routes
                    .iter()
                    // As written and without a `<connection>:` prefix.
                    .flat_map(|r| {
                        r.allow
                            .groups
                            .iter()
                            .cloned()
                            .chain(r.allow.group_rules.iter().map(|g| g.value.clone()))
                    })
                    .collect(),
            ),
            assertions: settings
                .server
                .assertion_key
                .as_ref()
                .map(|k| Arc::new(assertion::Assertions::new(k.clone()))),
            shared: shared.clone(),
            settings,
        }
    }

    fn connection(&self, name: &str) -> Option<&Arc<ConnectionSettings>> {
        self.settings.connection(name)
    }
}

/// What the pipeline does next with a request.
pub enum GateOutcome {
    /// A public path: forward without identity headers.
    Public,
    /// Authenticated by the session cookie and authorized: forward with
    /// these identity headers.
    Permitted(Permit, Injected),
    /// Authenticated by a bearer token (no session) and authorized: forward
    /// with these identity headers. A tunnel lives until the token expires;
    /// no session to watch.
    PermittedBearer(Permit, Injected),
}

/// True for paths realmgate answers itself on every route host.
pub fn is_auth_path(path: &str) -> bool {
    path == "/.auth" || path.starts_with("/.auth/")
}

/// True when a request's canonical target is realmgate's own, as forwarded
/// or as judged (`/.auth%2Fme`): such a request never reaches an upstream.
pub fn is_auth_target(target: &crate::pathnorm::CanonicalTarget<'_>) -> bool {
    is_auth_path(target.path()) || is_auth_path(target.judged())
}

/// The session id of the request's cookie. Only the cookie name of the
/// request's scheme counts: a plain-http `realmgate` cookie (which a network
/// attacker can plant) is ignored on HTTPS.
pub fn session_id(state: &AuthState, parts: &Parts, conn: &ConnInfo) -> Option<SessionId> {
    state
        .cookies
        .read_for(&parts.headers, is_https(state, parts, conn))
}

/// Strip identity headers and own cookies, then pass or authenticate a
/// request outside `/.auth/`. `parts.headers` must already be free of
/// hop-by-hop headers.
///
/// `target` is the request's canonical target (`parts.uri`'s path is its
/// forwarded form): `public` is judged on it.
pub async fn gate(
    state: &AuthState,
    route: &Arc<RouteSettings>,
    target: &crate::pathnorm::CanonicalTarget<'_>,
    parts: &mut Parts,
    conn: &ConnInfo,
) -> Result<GateOutcome, GatewayError> {
    crate::headers::identity::strip(&mut parts.headers, &state.extra_headers);
    // The session id (`session_id`), and realmgate's cookies removed.
    let https = is_https(state, parts, conn);
    let session_id = state.cookies.take_for(&mut parts.headers, https);
    if target.is_public(&route.public) {
        return Ok(GateOutcome::Public);
    }
    // An API route: a bearer token, when sent, is the only credential looked
    // at (an invalid one is refused even next to a valid session cookie).
    if !route.api_audiences.is_empty() {
        if let Some(token) = bearer::token(&parts.headers)?.map(str::to_string) {
            // Boxed: token validation may fetch keys (a large future);
            // every request's future would otherwise carry its size.
            let caller = Box::pin(bearer::authenticate(state, route, &token)).await?;
            let (permit, injected) =
                admit(state, route, parts, conn, caller.user, &caller.connection)?;
            return Ok(GateOutcome::PermittedBearer(permit, injected));
        }
    }
    let Some(id) = session_id else {
        return Err(GatewayError::NotSignedIn);
    };
    let user = lookup_session(state, &id)
        .await
        .ok_or(GatewayError::NotSignedIn)?;
    // Tokens about to expire are refreshed first (SPEC 5.2); a failed
    // refresh ends the session.
    let user = refresh::if_due(state, &id, user).await?;
    // Borrowed, not cloned: a clone would change the connection's shared
    // count on every request.
    let Some(connection) = state.connection(&user.connection) else {
        // The connection was removed from the config: the session is void.
        return Err(GatewayError::NotSignedIn);
    };
    let (permit, injected) = admit(state, route, parts, conn, user, connection)?;
    Ok(GateOutcome::Permitted(permit, injected))
}

/// Authorizes an authenticated `user` (session or bearer token) for `route`
/// and, when allowed, renders the route profile's identity headers (the
/// per-request assertion goes straight into `parts`).
fn admit(
    state: &AuthState,
    route: &Arc<RouteSettings>,
    parts: &mut Parts,
    conn: &ConnInfo,
    user: Arc<Session>,
    connection: &Arc<ConnectionSettings>,
) -> Result<(Permit, Injected), GatewayError> {
    match policy::authorize(route, Some(connection), user) {
        Ok(permit) => {
            // The origin is only needed (and only formatted) for an assertion.
            let assertion = wants_assertion(route)
                .then(|| {
                    let origin = request_origin(state, parts, conn);
                    signed_assertion(state, route, &permit, connection, &origin)
                })
                .flatten();
            let injected = crate::headers::identity::inject_cached(
                &mut parts.headers,
                &permit,
                route,
                connection,
                &state.policy_groups,
                assertion.as_deref(),
            );
            Ok((permit, injected))
        }
        Err(denied) => {
            tracing::info!(
                route.name = %route.name,
                user.id = %denied.user.user_id,
                reason = %denied.reason,
                "access denied"
            );
            Err(GatewayError::Denied(Box::new(denied)))
        }
    }
}

/// True when `route` sends a signed assertion (`jwt_assertion`, or the
/// `pomerium` profile).
fn wants_assertion(route: &RouteSettings) -> bool {
    route.jwt_assertion || route.headers == crate::config::HeaderProfile::Pomerium
}

/// The signed assertion for a permitted user, when the route sends one
/// (`jwt_assertion = true`, or the `pomerium` profile) and a key is configured.
fn signed_assertion(
    state: &AuthState,
    route: &RouteSettings,
    permit: &Permit,
    connection: &ConnectionSettings,
    origin: &str,
) -> Option<String> {
    if !wants_assertion(route) {
        return None;
    }
    state.assertions.as_ref()?.issue(
        permit.user(),
        &route.name,
        origin,
        connection,
        &state.policy_groups,
        now(),
    )
}

/// The session for `id`, if it exists and has not expired. A store failure
/// is an error (fail closed), not "signed out".
async fn load_session(
    state: &AuthState,
    id: &SessionId,
) -> Result<Option<Arc<Session>>, GatewayError> {
    state.shared.sessions.get(id).await.map_err(|e| {
        tracing::error!(error = %e, "session store failed");
        GatewayError::StoreUnavailable
    })
}

/// The session for a request being authenticated (`gate`, `/.auth/verify`).
/// A store that cannot answer (Redis down and the session not in this
/// replica's cache) means "not signed in": the request fails closed with
/// the sign-in redirect or a 401, and a new login then gets a clear 503
/// from the callback if the store is still down (SPEC 5.2, issue 6).
async fn lookup_session(state: &AuthState, id: &SessionId) -> Option<Arc<Session>> {
    let store = &state.shared.sessions;
    let found = match store.get_ready(id) {
        Some(ready) => ready,
        None => store.get(id).await,
    };
    match found {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "session store unavailable; treating the request as not signed in");
            None
        }
    }
}

/// Serves `/.auth/*`. Every response is `Cache-Control: no-store`.
pub async fn endpoint(
    state: &AuthState,
    route: &Arc<RouteSettings>,
    req: http::Request<hyper::body::Incoming>,
    conn: &ConnInfo,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    crate::headers::identity::strip(&mut parts.headers, &state.extra_headers);
    let ctx = Ctx {
        state,
        route,
        origin: request_origin(state, &parts, conn),
        https: is_https(state, &parts, conn),
    };
    let path = parts.uri.path().to_string();
    let rest = path.strip_prefix("/.auth").unwrap_or("");
    let result = match (&parts.method, rest) {
        (&Method::GET | &Method::HEAD, "/login") => login::page(&ctx, &parts).await,
        (&Method::POST, "/login") => match read_form(body).await {
            Ok(form) => login::submit(&ctx, &parts, form).await,
            Err(e) => Err(e),
        },
        (method, rest) if rest.starts_with("/login/") => {
            let tail = &rest["/login/".len()..];
            match tail.split_once('/') {
                None if *method == Method::GET || *method == Method::HEAD => {
                    login::start(&ctx, &parts, tail).await
                }
                Some((name, "callback")) if *method == Method::GET => {
                    let query = parts.uri.query().unwrap_or("").as_bytes().to_vec();
                    callback::finish(&ctx, &parts, name, &query).await
                }
                Some((name, "callback")) if *method == Method::POST => {
                    match read_form(body).await {
                        Ok(form) => callback::finish(&ctx, &parts, name, &form).await,
                        Err(e) => Err(e),
                    }
                }
                Some((_, "callback")) | None => Err(GatewayError::MethodNotAllowed),
                _ => Err(GatewayError::NotFound),
            }
        }
        (&Method::GET | &Method::HEAD, "/me") => account::me(&ctx, &parts).await,
        // Any method: Envoy ext_authz sends the original one; verify reads
        // no body and changes nothing.
        (_, "/verify") => verify::verify(&ctx, &parts, conn).await,
        (&Method::GET | &Method::HEAD, "/keys") => Ok(keys(state)),
        (&Method::GET | &Method::POST, "/logout") => account::logout(&ctx, &parts).await,
        (&Method::GET | &Method::HEAD, "/logout/done") => Ok(account::signed_out(&ctx)),
        (&Method::GET | &Method::HEAD, "/refresh") => refresh::endpoint(&ctx, &parts).await,
        (&Method::POST, "/backchannel-logout") => match read_form(body).await {
            Ok(form) => Ok(backchannel::logout(&ctx, &form).await),
            Err(e) => Err(e),
        },
        (
            _,
            "/login"
            | "/me"
            | "/logout"
            | "/logout/done"
            | "/refresh"
            | "/backchannel-logout"
            | "/keys",
        ) => Err(GatewayError::MethodNotAllowed),
        _ => Err(GatewayError::NotFound),
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => error_page(state, &e, &parts),
    };
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /.auth/keys`: the JWKS that verifies `X-Realmgate-Assertion` (the
/// public key only; an empty set when no `server.assertion_key` is set).
fn keys(state: &AuthState) -> Response<Body> {
    let jwks = match &state.settings.server.assertion_key {
        Some(key) => key.jwks(),
        None => serde_json::json!({ "keys": [] }),
    };
    let mut resp = json(StatusCode::OK, &jwks);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    resp
}

/// Per-request context of an `/.auth/` endpoint.
struct Ctx<'a> {
    state: &'a AuthState,
    route: &'a Arc<RouteSettings>,
    /// `https://hr.contoso.com` as the browser sees this gateway.
    origin: String,
    https: bool,
}

impl Ctx<'_> {
    /// The connections this route lets sign in, in config order.
    fn allowed_connections(&self) -> Vec<&Arc<ConnectionSettings>> {
        self.state
            .settings
            .connections
            .iter()
            .filter(|c| self.route.connections.contains(&c.name))
            .collect()
    }

    fn redirect_uri(&self, connection: &ConnectionSettings) -> String {
        format!("{}{}", self.origin, connection.callback_path())
    }

    /// A validated login/logout target (SPEC 4); anything unsafe becomes `/`.
    fn safe_target(&self, parts: &Parts, raw: Option<&str>) -> String {
        match raw {
            Some(raw) => {
                let scheme = if self.https {
                    crate::redirect::Scheme::Https
                } else {
                    crate::redirect::Scheme::Http
                };
                crate::redirect::safe_target(raw, &host_of(parts), scheme, &self.state.route_hosts)
            }
            None => "/".to_string(),
        }
    }
}

/// See [`crate::peer::is_https`].
fn is_https(state: &AuthState, parts: &Parts, conn: &ConnInfo) -> bool {
    crate::peer::is_https(&state.settings.server, parts, conn)
}

/// See [`crate::peer::request_origin`].
fn request_origin(state: &AuthState, parts: &Parts, conn: &ConnInfo) -> String {
    crate::peer::request_origin(&state.settings.server, parts, conn)
}

use crate::peer::host_of;

/// Largest form body accepted by `/.auth/` endpoints (a form_post callback
/// carries an authorization code and state; an ID token at most).
const MAX_FORM_BYTES: usize = 64 * 1024;

async fn read_form(body: hyper::body::Incoming) -> Result<Vec<u8>, GatewayError> {
    let limited = http_body_util::Limited::new(body, MAX_FORM_BYTES);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes().to_vec()),
        Err(_) => Err(GatewayError::BadRequest(
            "The form is too large or was not received completely.",
        )),
    }
}

/// Parses `application/x-www-form-urlencoded` (query or body) into pairs.
pub(crate) fn form_pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

pub(crate) fn form_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    // A duplicated parameter is ambiguous: treat it as absent.
    let mut found = pairs.iter().filter(|(k, _)| k == key);
    let first = found.next()?;
    if found.next().is_some() {
        return None;
    }
    Some(first.1.as_str())
}

/// 302 to `location` with `no-store`, and extra `Set-Cookie`s.
fn redirect(
    location: &str,
    cookies: impl IntoIterator<Item = HeaderValue>,
) -> Result<Response<Body>, GatewayError> {
    let loc = HeaderValue::from_str(location).map_err(|_| GatewayError::Internal)?;
    let mut resp = Response::builder()
        .status(StatusCode::FOUND)
        .header(LOCATION, loc)
        .body(respond::empty())
        .map_err(|_| GatewayError::Internal)?;
    for c in cookies {
        resp.headers_mut().append(SET_COOKIE, c);
    }
    Ok(resp)
}

fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut resp = Response::new(respond::full(Bytes::from(page)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut().insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::ui::CONTENT_SECURITY_POLICY),
    );
    resp
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(respond::full(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error_page(state: &AuthState, err: &GatewayError, parts: &Parts) -> Response<Body> {
    respond::error_response(
        err,
        &respond::Negotiation::of(&parts.headers),
        &parts.method,
        &parts.uri,
        Some(&state.pages),
    )
}

/// Unix time in seconds.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
