//! The one place where errors become responses (fixed texts, HTML or JSON by
//! `Accept`); details go to logs only.
//!
//! Every generated response carries `Cache-Control: no-store`; HTML ones also
//! carry the UI's Content-Security-Policy and `X-Content-Type-Options:
//! nosniff`. Texts are fixed per error kind: nothing the client sent is echoed
//! back, except the original path+query percent-encoded into the login
//! redirect's `post_login_redirect_uri` (which the login endpoint validates).
//! The status of every variant is pinned by `respond/tests.rs`.

use bytes::Bytes;
use http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub use crate::ui::escape_html;

/// The body type of every response realmgate sends (generated or proxied).
pub type Body = BoxBody<Bytes, BoxError>;

/// A body's error: hyper's, or realmgate's own upstream client's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Where browsers are sent to sign in.
pub const LOGIN_PATH: &str = "/.auth/login";
/// Where the denied page offers to sign out.
pub const LOGOUT_PATH: &str = "/.auth/logout";

/// Everything that stops a request from being forwarded.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No session (or bearer token): 302 to the login page for browser
    /// navigation, else 401 JSON with `WWW-Authenticate: Bearer` (SPEC 5.1).
    #[error("not signed in")]
    NotSignedIn,
    /// A bearer token on an `api_audiences` route failed a check (SPEC 5.9):
    /// 401 JSON naming the check, `WWW-Authenticate: Bearer
    /// error="invalid_token"`. Never a redirect: the client sent a token.
    /// The reason is one of the verifier's fixed texts, never the token.
    #[error("invalid bearer token: {0}")]
    InvalidToken(String),
    /// The `Authorization` header cannot be read unambiguously (sent twice):
    /// 400 JSON, `WWW-Authenticate: Bearer error="invalid_request"` (RFC 6750 3.1).
    #[error("invalid bearer request: {0}")]
    InvalidBearerRequest(&'static str),
    /// 404 for an unknown `/.auth/` endpoint, or a path no route's prefix covers.
    #[error("not found")]
    NotFound,
    /// Signed in but the route's policy says no: 403 (page says who and why, offers sign-out).
    #[error("access denied")]
    Denied(Box<crate::policy::Denied>),
    /// The session store failed: fail closed with 503.
    #[error("session store unavailable")]
    StoreUnavailable,
    /// The identity provider of this connection cannot be reached: 503 for new logins.
    #[error("identity provider unavailable")]
    ProviderUnavailable,
    /// A `/.auth/` endpoint called with the wrong method: 405, with the
    /// `Allow` header these methods (RFC 9110 15.5.6: it must be sent).
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// A bug or an unexpected failure: 500 with a fixed text.
    #[error("internal error")]
    Internal,
    /// The Host is not one of any route's hosts: 421 Misdirected Request.
    ///
    /// 421 rather than 404 because the request reached a server that is not
    /// configured to answer for that authority: HTTP/2 clients that coalesced
    /// connections retry on a fresh one, and operators see at a glance that
    /// the `hosts` list (not the app) is missing something.
    #[error("unknown host")]
    UnknownHost,
    /// A malformed or ambiguous request (e.g. both Content-Length and
    /// Transfer-Encoding): 400. The text is a fixed description of the problem.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request's headers exceed `server.max_header_bytes`: 431.
    #[error("request headers too large")]
    HeaderTooLarge,
    /// The upstream refused the connection, reset it or sent garbage: 502.
    #[error("upstream unavailable")]
    UpstreamUnavailable,
    /// The upstream did not connect or answer with headers in time: 504.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// `/.auth/verify` cannot judge what a trusted proxy forwarded: 400, or
    /// 403 when no route serves it. Always JSON (the caller is a proxy).
    #[error("forwarded request cannot be judged: {}", .0.reason())]
    Unjudgeable(Unjudgeable),
}

/// Why `/.auth/verify` cannot judge a trusted proxy's forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unjudgeable {
    /// `X-Forwarded-Uri` / `X-Original-URI` repeated, too long, not visible
    /// ASCII, or the two name different paths.
    UnreadableUri,
    /// The forwarded path is not its own canonical form (dot segments, or a
    /// path `pathnorm` refuses): the fixed text says which.
    NonCanonicalPath(&'static str),
    /// The forwarded path's readings select different routes.
    AmbiguousPath,
    /// X-Forwarded-Host names no route host, or no prefix covers the path.
    NoRoute,
    /// The forwarded host or URI came from a peer not in `trusted_proxies`
    /// and names another route than the one the request is judged by.
    UntrustedForward,
    /// `/oauth2/auth`'s `allowed_groups`, `allowed_emails` or
    /// `allowed_email_domains` has an entry `[route.allow]` would refuse:
    /// 403, as the restriction cannot be applied (`endpoints::oauth2`).
    UnreadableRestriction,
}

impl Unjudgeable {
    /// The `reason` of the JSON answer (see docs/operations.md, "Error reasons").
    pub fn reason(self) -> &'static str {
        match self {
            Unjudgeable::UnreadableUri => "unreadable_uri",
            Unjudgeable::NonCanonicalPath(_) => "non_canonical_path",
            Unjudgeable::AmbiguousPath => "ambiguous_path",
            Unjudgeable::NoRoute => "no_route",
            Unjudgeable::UntrustedForward => "untrusted_forward",
            Unjudgeable::UnreadableRestriction => "unreadable_restriction",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Unjudgeable::UnreadableUri => "The forwarded URI cannot be judged: X-Forwarded-Uri or X-Original-URI is repeated, longer than 8192 bytes or not visible ASCII, or the two name different paths; or X-Original-URL is not an absolute http(s) URL of this route's host; or X-Forwarded-Host is repeated or lists different hosts. The proxy in front should send one of each, set to the request as received (the URI percent-encoded), and drop the client's copies.",
            Unjudgeable::NonCanonicalPath(text) => text,
            Unjudgeable::AmbiguousPath => "The forwarded path selects different routes depending on how a server reads it (encoded slashes, ';' parameters, '//', look-alike characters, or letter case, trailing dots and spaces or cookieless segments that some apps ignore; a PHP front controller's /index.php/..., a format suffix such as /admin.json, a Next.js /_next/data/... path). The proxy in front should refuse it or send the path exactly as the route's prefix spells it.",
            Unjudgeable::NoRoute => "No route serves the forwarded host and path. Add the host (and a path_prefix covering the path) to a route.",
            Unjudgeable::UntrustedForward => "X-Forwarded-Uri, X-Original-URI or X-Forwarded-Host came from a peer that is not in server.trusted_proxies, so it cannot decide the route, and it names another route than the one this request would be judged by. Add the address of the proxy in front to server.trusted_proxies.",
            Unjudgeable::UnreadableRestriction => "The allowed_groups, allowed_emails or allowed_email_domains of this /oauth2/auth URL has an entry that is not a group, a plain email address or a domain as [route.allow] takes them, so the restriction cannot be applied. Fix the auth URL of the proxy in front, or move the restriction to the route's [route.allow].",
        }
    }
}

impl GatewayError {
    /// The status code of the response for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            // The 302 for browsers is decided in `error_response`; this is the API answer.
            GatewayError::NotSignedIn => StatusCode::UNAUTHORIZED,
            GatewayError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            GatewayError::InvalidBearerRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::Denied(_) => StatusCode::FORBIDDEN,
            GatewayError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::UnknownHost => StatusCode::MISDIRECTED_REQUEST,
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Unjudgeable(
                Unjudgeable::NoRoute | Unjudgeable::UnreadableRestriction,
            ) => StatusCode::FORBIDDEN,
            GatewayError::Unjudgeable(
                Unjudgeable::UnreadableUri
                | Unjudgeable::NonCanonicalPath(_)
                | Unjudgeable::AmbiguousPath
                | Unjudgeable::UntrustedForward,
            ) => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable machine-readable code for the JSON body and logs.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::NotSignedIn => "unauthorized",
            GatewayError::InvalidToken(_) => "invalid_token",
            GatewayError::InvalidBearerRequest(_) => "invalid_request",
            GatewayError::NotFound => "not_found",
            GatewayError::MethodNotAllowed(_) => "method_not_allowed",
            GatewayError::Denied(_) => "forbidden",
            GatewayError::StoreUnavailable => "session_store_unavailable",
            GatewayError::ProviderUnavailable => "identity_provider_unavailable",
            GatewayError::Internal => "internal_error",
            GatewayError::UnknownHost => "unknown_host",
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::HeaderTooLarge => "request_header_fields_too_large",
            GatewayError::UpstreamUnavailable => "upstream_unavailable",
            GatewayError::UpstreamTimeout => "upstream_timeout",
            GatewayError::Unjudgeable(
                Unjudgeable::NoRoute | Unjudgeable::UnreadableRestriction,
            ) => "forbidden",
            GatewayError::Unjudgeable(
                Unjudgeable::UnreadableUri
                | Unjudgeable::NonCanonicalPath(_)
                | Unjudgeable::AmbiguousPath
                | Unjudgeable::UntrustedForward,
            ) => "bad_request",
        }
    }

    /// The `reason` of the JSON answer, for the errors that have one (see
    /// docs/operations.md, "Error reasons"): the denial's rule, the
    /// refused token's check, the unjudgeable request's fault.
    pub fn reason(&self) -> Option<&str> {
        match self {
            GatewayError::Denied(d) => Some(d.reason.label()),
            GatewayError::InvalidToken(why) => Some(why),
            GatewayError::InvalidBearerRequest(why) => Some(why),
            GatewayError::Unjudgeable(why) => Some(why.reason()),
            GatewayError::NotSignedIn
            | GatewayError::NotFound
            | GatewayError::StoreUnavailable
            | GatewayError::ProviderUnavailable
            | GatewayError::MethodNotAllowed(_)
            | GatewayError::Internal
            | GatewayError::UnknownHost
            | GatewayError::BadRequest(_)
            | GatewayError::HeaderTooLarge
            | GatewayError::UpstreamUnavailable
            | GatewayError::UpstreamTimeout => None,
        }
    }

    /// (title, message): fixed, user-facing texts that say what is wrong and what to do.
    fn texts(&self) -> (&'static str, &'static str) {
        match self {
            GatewayError::NotSignedIn => (
                "Sign-in required",
                "Sign in at /.auth/login, or send an access token as Authorization: Bearer.",
            ),
            GatewayError::InvalidToken(_) => (
                "Invalid access token",
                "The bearer token was refused (see reason). Get a new access token for this API from your identity provider and send it as Authorization: Bearer.",
            ),
            GatewayError::InvalidBearerRequest(why) => ("Bad request", why),
            GatewayError::NotFound => (
                "Not found",
                "There is nothing at this address. Check the link, or go back to the start page.",
            ),
            GatewayError::MethodNotAllowed(_) => (
                "Method not allowed",
                "This address does not accept that kind of request. Open it in the browser instead.",
            ),
            GatewayError::Denied(d) => ("Access denied", d.reason.text()),
            GatewayError::StoreUnavailable => (
                "Temporarily unavailable",
                "Sessions cannot be checked right now. Try again in a minute; if it persists, tell the site's operators.",
            ),
            GatewayError::ProviderUnavailable => (
                "Sign-in temporarily unavailable",
                "The identity provider cannot be reached right now. Try again in a minute; if it persists, tell the site's operators.",
            ),
            GatewayError::Internal => (
                "Something went wrong",
                "The gateway hit an unexpected error. Try again; if it persists, tell the site's operators.",
            ),
            GatewayError::UnknownHost => (
                "Unknown site",
                "This gateway does not serve this host name. Check the address you opened.",
            ),
            GatewayError::BadRequest(why) => ("Bad request", why),
            GatewayError::HeaderTooLarge => (
                "Request headers too large",
                "Your request's headers are too large. Clear this site's cookies and try again.",
            ),
            GatewayError::UpstreamUnavailable => (
                "Application unavailable",
                "The application behind this gateway cannot be reached. Try again in a minute; if it persists, tell the site's operators.",
            ),
            GatewayError::UpstreamTimeout => (
                "Application timed out",
                "The application behind this gateway did not answer in time. Try again later; if it persists, tell the site's operators.",
            ),
            GatewayError::Unjudgeable(why) => ("Cannot judge the forwarded request", why.text()),
        }
    }
}

/// The request headers that choose between an HTML page and JSON, kept
/// apart from the request (which moves on to the upstream). Holds
/// reference-counted header values: no copy of the bytes, and no allocation
/// for a request without `Accept`.
#[derive(Debug, Clone, Default)]
pub struct Negotiation {
    xhr: bool,
    accept: Vec<HeaderValue>,
}

impl Negotiation {
    pub fn of(headers: &HeaderMap) -> Negotiation {
        Negotiation {
            xhr: headers.contains_key("x-requested-with"),
            accept: headers
                .get_all(http::header::ACCEPT)
                .iter()
                .cloned()
                .collect(),
        }
    }

    /// See [`prefers_html`].
    pub fn prefers_html(&self) -> bool {
        !self.xhr && html_over_json(self.accept.iter())
    }
}

/// True when the client prefers HTML (browser navigation) over JSON.
///
/// `X-Requested-With` (XHR) means not HTML. Otherwise `text/html` must have a
/// higher quality than `application/json` (absent types count as q=0;
/// wildcards count for neither, so `*/*` alone is not a browser).
pub fn prefers_html(headers: &HeaderMap) -> bool {
    !headers.contains_key("x-requested-with")
        && html_over_json(headers.get_all(http::header::ACCEPT).iter())
}

fn html_over_json<'a>(accept: impl Iterator<Item = &'a HeaderValue>) -> bool {
    let mut html = 0.0f32;
    let mut json = 0.0f32;
    for value in accept {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    (k.trim().eq_ignore_ascii_case("q")).then(|| v.trim().parse::<f32>().ok())?
                })
                .next()
                .unwrap_or(1.0)
                .clamp(0.0, 1.0);
            match media.as_str() {
                "text/html" | "application/xhtml+xml" => html = html.max(q),
                "application/json" => json = json.max(q),
                _ => {}
            }
        }
    }
    html > 0.0 && html > json
}

/// The response for `err`: HTML (rendered with `pages` when given) or JSON by `Accept`.
pub fn error_response(
    err: &GatewayError,
    negotiation: &Negotiation,
    method: &Method,
    uri: &Uri,
    pages: Option<&crate::ui::Pages>,
) -> Response<Body> {
    let html = negotiation.prefers_html();
    if let GatewayError::InvalidToken(reason) = err {
        // Always JSON: whoever sent a bearer token is a program.
        let mut resp = json_response(err, err.reason());
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, bearer_challenge("invalid_token", reason));
        return resp;
    }
    if let GatewayError::InvalidBearerRequest(why) = err {
        let mut resp = json_response(err, err.reason());
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, bearer_challenge("invalid_request", why));
        return resp;
    }
    if let GatewayError::NotSignedIn = err {
        if html && (method == Method::GET || method == Method::HEAD) {
            return login_redirect(uri);
        }
        let mut resp = json_response(err, None);
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    if html && !matches!(err, GatewayError::Unjudgeable(_)) {
        with_retry_after(err, html_error(err, pages))
    } else {
        json_error(err)
    }
}

/// The JSON answer for `err`, whatever the client accepts (`/.auth/verify`
/// answers proxies): `error`, `message`, and `reason` where the error has one.
pub fn json_error(err: &GatewayError) -> Response<Body> {
    with_retry_after(err, json_response(err, err.reason()))
}

fn with_retry_after(err: &GatewayError, mut resp: Response<Body>) -> Response<Body> {
    if err.status() == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("30"));
    }
    if let GatewayError::MethodNotAllowed(allow) = err {
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

/// On every 401 of `/.auth/verify`: the login URL for this request, for nginx's `error_page`.
pub const X_REALMGATE_LOGIN_URL: http::header::HeaderName =
    http::header::HeaderName::from_static("x-realmgate-login-url");

/// `/.auth/verify` without a session: 401 JSON naming `login` (the login
/// URL with the validated target), in the body and in
/// `X-Realmgate-Login-Url`, with `WWW-Authenticate: Bearer`.
pub fn forward_auth_sign_in(login: &str) -> Response<Body> {
    let body = serde_json::json!({
        "error": "unauthorized",
        "message": "No valid session. Sign in at /.auth/login.",
        "login_url": login,
    });
    let mut resp = json_body(StatusCode::UNAUTHORIZED, &body);
    let h = resp.headers_mut();
    h.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    // byte_serialize output and LOGIN_PATH are visible ASCII.
    if let Ok(v) = HeaderValue::from_str(login) {
        h.insert(X_REALMGATE_LOGIN_URL, v);
    }
    resp
}

/// 302 to the login page with the original path+query as the target.
fn login_redirect(uri: &Uri) -> Response<Body> {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    let location = format!("{LOGIN_PATH}?post_login_redirect_uri={encoded}");
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::FOUND;
    // byte_serialize output is ASCII alphanumerics, `%XX`, `+`, `*-._`: always a valid value.
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    no_store(resp)
}

/// `Bearer error="…", error_description="…"` (RFC 6750 3). The description
/// keeps only the characters RFC 6750 allows there (no `"` or `\`).
fn bearer_challenge(error: &'static str, description: &str) -> HeaderValue {
    let description: String = description
        .chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .take(200)
        .collect();
    HeaderValue::from_str(&format!(
        "Bearer error=\"{error}\", error_description=\"{description}\""
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""))
}

fn json_response(err: &GatewayError, reason: Option<&str>) -> Response<Body> {
    let (_, message) = err.texts();
    let mut body = serde_json::json!({ "error": err.code(), "message": message });
    if let Some(reason) = reason {
        body["reason"] = serde_json::Value::from(reason);
    }
    json_body(err.status(), &body)
}

/// Every JSON error answer of the gateway.
fn json_body(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    json_error_bytes(status, body).map(full)
}

/// Every JSON error answer, for a listener with its own body type too (the
/// admin listener): `application/json; charset=utf-8`, nosniff, no-store.
pub fn json_error_bytes(status: StatusCode, body: &serde_json::Value) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn html_error(err: &GatewayError, pages: Option<&crate::ui::Pages>) -> Response<Body> {
    let status = err.status();
    let (title, fixed) = err.texts();
    let (message, action) = match err {
        GatewayError::Denied(d) => (
            match who(&d.user) {
                Some(name) => format!("You are signed in as {name}. {fixed}"),
                None => format!("You are signed in. {fixed}"),
            },
            Some(("Sign out", LOGOUT_PATH)),
        ),
        _ => (fixed.to_string(), None),
    };
    let body = match pages {
        Some(p) => p.error(status.as_u16(), title, &message, action),
        None => builtin_page(status, title, &message, action),
    };
    html_response(status, body)
}

/// How realmgate's pages (the denied page, the signed-in page of
/// `/.auth/login`) name the user: the display `name`, else the account name
/// they signed in with (`preferred_username`), else None (the page then
/// names nobody). A value
/// with an `@` is passed over: SPEC 6 allows no email on error pages, and a
/// UPN (Entra's `preferred_username`), a mail-shaped name or a user id
/// (`<connection>:<sub>`, where `sub` may be an email) reads as one. The
/// `email` claim itself is never used.
pub(crate) fn who(user: &crate::session::model::Session) -> Option<&str> {
    [user.name.as_deref(), user.preferred_username.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|w| !w.is_empty() && !w.contains('@'))
}

/// A page of a `/.auth/*` endpoint: the HTML page headers of
/// [`html_response`] (CSP, nosniff, no-store).
pub fn html(status: StatusCode, page: String) -> Response<Body> {
    html_response(status, page)
}

/// A JSON answer of a `/.auth/*` endpoint (not an error: errors are
/// [`error_response`]): `application/json`, nosniff, no-store.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    no_store(resp)
}

/// 302 to `location` with `no-store`, and extra `Set-Cookie`s.
pub fn redirect(
    location: &str,
    cookies: impl IntoIterator<Item = HeaderValue>,
) -> Result<Response<Body>, GatewayError> {
    let loc = HeaderValue::from_str(location).map_err(|_| GatewayError::Internal)?;
    let mut resp = no_store(Response::new(empty()));
    *resp.status_mut() = StatusCode::FOUND;
    resp.headers_mut().insert(LOCATION, loc);
    for c in cookies {
        resp.headers_mut().append(http::header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// An HTML response with the page headers (CSP, nosniff, no-store).
pub fn html_response(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::ui::CONTENT_SECURITY_POLICY),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    no_store(resp)
}

fn no_store(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The small page used when no branded `Pages` are available. Every dynamic
/// string is HTML-escaped.
pub fn builtin_page(
    status: StatusCode,
    title: &str,
    message: &str,
    action: Option<(&str, &str)>,
) -> String {
    let action = action
        .map(|(label, href)| {
            format!(
                "<p><a href=\"{}\">{}</a></p>",
                escape_html(href),
                escape_html(label)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
h1{{font-size:1.4rem}}small{{color:#666}}</style></head>\
<body><h1>{title}</h1><p>{message}</p>{action}<p><small>{code}</small></p></body></html>",
        title = escape_html(title),
        message = escape_html(message),
        code = status.as_u16(),
    )
}

#[cfg(test)]
mod tests;
