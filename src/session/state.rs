//! Pending logins: state, nonce, PKCE verifier and target, bound to the browser
//! by a short-lived authenticated cookie. At most [`MAX_PENDING`] pending
//! logins per browser; older ones are dropped, so cookies never pile up (one
//! cookie, not one per login as some peers do).
//!
//! # Cookie
//!
//! `<cookie_name>_state`, always host-only (never `Domain`: the callback comes
//! back to the host that started the login), `__Host-` prefixed on HTTPS,
//! `HttpOnly`, `Path=/`, `Max-Age` = [`STATE_LIFETIME`].
//!
//! `SameSite=None; Secure` on HTTPS: with `response_mode=form_post` the
//! provider's page POSTs the callback cross-site, and browsers do not send
//! `SameSite=Lax` cookies on a cross-site POST, so a Lax state cookie would make
//! every form_post login fail. Cross-site sending is harmless here: the cookie
//! only completes a login whose `state` the same browser started. On plain
//! HTTP it is `SameSite=Lax` because browsers refuse `SameSite=None` without
//! `Secure`; form_post logins need HTTPS.
//!
//! # Value
//!
//! `base64url(tag[32] || json)` where `json` is the list of pending logins and
//! `tag = HMAC-SHA256(k, json)`, `k = HMAC-SHA256(secret, "realmgate state v1")`
//! (first secret signs, all verify). The content is authenticated, not
//! encrypted: the nonce and PKCE verifier are only useful together with an
//! authorization code issued to this browser, the cookie is `HttpOnly` (no
//! script reads it) and `Secure` on HTTPS (no network observer does). The
//! dependency set has no AEAD, and a MAC is what the binding needs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::cookie::time::Duration as CookieDuration;
use ::cookie::{Cookie, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::cookie::{
    cookie_values, derive_key, mac, sane_cookie_name, set_cookie_value, single_value, DerivedKey,
    HOST_PREFIX,
};
use crate::config::SessionSettings;

/// How long a login may take between redirect to the provider and callback.
pub const STATE_LIFETIME: Duration = Duration::from_secs(600);

/// Pending logins kept per browser (several tabs may sign in at once).
pub const MAX_PENDING: usize = 3;

/// Largest cookie value written; browsers drop cookies above ~4096 bytes
/// (name, value and attributes together).
const MAX_VALUE_LEN: usize = 3800;

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

/// Reads and writes the pending-login cookie.
pub struct StateCookies {
    /// `<cookie_name>_state`.
    name: String,
    /// `__Host-<cookie_name>_state`.
    host_name: String,
    keys: Vec<DerivedKey>,
}

// === impl StateCookies ===

impl StateCookies {
    pub fn new(settings: &SessionSettings) -> StateCookies {
        let name = format!("{}_state", sane_cookie_name(&settings.cookie_name));
        StateCookies {
            host_name: format!("{HOST_PREFIX}{name}"),
            name,
            keys: settings
                .secrets
                .iter()
                .map(|s| derive_key(s.expose(), b"realmgate state v1"))
                .collect(),
        }
    }

    /// The cookie name for a request over HTTPS or plain HTTP.
    pub fn name_for(&self, https: bool) -> &str {
        if https {
            &self.host_name
        } else {
            &self.name
        }
    }

    /// The `Set-Cookie` that adds `login` to the browser's pending logins
    /// (keeping at most a few recent ones).
    pub fn add(&self, headers: &HeaderMap, https: bool, login: PendingLogin) -> HeaderValue {
        self.add_at(headers, https, login, now())
    }

    fn add_at(
        &self,
        headers: &HeaderMap,
        https: bool,
        mut login: PendingLogin,
        now: u64,
    ) -> HeaderValue {
        let mut pending = self.read(headers, https, now);
        pending.retain(|p| p.state != login.state);
        let start = (pending.len() + 1).saturating_sub(MAX_PENDING);
        pending.drain(..start);
        loop {
            let mut all = pending.clone();
            all.push(login.clone());
            let value = self.encode(&all);
            if value.len() <= MAX_VALUE_LEN {
                return self.header(https, &value, false);
            }
            if !pending.is_empty() {
                // Too big: the oldest pending login goes first.
                pending.remove(0);
            } else if login.target != "/" {
                // Alone and still too big: a very long target is the only
                // unbounded part; the login still works, landing on `/`.
                login.target = "/".to_string();
            } else {
                return self.header(https, &value, false);
            }
        }
    }

    /// The pending login for `state` (constant-time compare, not expired), and the
    /// `Set-Cookie` that removes it from the browser. None when absent/forged/expired.
    /// The connection of this browser's pending login with `state`, left
    /// in place ([`Self::take`] redeems it): one callback URL shared by
    /// connections (oauth2-proxy's `/oauth2/callback`) finds its connection
    /// by it.
    pub fn connection_of(&self, headers: &HeaderMap, https: bool, state: &str) -> Option<String> {
        self.read(headers, https, now())
            .into_iter()
            .find(|p| p.state.as_bytes().ct_eq(state.as_bytes()).into())
            .map(|p| p.connection)
    }

    pub fn take(
        &self,
        headers: &HeaderMap,
        https: bool,
        state: &str,
    ) -> Option<(PendingLogin, HeaderValue)> {
        self.take_at(headers, https, state, now())
    }

    fn take_at(
        &self,
        headers: &HeaderMap,
        https: bool,
        state: &str,
        now: u64,
    ) -> Option<(PendingLogin, HeaderValue)> {
        if state.is_empty() {
            return None;
        }
        let mut pending = self.read(headers, https, now);
        let mut found = None;
        for (i, p) in pending.iter().enumerate() {
            if bool::from(p.state.as_bytes().ct_eq(state.as_bytes())) {
                found = Some(i);
            }
        }
        let login = pending.remove(found?);
        let header = if pending.is_empty() {
            self.header(https, "", true)
        } else {
            self.header(https, &self.encode(&pending), false)
        };
        Some((login, header))
    }

    /// The verified, unexpired pending logins in the request; empty when the
    /// cookie is missing, forged, malformed or ambiguous.
    fn read(&self, headers: &HeaderMap, https: bool, now: u64) -> Vec<PendingLogin> {
        let Some(value) = single_value(cookie_values(headers, self.name_for(https))) else {
            return Vec::new();
        };
        let mut pending = self.decode(value).unwrap_or_default();
        let lifetime = STATE_LIFETIME.as_secs();
        // Entries from the future (clock steps) get a minute of slack.
        pending.retain(|p| p.created_at <= now + 60 && now.saturating_sub(p.created_at) < lifetime);
        pending
    }

    fn decode(&self, value: &[u8]) -> Option<Vec<PendingLogin>> {
        if value.len() > 2 * MAX_VALUE_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(value).ok()?;
        if raw.len() < 32 {
            return None;
        }
        let (tag, json) = raw.split_at(32);
        let mut ok = subtle::Choice::from(0);
        for key in &self.keys {
            ok |= mac(key, &[json]).ct_eq(tag);
        }
        if !bool::from(ok) {
            return None;
        }
        let mut pending: Vec<PendingLogin> = serde_json::from_slice(json).ok()?;
        pending.truncate(MAX_PENDING);
        Some(pending)
    }

    fn encode(&self, pending: &[PendingLogin]) -> String {
        // Serializing plain strings and integers cannot fail.
        let json = serde_json::to_vec(pending).unwrap_or_default();
        let mut raw = Vec::with_capacity(32 + json.len());
        match self.keys.first() {
            Some(key) => raw.extend_from_slice(&mac(key, &[&json])),
            None => raw.extend_from_slice(&[0; 32]),
        }
        raw.extend_from_slice(&json);
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn header(&self, https: bool, value: &str, delete: bool) -> HeaderValue {
        let max_age = if delete { 0 } else { STATE_LIFETIME.as_secs() };
        // Lifetime is a constant of minutes; a delete is 0.
        let max_age = CookieDuration::seconds(i64::try_from(max_age).unwrap_or(0));
        // No `Domain`: host-only even with `session.cookie_domain` (module docs).
        let cookie = Cookie::build((self.name_for(https), value))
            .path("/")
            .max_age(max_age)
            .http_only(true)
            .secure(https)
            .same_site(if https { SameSite::None } else { SameSite::Lax })
            .build();
        set_cookie_value(&cookie)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
