//! Pending logins: state, nonce, PKCE verifier and target, bound to the browser
//! by a short-lived authenticated (and encrypted or opaque) cookie. At most a few
//! pending logins per browser; older ones are dropped, so cookies never pile up.
//!
//! OWNER: sess helper. Contract signatures below must stay.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::config::SessionSettings;

/// How long a login may take between redirect to the provider and callback.
pub const STATE_LIFETIME: Duration = Duration::from_secs(600);

/// What the callback needs to finish a login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Connection name.
    pub connection: String,
    /// The redirect URI sent to the provider (must be sent again at the token endpoint).
    pub redirect_uri: String,
    /// Where to go after login (already validated).
    pub target: String,
    /// Unix seconds.
    pub created_at: u64,
}

pub struct StateCookies {
    // sess helper
}

impl StateCookies {
    pub fn new(settings: &SessionSettings) -> StateCookies {
        let _ = settings;
        todo!("sess")
    }
    /// The `Set-Cookie` that adds `login` to the browser's pending logins
    /// (keeping at most a few recent ones).
    pub fn add(&self, headers: &HeaderMap, https: bool, login: PendingLogin) -> HeaderValue {
        let _ = (headers, https, login);
        todo!("sess")
    }
    /// The pending login for `state` (constant-time compare, not expired), and the
    /// `Set-Cookie` that removes it from the browser. None when absent/forged/expired.
    pub fn take(
        &self,
        headers: &HeaderMap,
        https: bool,
        state: &str,
    ) -> Option<(PendingLogin, HeaderValue)> {
        let _ = (headers, https, state);
        todo!("sess")
    }
}
