//! What a session holds. The cookie carries only the session id; this lives
//! in the store (memory or Redis), serialized with serde.

use serde::{Deserialize, Serialize};

/// Why an email address is believed (SPEC 5.6). Without one of these, no
/// profile sends an email header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTrust {
    /// The provider said `email_verified = true`.
    ProviderVerified,
    /// Entra said `xms_edov = true` (the email's domain is verified by the tenant).
    EntraDomainVerified,
    /// The connection has `trusted_email = true`.
    TrustedConnection,
    /// None of the above.
    Unverified,
}

impl EmailTrust {
    pub fn is_verified(self) -> bool {
        !matches!(self, EmailTrust::Unverified)
    }
}

/// A signed-in user as stored. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// `oid` for Entra, `sub` otherwise. Never the email.
    pub user_id: String,
    /// The ID token's `sub`.
    pub subject: String,
    /// Entra `tid`.
    pub tenant_id: Option<String>,
    /// The connection that signed the user in.
    pub connection: String,
    /// The ID token's `iss`.
    pub issuer: String,
    /// The provider's session id (`sid`), for back-channel logout.
    pub sid: Option<String>,
    pub email: Option<String>,
    pub email_trust: EmailTrust,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    /// Group ids as the provider gave them.
    pub groups: Vec<String>,
    /// Extra claims, kept only with `extended_profile = true`.
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
    pub id_token: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    /// When the access or ID token expires, whichever is first.
    pub tokens_expire_at: Option<u64>,
    pub created_at: u64,
    /// Absolute end: `created_at + lifetime`.
    pub expires_at: u64,
}

impl Session {
    /// The email, only when it is trusted.
    pub fn verified_email(&self) -> Option<&str> {
        if self.email_trust.is_verified() {
            self.email.as_deref()
        } else {
            None
        }
    }
}
