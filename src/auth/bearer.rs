//! Bearer access tokens on routes with `api_audiences` (SPEC 5.9).
//!
//! A request carrying `Authorization: Bearer <jwt>` on such a route is
//! authenticated by the token alone: no session is read or created, no cookie
//! is set. The token is verified by one of the connections the route allows
//! (`Provider::verify_access_token`: signature against that connection's
//! JWKS, algorithm allow-list, `iss`, `aud` in `api_audiences`, `exp`/`nbf`,
//! `tid` allow-list, access token rather than ID token, Entra v1.0/v2.0
//! format). The verified claims become a [`Session`] value that lives for
//! this request only, so the route's policy and identity headers treat an API
//! caller exactly like a signed-in browser.
//!
//! Which connection verifies: the token's `iss` is read *before* the
//! signature is checked, only to pick among the route's connections (a
//! connection whose issuer cannot match is not asked, so a foreign token
//! does not make every provider refresh its JWKS). Every check, `iss`
//! included, is then made by the chosen connection on the verified token.
//!
//! Fail closed: an `Authorization: Bearer` that fails any check is a 401,
//! even if the request also has a valid session cookie; two `Authorization`
//! headers are a 400 (which one would the app read?).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::HeaderMap;
use serde_json::{Map, Value};

use super::AuthState;
use crate::config::{ConnectionSettings, RouteSettings};
use crate::oidc::{OidcError, VerifiedAccessToken};
use crate::respond::GatewayError;
use crate::session::model::{Session, SessionTerms};

/// A caller authenticated by a bearer token, for this request only.
pub(crate) struct BearerUser {
    pub user: Arc<Session>,
    pub connection: Arc<ConnectionSettings>,
}

/// The bearer token of the request, if it sends one. Another scheme
/// (`Basic`, ...) is not ours to judge and reads as no token.
pub(crate) fn token(headers: &HeaderMap) -> Result<Option<&str>, GatewayError> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(GatewayError::InvalidBearerRequest(
            "The request has several Authorization headers. Send exactly one: Authorization: Bearer <access token>.",
        ));
    }
    // HTTP/2 keeps a field value's leading whitespace (HTTP/1.1's parser
    // drops it), and an HTTP/1.1 upstream would drop it on the way to the
    // app: ` Bearer x` must be judged as `Bearer x`.
    let bytes = value.as_bytes().trim_ascii_start();
    // The scheme ends at the first space *or tab*: apps that split the
    // value on any whitespace read `Bearer<TAB>x` as a bearer token, so it
    // must be judged as one here, never passed on as "another scheme".
    let (scheme, rest) = match bytes.iter().position(|b| matches!(b, b' ' | b'\t')) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // Not `Bearer <token>`, but some app library may still find a
        // bearer credential in it: go-chi's jwtauth takes whatever follows
        // the first six bytes (`Bearer:<jwt>`, `Bearer\xa0<jwt>`), and
        // flask-jwt-extended the comma-separated part that starts with it
        // (`Basic x, Bearer <jwt>`). Such a value is judged, and refused.
        if mentions_bearer(value.as_bytes()) {
            return Err(GatewayError::InvalidToken(
                "malformed bearer credential (expected Authorization: Bearer <JWT>, alone)".into(),
            ));
        }
        return Ok(None);
    }
    // RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let token = std::str::from_utf8(rest)
        .map(|t| t.trim_matches([' ', '\t']))
        .unwrap_or("");
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(GatewayError::InvalidToken(
            "malformed bearer token (expected Authorization: Bearer <JWT>)".into(),
        ));
    }
    Ok(Some(token))
}

/// True when a comma-separated part of `value`, without the whitespace an
/// app may strip (ASCII, and Latin-1's NBSP and NEL, as Python servers
/// decode header bytes), starts with `bearer` in any case.
fn mentions_bearer(value: &[u8]) -> bool {
    let blank = |b: &u8| b.is_ascii_whitespace() || *b == 0xa0 || *b == 0x85 || *b == 0xc2;
    value.split(|b| *b == b',').any(|part| {
        let start = part.iter().position(|b| !blank(b)).unwrap_or(part.len());
        part[start..]
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"bearer"))
    })
}

/// Verifies `token` for `route` and builds the caller's identity.
pub(crate) async fn authenticate(
    state: &AuthState,
    route: &RouteSettings,
    token: &str,
) -> Result<BearerUser, GatewayError> {
    let refused = |reason: String| {
        tracing::info!(route.name = %route.name, reason = %reason, "bearer token refused");
        GatewayError::InvalidToken(reason)
    };
    // Header first: names `alg none`, HMAC and non-JWTs precisely.
    crate::oidc::id_token::parse_header(token).map_err(refused)?;
    let iss = unverified_issuer(token).map_err(refused)?;

    let mut first_refusal: Option<String> = None;
    let mut unavailable = false;
    for connection in state
        .settings
        .connections
        .iter()
        .filter(|c| route.connections.contains(&c.name))
    {
        let Some(provider) = state.shared.providers.get(&connection.name) else {
            continue;
        };
        match provider.may_have_issued_access_token(&iss).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(connection = %connection.name, error = %e, "bearer token: provider metadata unavailable");
                unavailable = true;
                continue;
            }
        }
        match provider
            .verify_access_token(token, &route.api_audiences)
            .await
        {
            Ok(verified) => {
                let mut user = session_for(connection, &verified, token, route)
                    .map_err(|r| refused(r.to_string()))?;
                user.disown_foreign_email(|domain| state.settings.domain_owner(domain));
                return Ok(BearerUser {
                    user: Arc::new(user),
                    connection: connection.clone(),
                });
            }
            Err(OidcError::InvalidToken(reason)) => {
                first_refusal.get_or_insert(reason);
            }
            Err(e) => {
                tracing::warn!(connection = %connection.name, error = %e, "bearer token: provider unavailable");
                unavailable = true;
            }
        }
    }
    match (first_refusal, unavailable) {
        (Some(reason), _) => Err(refused(reason)),
        // Fail closed, but say it is not the caller's fault.
        (None, true) => Err(GatewayError::ProviderUnavailable),
        (None, false) => Err(refused(
            "iss is not an issuer of the connections this route accepts".into(),
        )),
    }
}

/// The `iss` of a JWT's payload, read without checking the signature (see
/// the module docs for why that is safe here).
fn unverified_issuer(token: &str) -> Result<String, String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or("not a JWT (expected three dot-separated parts)")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "payload is not base64url")?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| "payload is not a JSON object")?;
    match claims.get("iss") {
        Some(Value::String(iss)) if !iss.is_empty() => Ok(iss.clone()),
        _ => Err("iss missing".into()),
    }
}

/// The request-scoped identity of a verified access token, shaped like a
/// session so policy and headers need no second code path. The identity
/// (user id, email trust, groups) is the connection kind's, as at sign-in.
fn session_for(
    conn: &ConnectionSettings,
    token: &VerifiedAccessToken,
    raw: &str,
    route: &RouteSettings,
) -> Result<Session, String> {
    let now = super::now();
    let identity = crate::connection::oidc::bearer_identity(conn, token, raw, route, now)
        .ok_or("the token has no oid (Entra) or sub claim")?;
    let exp = token.identity().exp().unwrap_or(now);
    Ok(Session::new(
        identity,
        SessionTerms {
            created_at: now,
            expires_at: exp,
            keep_access_token: route.pass_access_token,
            keep_refresh_token: false,
        },
    ))
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::token;
    use crate::respond::GatewayError;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
        headers
    }

    #[test]
    fn a_bearer_token_is_found_whatever_whitespace_follows_the_scheme() {
        for value in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER  a.b.c",
            "Bearer\ta.b.c",
            "bearer\t\ta.b.c",
            "Bearer\t a.b.c",
            "Bearer a.b.c\t",
            // Leading whitespace survives in HTTP/2 field values.
            " Bearer a.b.c",
            "\t \tbearer\ta.b.c",
        ] {
            let headers = with(value);
            assert_eq!(token(&headers).unwrap(), Some("a.b.c"), "{value:?}");
        }
    }

    /// A bearer credential that is not a plain token is refused, never read
    /// as "another scheme" and passed on to the app unchecked.
    #[test]
    fn a_malformed_bearer_credential_is_refused_not_ignored() {
        for value in [
            " Bearer",
            "\tBearer not a token",
            "Bearer",
            "Bearer\t",
            "bearer \t ",
            "Bearer a b",
            "Bearer\ta\tb",
            "Bearer a,b",
            "Bearer é",
        ] {
            assert!(
                matches!(token(&with(value)), Err(GatewayError::InvalidToken(_))),
                "{value:?}"
            );
        }
    }

    #[test]
    fn other_schemes_are_not_judged() {
        for value in ["Basic dXNlcjpwYXNz", "Negotiate\tYII=", "Basic YmVhcmVy"] {
            assert_eq!(token(&with(value)).unwrap(), None, "{value:?}");
        }
    }

    /// Values an app library reads as a bearer credential although they
    /// are not `Bearer <token>` (review 9): refused, not passed on.
    #[test]
    fn values_an_app_may_read_as_bearer_are_refused() {
        for value in [
            "Bearerx a.b.c",
            "Bearer:a.b.c",
            "Bearer,a.b.c",
            "Basic x, Bearer a.b.c",
            ",Bearer a.b.c",
            "Basic x,\u{a0}bearer a.b.c",
            "Bearer\u{a0}a.b.c",
        ] {
            assert!(
                matches!(token(&with(value)), Err(GatewayError::InvalidToken(_))),
                "{value:?}"
            );
        }
    }
}
