//! `X-Realmgate-Assertion` (route `jwt_assertion = true`, and the `pomerium`
//! profile's `X-Pomerium-Jwt-Assertion`): a short-lived JWT signed by the
//! gateway that tells the app who the user is, so an app that can reach the
//! network behind the gateway can still not be fooled by forged headers.
//!
//! The key comes from `server.assertion_key`, a PEM file every replica
//! shares, so an assertion from any replica verifies with the one JWKS at
//! `GET /.auth/keys`:
//!
//! - ES256 with a P-256 key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`),
//!   or RS256 with an RSA key of at least 2048 bits (PKCS#8 or PKCS#1).
//! - `kid` is the key's RFC 7638 thumbprint, so it changes exactly when the
//!   key does and every replica derives the same one.
//!
//! Claims ([`Form`]): `X-Realmgate-Assertion` has `iss` = the origin the
//! request came to (`https://hr.contoso.com`, where `/.auth/keys` is) and
//! `aud` = the route's name; `X-Pomerium-Jwt-Assertion` has Pomerium's
//! `iss` = `aud` = the host the request came to (`hr.contoso.com`) and the
//! user id in `user` too, so Pomerium's SDKs verify it with the same key at
//! `/.well-known/pomerium/jwks.json`. Both: `sub` = the user id, `email`
//! only when verified (SPEC 5.6), `groups` (ids, filtered like the headers
//! with `groups_in_headers = "known"`), `name`, `tid` when known,
//! `iat`/`nbf` = now, `exp` = now + [`LIFETIME`].
//!
//! Signing an RSA assertion costs about a millisecond, so a signed assertion
//! is reused for identical claims (same user, form, route and host) for
//! [`REUSE`]: every assertion handed out has at least
//! `LIFETIME - REUSE` left to live.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

#[cfg(test)]
use crate::config::assertion_key::thumbprint;
pub use crate::config::assertion_key::AssertionKey;
use crate::config::{ConnectionSettings, GroupsInHeaders};
use crate::session::model::Session;
#[cfg(test)]
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
#[cfg(test)]
use jsonwebtoken::Algorithm;
#[cfg(test)]
use serde_json::Value;
#[cfg(test)]
use std::path::Path;

/// How long an assertion is valid.
pub const LIFETIME: Duration = Duration::from_secs(300);
/// How long one signed assertion is handed out again for the same claims.
pub const REUSE: Duration = Duration::from_secs(120);
/// Which assertion, and so which `iss` and `aud`.
#[derive(Clone, Copy, Debug)]
pub enum Form<'a> {
    /// `X-Realmgate-Assertion`: `iss` = the origin the request came to
    /// (`https://hr.contoso.com`), `aud` = the route's name.
    Realmgate { route: &'a str, origin: &'a str },
    /// `X-Pomerium-Jwt-Assertion` as Pomerium makes it: `iss` and `aud` =
    /// the host the request came to, no scheme or port (Pomerium's default
    /// `jwt_issuer_format`); Pomerium's SDKs take the JWKS from
    /// `https://{iss}/.well-known/pomerium/jwks.json` and expect both to be
    /// the app's host.
    Pomerium { host: &'a str },
}

/// Signs assertions with one key, reusing a signature for identical claims.
pub struct Assertions {
    key: std::sync::Arc<AssertionKey>,
    /// SHA-256 of the time-free claims -> (assertion, iat).
    recent: moka::sync::Cache<[u8; 32], (String, u64)>,
}

impl Assertions {
    /// The signing key (its public half is `/.auth/keys`).
    pub fn key(&self) -> &AssertionKey {
        &self.key
    }

    pub fn new(key: std::sync::Arc<AssertionKey>) -> Assertions {
        Assertions {
            key,
            recent: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(REUSE)
                .build(),
        }
    }

    /// The assertion for `user` in `form`.
    pub fn issue(
        &self,
        user: &Session,
        form: Form<'_>,
        connection: &ConnectionSettings,
        policy_groups: &HashSet<String>,
        now: u64,
    ) -> Option<String> {
        let mut claims = json!({
            "sub": user.user_id,
            "groups": groups(user, connection, policy_groups),
        });
        match form {
            Form::Realmgate { route, origin } => {
                claims["iss"] = json!(origin);
                claims["aud"] = json!(route);
            }
            Form::Pomerium { host } => {
                claims["iss"] = json!(host);
                claims["aud"] = json!(host);
                claims["user"] = json!(user.user_id);
            }
        }
        if let Some(email) = user.vouched_email(connection) {
            claims["email"] = json!(email);
        }
        if let Some(name) = user.vouched_name(connection) {
            claims["name"] = json!(name);
        }
        if let Some(tid) = user.tenant(connection) {
            claims["tid"] = json!(tid);
        }
        let digest: [u8; 32] = Sha256::digest(claims.to_string().as_bytes()).into();
        if let Some((token, iat)) = self.recent.get(&digest) {
            // `time_to_live` bounds the age too; this guards a clock jump.
            if now >= iat && now - iat < REUSE.as_secs() {
                return Some(token);
            }
        }
        claims["iat"] = json!(now);
        claims["nbf"] = json!(now);
        claims["exp"] = json!(now + LIFETIME.as_secs());
        let token = self.key.sign(&claims)?;
        self.recent.insert(digest, (token.clone(), now));
        Some(token)
    }
}

/// Group ids as the headers would show them (only known groups with
/// `groups_in_headers = "known"`).
fn groups(
    user: &Session,
    connection: &ConnectionSettings,
    policy_groups: &HashSet<String>,
) -> Vec<String> {
    user.groups
        .iter()
        .filter(|id| {
            connection.groups_in_headers != GroupsInHeaders::Known
                || connection.group_names.contains_key(&***id)
                || policy_groups.contains(&***id)
        })
        // As the group headers (`headers::identity::header_groups`): a
        // value this connection does not map that reads as a name or id
        // another connection maps would look like that connection's group
        // to the app verifying the assertion (SPEC 6.1).
        .filter(|id| !crate::headers::identity::borrowed_group(connection, id))
        .map(|id| id.to_string())
        .collect()
}

/// A fresh P-256 key as PKCS#8 PEM, for tests that need a key file.
#[doc(hidden)]
pub fn generate_p256_pem() -> String {
    use p256::pkcs8::EncodePrivateKey as _;
    p256::SecretKey::random(&mut rand::thread_rng())
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .map(|pem| pem.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
