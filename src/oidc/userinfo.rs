//! The userinfo endpoint (OpenID Connect Core 5.3) for the extended profile
//! (SPEC 5.5): with `extended_profile = true`, the session's `claims` are the
//! ID token's extra claims merged with userinfo's.
//!
//! - The ID token wins: a claim it carries is never replaced by userinfo's
//!   (it is signed and bound to this login). Identity and protocol claims
//!   (`sub`, `oid`, `tid`, `iss`, email and its trust, name, groups, …) never
//!   come from userinfo at all: they are not "extra" ([`super::KNOWN_CLAIMS`]).
//! - Userinfo's `sub` must equal the ID token's, or the whole response is
//!   discarded (Core 5.3.2: it may belong to another user, e.g. a token
//!   substitution).
//! - Userinfo is an extra, never a condition of signing in: any failure
//!   (unreachable, an error status, not a JSON object, too large, another
//!   `sub`) is logged and counted (`idp_requests{kind="userinfo",
//!   outcome="error"}`), and the session keeps the ID token's claims.
//!
//! On Entra, discovery names `https://graph.microsoft.com/oidc/userinfo`,
//! which answers for the Graph access token of the sign-in (`openid` and
//! `profile` scopes): `given_name`, `family_name`, `picture`.

use std::time::Instant;

use serde_json::{Map, Value};

use super::{Provider, VerifiedIdToken, KNOWN_CLAIMS};

/// Userinfo responses larger than this are refused (the ID token's limit:
/// the claims end up in every copy of the session).
pub const MAX_USERINFO_BYTES: usize = 64 * 1024;

/// Why userinfo's claims were not used. Texts never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    #[error("discovery is unavailable: {0}")]
    Metadata(String),
    #[error("userinfo request failed: {0}")]
    Unreachable(String),
    #[error("userinfo answered HTTP {0}")]
    Status(u16),
    #[error("userinfo answered more than {MAX_USERINFO_BYTES} bytes")]
    TooLarge,
    #[error("userinfo answered something that is not a JSON object")]
    Malformed,
    #[error("userinfo's sub is not the ID token's sub (OpenID Connect Core 5.3.2)")]
    SubMismatch,
}

impl Provider {
    /// The session's extra claims (SPEC 5.5): the ID token's, plus
    /// userinfo's when the provider has a userinfo endpoint and the token
    /// endpoint returned an access token. Never fails: a userinfo problem is
    /// logged and counted, and only the ID token's claims are kept.
    pub async fn profile_claims(
        &self,
        token: &VerifiedIdToken,
        access_token: Option<&str>,
    ) -> Map<String, Value> {
        let mut claims = token.extra_claims();
        let Some(access_token) = access_token else {
            return claims;
        };
        match self.userinfo(access_token, token.sub()).await {
            Ok(Some(userinfo)) => {
                for (name, value) in userinfo {
                    if !KNOWN_CLAIMS.contains(&name.as_str()) && !token.claims.contains_key(&name) {
                        claims.insert(name, value);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                connection = %self.cfg.name,
                error = %e,
                "userinfo not used; the profile has the ID token's claims only"
            ),
        }
        claims
    }

    /// Userinfo's claims for `access_token`, checked to be about `sub`;
    /// `Ok(None)` when the provider has no userinfo endpoint. Every failure
    /// is counted as an `idp_requests` error of kind `userinfo`.
    pub async fn userinfo(
        &self,
        access_token: &str,
        sub: &str,
    ) -> Result<Option<Map<String, Value>>, UserinfoError> {
        let meta = self
            .metadata()
            .await
            .map_err(|e| UserinfoError::Metadata(e.to_string()))?;
        let Some(endpoint) = meta.userinfo_endpoint.as_ref() else {
            return Ok(None);
        };
        let started = Instant::now();
        let result = self
            .fetch_userinfo(endpoint.as_str(), access_token, sub)
            .await;
        self.metrics.record_idp_call(
            &self.cfg.name,
            "userinfo",
            started.elapsed(),
            result.is_ok(),
        );
        result.map(Some)
    }

    async fn fetch_userinfo(
        &self,
        endpoint: &str,
        access_token: &str,
        sub: &str,
    ) -> Result<Map<String, Value>, UserinfoError> {
        let response = self
            .http
            .get_with_bearer(endpoint, access_token)
            .await
            .map_err(|e| UserinfoError::Unreachable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(UserinfoError::Status(response.status().as_u16()));
        }
        if response.body().len() > MAX_USERINFO_BYTES {
            return Err(UserinfoError::TooLarge);
        }
        let claims: Map<String, Value> =
            serde_json::from_slice(response.body()).map_err(|_| UserinfoError::Malformed)?;
        check_subject(&claims, sub)?;
        Ok(claims)
    }
}

/// Core 5.3.2: "The sub Claim in the UserInfo Response MUST be verified to
/// exactly match the sub Claim in the ID Token; if they do not match, the
/// UserInfo Response values MUST NOT be used."
fn check_subject(claims: &Map<String, Value>, sub: &str) -> Result<(), UserinfoError> {
    match claims.get("sub").and_then(Value::as_str) {
        Some(s) if !sub.is_empty() && s == sub => Ok(()),
        _ => Err(UserinfoError::SubMismatch),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test values are objects"),
        }
    }

    #[test]
    fn userinfo_about_another_subject_is_refused() {
        let same = object(json!({"sub": "abc", "jobTitle": "x"}));
        assert!(check_subject(&same, "abc").is_ok());
        for other in [
            json!({"sub": "abd"}),
            json!({"sub": "ABC"}),
            json!({"sub": 7}),
            json!({"jobTitle": "no sub at all"}),
        ] {
            assert!(matches!(
                check_subject(&object(other), "abc"),
                Err(UserinfoError::SubMismatch)
            ));
        }
        assert!(
            check_subject(&object(json!({"sub": ""})), "").is_err(),
            "an empty sub matches nothing"
        );
    }
}
