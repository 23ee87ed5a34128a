//! Token endpoint requests: authorization code (with the PKCE verifier) and
//! refresh token grants. Errors carry only the OAuth error code, never the
//! response body (it may echo codes or secrets).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;

use super::metadata::{ClientAuth, Metadata};
use super::{OidcError, ProviderConfig};
use crate::connection::credential::{ClientAuthentication, JWT_BEARER};
use crate::http_client::{self, HttpClient};

#[derive(Deserialize)]
struct RawTokenResponse {
    id_token: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawTokenError {
    error: Option<String>,
}

/// A successful token response (as a refresh grant answers it, the ID token
/// is optional there: `oidc::RefreshedTokens`).
#[derive(Clone)]
pub struct Tokens {
    pub id_token: Option<String>,
    pub access_token: Option<String>,
    /// A rotated refresh token, if the provider sent one (else keep the old one).
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens([redacted])")
    }
}

/// POSTs `params` to the token endpoint with client authentication.
pub async fn request(
    http: &HttpClient,
    cfg: &ProviderConfig,
    meta: &Metadata,
    params: &[(&str, &str)],
) -> Result<Tokens, OidcError> {
    // Pairs first, serialized at the end: the form serializer is not Send and
    // must not live across an await.
    let mut form: Vec<(&str, &str)> = params.to_vec();
    let mut builder = http::Request::post(meta.token_endpoint.as_str())
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, http_client::user_agent());
    let now = super::now_unix();
    let authentication = match &cfg.credential {
        Some(c) => Some(
            c.authenticate(&cfg.client_id, meta.token_endpoint.as_str(), now)
                .await
                .map_err(|e| {
                    // Not the user's fault and maybe passing (a token file
                    // being rotated): like an unreachable provider, a 503.
                    OidcError::Unavailable(format!("client credential: {e}"))
                })?,
        ),
        None => None,
    };
    match (&authentication, meta.client_auth) {
        (Some(ClientAuthentication::Secret(secret)), ClientAuth::Basic) => {
            // RFC 6749 2.3.1: both parts form-urlencoded before base64.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(&cfg.client_id), enc(secret.expose_str()));
            builder = builder.header(
                http::header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(pair)),
            );
            form.push(("client_id", &cfg.client_id));
        }
        (Some(ClientAuthentication::Secret(secret)), ClientAuth::Post) => {
            form.push(("client_id", &cfg.client_id));
            form.push(("client_secret", secret.expose_str()));
        }
        // RFC 7523 2.2 (private_key_jwt, or a federated token).
        (Some(ClientAuthentication::Assertion(assertion)), _) => {
            form.push(("client_id", &cfg.client_id));
            form.push(("client_assertion_type", JWT_BEARER));
            form.push(("client_assertion", assertion.expose_str()));
        }
        // A public client: PKCE is its only proof.
        (None, _) => {
            form.push(("client_id", &cfg.client_id));
        }
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
        .into_bytes();
    let request = builder
        .body(body)
        .map_err(|e| OidcError::Unavailable(format!("token request: {e}")))?;
    let response = http
        .execute(request)
        .await
        .map_err(|e| OidcError::Unavailable(format!("token endpoint: {e}")))?;
    let status = response.status();
    if status.is_success() {
        let raw: RawTokenResponse = serde_json::from_slice(response.body()).map_err(|_| {
            OidcError::Unavailable(format!(
                "token endpoint {} answered {status} with a body that is not a token response",
                host(meta)
            ))
        })?;
        let expires_in = raw.expires_in.and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_u64(),
            // Some providers (old Entra v1) send a string.
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        return Ok(Tokens {
            id_token: raw.id_token,
            access_token: raw.access_token,
            refresh_token: raw.refresh_token,
            expires_in: expires_in.map(Duration::from_secs),
        });
    }
    if status.is_client_error() {
        // RFC 6749 5.2: the error code is the only part we keep.
        let code = serde_json::from_slice::<RawTokenError>(response.body())
            .ok()
            .and_then(|e| e.error)
            .map(|c| sanitize_code(&c))
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        return Err(OidcError::Exchange(code));
    }
    Err(OidcError::Unavailable(format!(
        "token endpoint {} answered {status}",
        host(meta)
    )))
}

fn host(meta: &Metadata) -> String {
    meta.token_endpoint.host_str().unwrap_or("").to_string()
}

/// An OAuth error code is `[A-Za-z0-9_.-]`; anything else is cut so it can be
/// logged and shown safely.
pub fn sanitize_code(code: &str) -> String {
    let clean: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect();
    if clean.is_empty() {
        "unknown_error".into()
    } else {
        clean
    }
}
