//! Who may use the admin listener (SPEC 6.1), decided before any route runs.
//!
//! The admin port is usually reachable only from a private network, but
//! "private" includes the browsers of the people on it. Three ways in are
//! closed here:
//!
//! - **Token.** With `[admin] token` / `token_file`, everything except
//!   `/healthz` and `/readyz` needs `Authorization: Bearer <token>`
//!   (compared in constant time, over SHA-256 digests so not even the
//!   length leaks). A browser never adds that header on its own, so no web
//!   page can use the API, whatever the Host.
//! - **DNS rebinding.** Without a token, a page on `evil.example` can make
//!   its own name resolve to the admin address and then read `/metrics` as
//!   "same origin". Such a request always carries the attacker's name in
//!   `Host`, so only a Host that is an IP address, `localhost` or a name in
//!   `[admin] hosts` is served (421 otherwise: the request was meant for
//!   another site).
//! - **Cross-site requests that change state.** Any method but GET/HEAD
//!   needs `Content-Type: application/json` (a page can send `text/plain` or
//!   a form without a CORS preflight; JSON needs one, and the admin listener
//!   never answers it), is refused with an `Origin` that is not the admin
//!   listener's own (`null` included), and with a `Sec-Fetch-Site` other than
//!   `same-origin` or `none`.
//!
//! Health endpoints stay open: load balancers and kubelets probe them by IP
//! or by any name, without credentials, and they reveal nothing.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AdminSettings, Secret};

/// Why a request was refused; turned into a JSON answer by [`Refusal::status`]
/// and [`Refusal::message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Authorization: Bearer` header (or two of them).
    MissingToken,
    /// A bearer token that is not the configured one.
    WrongToken,
    /// Without a token: a Host that is not an IP, `localhost` or in `[admin] hosts`.
    Host,
    /// A state-changing request from another site (`Origin`, `Sec-Fetch-Site`).
    CrossSite,
    /// A state-changing request whose body is not declared as JSON.
    NotJson,
}

impl Refusal {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Refusal::MissingToken | Refusal::WrongToken => StatusCode::UNAUTHORIZED,
            Refusal::Host => StatusCode::MISDIRECTED_REQUEST,
            Refusal::CrossSite => StatusCode::FORBIDDEN,
            Refusal::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// A short machine-readable code for the JSON `error` field.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Refusal::MissingToken => "unauthorized",
            Refusal::WrongToken => "invalid_token",
            Refusal::Host => "misdirected_request",
            Refusal::CrossSite => "cross_site_request",
            Refusal::NotJson => "unsupported_media_type",
        }
    }

    /// What was wrong and what to do. Never echoes a header value.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::MissingToken => {
                "this admin endpoint needs the header `Authorization: Bearer <token>` with the token of [admin] token_file"
            }
            Refusal::WrongToken => {
                "the bearer token is not the one in [admin] token_file; send `Authorization: Bearer <token>` with that token"
            }
            Refusal::Host => {
                "this Host is not an admin host: without [admin] token_file, /metrics and /sessions/* answer only a Host that is an IP address, localhost or a name listed in [admin] hosts"
            }
            Refusal::CrossSite => {
                "a request that changes state is refused when it comes from a web page of another origin (Origin or Sec-Fetch-Site); send it from a program, without an Origin header"
            }
            Refusal::NotJson => {
                "the body must be JSON: send `Content-Type: application/json`"
            }
        }
    }

    /// The `WWW-Authenticate` value a 401 carries (RFC 6750).
    pub(crate) fn www_authenticate(self) -> Option<HeaderValue> {
        match self {
            Refusal::MissingToken => {
                Some(HeaderValue::from_static("Bearer realm=\"realmgate-admin\""))
            }
            Refusal::WrongToken => Some(HeaderValue::from_static(
                "Bearer realm=\"realmgate-admin\", error=\"invalid_token\"",
            )),
            _ => None,
        }
    }
}

/// True for the endpoints every caller may reach (probes).
pub(crate) fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Checks a request to any admin path except the open ones: the token (or,
/// without one, the Host), then, for a state-changing method, the site it
/// comes from and its content type.
pub(crate) fn check(
    admin: &AdminSettings,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let host = request_host(uri, headers);
    match &admin.token {
        Some(token) => bearer(token, headers)?,
        None => {
            if !host.as_deref().is_some_and(|h| host_allowed(admin, h)) {
                return Err(Refusal::Host);
            }
        }
    }
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    if cross_site(headers, host.as_deref()) {
        return Err(Refusal::CrossSite);
    }
    if !is_json(headers) {
        return Err(Refusal::NotJson);
    }
    Ok(())
}

/// The authority the client addressed: the request target's (absolute form)
/// or the single `Host` header; `None` when missing, repeated, not visible
/// ASCII, or when the two disagree.
fn request_host(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let mut all = headers.get_all(header::HOST).iter();
    let header = match (all.next(), all.next()) {
        (Some(h), None) => Some(h.to_str().ok()?),
        (None, _) => None,
        (Some(_), Some(_)) => return None,
    };
    match (uri.authority().map(|a| a.as_str()), header) {
        (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h.trim()) => None,
        (Some(a), _) => Some(a.to_string()),
        (None, Some(h)) => Some(h.trim().to_string()),
        (None, None) => None,
    }
}

/// An IP address (a DNS rebinding attack needs a name), `localhost`, or a
/// name the operator listed. The port does not matter.
fn host_allowed(admin: &AdminSettings, host: &str) -> bool {
    let Some(name) = crate::router::normalize_host(host) else {
        return false;
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || admin.hosts.iter().any(|h| *h == name)
}

/// `Authorization: Bearer <token>`: the scheme in any case, one or more
/// spaces before the token (RFC 9110 `1*SP`), nothing else.
fn bearer(expected: &Secret, headers: &HeaderMap) -> Result<(), Refusal> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (all.next(), all.next()) {
        (Some(v), None) => v.as_bytes(),
        // Two Authorization headers: which one would another reader take?
        _ => return Err(Refusal::MissingToken),
    };
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        return Err(Refusal::MissingToken);
    };
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(Refusal::MissingToken);
    }
    let start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    let end = rest
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    let given = rest.get(start..end).unwrap_or_default();
    // Digests first: equal length, so the comparison's time says nothing
    // about the token, not even its length.
    let a = Sha256::digest(given);
    let b = Sha256::digest(expected.expose());
    if bool::from(a.ct_eq(&b)) && !given.is_empty() {
        Ok(())
    } else {
        Err(Refusal::WrongToken)
    }
}

/// True when a browser says the request comes from another site: a
/// `Sec-Fetch-Site` other than `same-origin` or `none` (typed by the user),
/// or an `Origin` that is not `http://<Host>` (the admin listener speaks
/// plain HTTP), `null` included. Programs send neither header.
fn cross_site(headers: &HeaderMap, host: Option<&str>) -> bool {
    let mut sites = headers.get_all("sec-fetch-site").iter();
    match (sites.next(), sites.next()) {
        (None, _) => {}
        (Some(v), None) if v == "same-origin" || v == "none" => {}
        _ => return true,
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (None, _) => false,
        (Some(origin), None) => {
            let Some(host) = host else { return true };
            let Ok(origin) = origin.to_str() else {
                return true;
            };
            !origin
                .strip_prefix("http://")
                .is_some_and(|h| h.eq_ignore_ascii_case(host))
        }
        (Some(_), Some(_)) => true,
    }
}

/// `Content-Type: application/json`, parameters (`; charset=utf-8`) allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let mut all = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests;
