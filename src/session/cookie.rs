//! The session cookie: only a random id, authenticated with HMAC-SHA256 under
//! the session secret (`secrets = [new, old]`: first signs, all verify).
//! `HttpOnly`, `Secure` on HTTPS, `SameSite=Lax`, `Path=/`, `__Host-` prefix on
//! HTTPS without `cookie_domain`.
//!
//! # Value
//!
//! `base64url(id[32] || tag[32])`, no padding, exactly 86 characters, where
//! `tag = HMAC-SHA256(k, cookie_name || 0x00 || id)` and
//! `k = HMAC-SHA256(secret, "realmgate session cookie v1")`. The id alone is
//! already unguessable (256 bits); the tag lets a forged or corrupted cookie be
//! refused without a store lookup, and ties the value to this deployment's
//! secret. Tags are compared in constant time.
//!
//! # Which cookie names are read
//!
//! On HTTPS without `cookie_domain` the cookie is `__Host-<cookie_name>`: the
//! browser only accepts that name from this very host, over HTTPS, with
//! `Path=/` and no `Domain`, so a sibling subdomain cannot plant ("toss") a
//! session cookie of its choosing (login CSRF / session fixation). A plain
//! `<cookie_name>` cookie on such a request can only come from plain HTTP or a
//! sibling, so [`SessionCookies::read_for`] ignores it. [`SessionCookies::read`]
//! does not know the scheme; it prefers `__Host-` cookies whenever the browser
//! sent one and falls back to the plain name otherwise. Callers that know the
//! scheme should use `read_for`.
//!
//! Several cookies of the chosen name (a planted cookie with a longer `Path`,
//! say) are ambiguous, whatever their values: the request counts as signed out.
//!
//! # Lifetime
//!
//! The cookie has no `Max-Age`: it is a browser-session cookie, like Easy
//! Auth's. The store enforces `lifetime` and `idle_timeout`; a closed browser
//! on a shared machine forgets the session, and single sign-on at the provider
//! makes signing in again cheap.
//!
//! # Writing and reading
//!
//! `Set-Cookie` values are built and rendered by the `cookie` crate
//! ([`set_cookie_value`]). The `Cookie` request header is read by the byte
//! scanner here ([`cookie_values`], `split_pair`), not by the crate's
//! `Cookie::split_parse`, on purpose (docs/decisions.md, "The design card's
//! libraries"): the crate needs the header as UTF-8 (one app cookie with a
//! Latin-1 byte would sign the user out), trims Unicode whitespace (a name
//! behind a no-break space would be read as ours while the strip below, which
//! must keep such bytes for the app, does not see it), skips a bare name
//! where the duplicate rule counts it, and costs more on the read path every
//! signed-in request takes.

mod memo;

use ::cookie::time::Duration as CookieDuration;
use ::cookie::{Cookie, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::store::SessionId;
use crate::config::SessionSettings;

/// The `__Host-` prefix (RFC 6265bis 4.1.3.2).
pub const HOST_PREFIX: &str = "__Host-";

/// The unknown-domain flash cookie of `/.auth/login` (`auth::login`): the
/// message and email of a home realm discovery attempt that found no
/// connection, from its `POST` to the `GET` it redirects to. A fixed name
/// (not derived from `cookie_name`), `Path=/.auth/login`, never `__Host-`
/// (that prefix needs `Path=/`). A browser never sends it to an app's path,
/// but a client can: [`SessionCookies::strip_own_cookies`] removes it too.
pub(crate) const FLASH_COOKIE: &str = "realmgate_hrd";

/// Length of the encoded cookie value: base64url of 64 bytes, no padding.
const VALUE_LEN: usize = 86;

type HmacSha256 = Hmac<Sha256>;

/// A 32-byte key derived from a configured secret for one purpose.
pub(crate) type DerivedKey = Zeroizing<[u8; 32]>;

/// `HMAC-SHA256(secret, label)`: one key per purpose, so a session cookie tag
/// can never pass as a state cookie tag or the other way round.
pub(crate) fn derive_key(secret: &[u8], label: &[u8]) -> DerivedKey {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(label);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// `HMAC-SHA256(key, parts...)`.
pub(crate) fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Values of every cookie named exactly `name`, across all `Cookie` headers
/// (HTTP/2 may split them).
pub(crate) fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let (n, v) = split_pair(pair);
            (n == name.as_bytes()).then_some(v)
        })
}

/// `name=value` with surrounding whitespace trimmed from both.
fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    let pair = pair.trim_ascii();
    match pair.iter().position(|&b| b == b'=') {
        Some(i) => (pair[..i].trim_ascii(), pair[i + 1..].trim_ascii()),
        None => (pair, &[]),
    }
}

/// The value when the name occurs exactly once; None when it is missing or
/// repeated (even with the same value: a browser that keeps two cookies of
/// one name got one of them from somewhere else).
pub(crate) fn single_value<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Option<&'a [u8]> {
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// Cookie names and domains are validated by the config; a settings value
/// built elsewhere (tests) falls back to safe defaults instead of producing a
/// header that cannot be sent.
pub(crate) fn sane_cookie_name(name: &str) -> String {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        name.to_string()
    } else {
        tracing::error!("session.cookie_name is invalid; using \"realmgate\"");
        "realmgate".to_string()
    }
}

/// Reads and writes the session cookie.
pub struct SessionCookies {
    /// The configured name, without prefix.
    name: String,
    /// `__Host-` + name.
    host_name: String,
    /// Names of the state cookie (`<name>_state`, with and without prefix), for stripping.
    state_names: [String; 2],
    domain: Option<String>,
    /// One HMAC keyed with the key derived from each configured secret,
    /// the first signs. Kept keyed (the inner and outer pad blocks already
    /// hashed): a tag then costs two SHA-256 blocks, not four, and a
    /// cookie value that is not in a thread's memo is verified on every
    /// request of a store with many users (issue 23). The keyed state is a
    /// key equivalent, held like the derived key it replaces.
    keys: Vec<HmacSha256>,
    /// This instance in the per-thread memos of verified values (`memo`).
    number: u64,
}

// === impl SessionCookies ===

impl SessionCookies {
    pub fn new(settings: &SessionSettings) -> SessionCookies {
        let name = sane_cookie_name(&settings.cookie_name);
        let domain = settings.cookie_domain.as_ref().and_then(|d| {
            let bare = d.trim_start_matches('.');
            let ok = !bare.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                tracing::error!("session.cookie_domain is invalid; cookies are host-only");
            }
            ok.then(|| d.to_ascii_lowercase())
        });
        let state = format!("{name}_state");
        SessionCookies {
            host_name: format!("{HOST_PREFIX}{name}"),
            state_names: [format!("{HOST_PREFIX}{state}"), state],
            name,
            domain,
            keys: settings
                .secrets
                .iter()
                .map(|s| {
                    let key = derive_key(s.expose(), b"realmgate session cookie v1");
                    HmacSha256::new_from_slice(&key[..]).expect("HMAC takes keys of any length")
                })
                .collect(),
            number: crate::per_thread::owner_number(),
        }
    }

    /// The cookie name used for a request over HTTPS (`https`) or plain HTTP.
    pub fn name_for(&self, https: bool) -> &str {
        if https && self.domain.is_none() {
            &self.host_name
        } else {
            &self.name
        }
    }

    /// The session id from the request's cookies; None for missing, malformed,
    /// forged, oversized or duplicated (ambiguous) cookies.
    ///
    /// Prefers `__Host-<name>` when the browser sent one (see the module docs);
    /// use [`SessionCookies::read_for`] when the scheme is known.
    pub fn read(&self, headers: &HeaderMap) -> Option<SessionId> {
        let name =
            if self.domain.is_none() && cookie_values(headers, &self.host_name).next().is_some() {
                &self.host_name
            } else {
                &self.name
            };
        self.read_named(headers, name)
    }

    /// Like [`SessionCookies::read`], but only the cookie name this scheme uses
    /// is accepted: `__Host-<name>` on HTTPS without `cookie_domain`.
    pub fn read_for(&self, headers: &HeaderMap, https: bool) -> Option<SessionId> {
        self.read_named(headers, self.name_for(https))
    }

    fn read_named(&self, headers: &HeaderMap, name: &str) -> Option<SessionId> {
        let value = single_value(cookie_values(headers, name))?;
        self.verify(value)
    }

    /// The id in a cookie value, when its tag verifies under any secret.
    fn verify(&self, value: &[u8]) -> Option<SessionId> {
        let value: &[u8; VALUE_LEN] = value.try_into().ok()?;
        if let Some(id) = memo::get(self.number, value) {
            return Some(id);
        }
        let id = self.verify_tag(value)?;
        memo::put(self.number, value, &id);
        Some(id)
    }

    /// [`SessionCookies::verify`] without the memo.
    fn verify_tag(&self, value: &[u8; VALUE_LEN]) -> Option<SessionId> {
        let mut raw = [0u8; 64];
        let n = URL_SAFE_NO_PAD.decode_slice(value, &mut raw).ok()?;
        if n != 64 {
            return None;
        }
        let (id, tag) = raw.split_at(32);
        let id: [u8; 32] = id.try_into().ok()?;
        let mut ok = subtle::Choice::from(0);
        // Every key is tried (no early exit), so timing does not tell which
        // secret signed.
        for key in &self.keys {
            ok |= self.tag(key, &id).ct_eq(tag);
        }
        bool::from(ok).then(|| SessionId::from_bytes(id))
    }

    fn tag(&self, key: &HmacSha256, id: &[u8; 32]) -> [u8; 32] {
        let mut mac = key.clone();
        mac.update(self.name.as_bytes());
        mac.update(&[0]);
        mac.update(id);
        mac.finalize().into_bytes().into()
    }

    /// The cookie value for `id`, signed with the first secret.
    pub fn value(&self, id: &SessionId) -> String {
        let mut raw = [0u8; 64];
        raw[..32].copy_from_slice(id.as_bytes());
        if let Some(key) = self.keys.first() {
            raw[32..].copy_from_slice(&self.tag(key, id.as_bytes()));
        }
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// [`SessionCookies::read_for`] and [`SessionCookies::strip_own_cookies`]
    /// together: the session id of the request, and `headers` left without
    /// realmgate's cookies. What each of them does alone, but a request with
    /// one `Cookie` header (every HTTP/1.1 request) is scanned once.
    pub fn take_for(&self, headers: &mut HeaderMap, https: bool) -> Option<SessionId> {
        let mut values = headers.get_all(COOKIE).iter();
        let first = values.next()?;
        if values.next().is_some() {
            // Several `Cookie` headers (HTTP/2 may split them).
            let id = self.read_for(headers, https);
            self.strip_own_cookies(headers);
            return id;
        }
        let wanted = self.name_for(https).as_bytes();
        let (mut found, mut repeated, mut own, mut others) = (None, false, false, false);
        for pair in first.as_bytes().split(|&b| b == b';') {
            let (n, v) = split_pair(pair);
            if n == wanted {
                repeated |= found.is_some();
                found = Some(v);
            }
            if self.is_own(n) {
                own = true;
            } else {
                others |= !pair.trim_ascii().is_empty();
            }
        }
        // As `read_for`: a repeated name is ambiguous, so signed out.
        let id = found
            .filter(|_| !repeated)
            .and_then(|value| self.verify(value));
        if own {
            let removed = headers.remove(COOKIE);
            if let Some(kept) = removed.filter(|_| others).and_then(|v| self.without_own(v)) {
                headers.insert(COOKIE, kept);
            }
        }
        id
    }

    /// True when `name` is one of realmgate's cookies (session or state, with
    /// or without the prefix, and the flash cookie [`FLASH_COOKIE`]),
    /// compared ASCII case-insensitively.
    fn is_own(&self, name: &[u8]) -> bool {
        [
            self.name.as_str(),
            &self.host_name,
            &self.state_names[0],
            &self.state_names[1],
            FLASH_COOKIE,
        ]
        .iter()
        .any(|own| name.eq_ignore_ascii_case(own.as_bytes()))
    }

    /// A `Cookie` value without realmgate's cookies; None when nothing remains.
    fn without_own(&self, value: HeaderValue) -> Option<HeaderValue> {
        let bytes = value.as_bytes();
        if !bytes
            .split(|&b| b == b';')
            .any(|pair| self.is_own(split_pair(pair).0))
        {
            return Some(value);
        }
        // Allocated only when some cookie is kept.
        let mut kept: Vec<u8> = Vec::new();
        for pair in bytes.split(|&b| b == b';') {
            let trimmed = pair.trim_ascii();
            if trimmed.is_empty() || self.is_own(split_pair(trimmed).0) {
                continue;
            }
            if kept.is_empty() {
                kept.reserve_exact(bytes.len());
            } else {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(trimmed);
        }
        if kept.is_empty() {
            return None;
        }
        // The kept bytes are a subset of a valid header value.
        HeaderValue::from_bytes(&kept).ok()
    }

    /// Remove realmgate's own cookies (session and state, any prefix; the flash
    /// cookie) from `Cookie`
    /// headers, keeping the app's cookies; drop `Cookie` when nothing remains.
    ///
    /// Names are compared ASCII case-insensitively so that no spelling of
    /// realmgate's cookies reaches an upstream that reads names loosely. Kept
    /// cookies are copied byte for byte and re-joined with `"; "`; a header
    /// without any of our cookies is left untouched.
    pub fn strip_own_cookies(&self, headers: &mut HeaderMap) {
        if !headers.get_all(COOKIE).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b';')
                .any(|pair| self.is_own(split_pair(pair).0))
        }) {
            return;
        }
        // One `Cookie` header (what HTTP/1.1 sends) is rewritten in place;
        // HTTP/2 may split cookies over several.
        if headers.get_all(COOKIE).iter().nth(1).is_none() {
            if let Some(v) = headers.remove(COOKIE).and_then(|v| self.without_own(v)) {
                headers.insert(COOKIE, v);
            }
            return;
        }
        let old: Vec<HeaderValue> = match headers.entry(COOKIE) {
            http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
            http::header::Entry::Vacant(_) => return,
        };
        for v in old.into_iter().filter_map(|v| self.without_own(v)) {
            headers.append(COOKIE, v);
        }
    }

    /// Remove an upstream's `Set-Cookie` lines for realmgate's own cookies
    /// (session and state, any prefix; the flash cookie). An app on one
    /// route could otherwise plant, for the whole host, a session cookie of
    /// its choosing in its users' browsers (they would then act as that
    /// session's user: login CSRF), or clear theirs (review 13, H1). The
    /// name is read as browsers read it: up to the first `=` of the first
    /// `;`-separated part, whitespace trimmed.
    pub fn strip_own_set_cookies(&self, headers: &mut HeaderMap) {
        let own = |v: &HeaderValue| {
            let pair = v
                .as_bytes()
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default();
            pair.contains(&b'=') && self.is_own(split_pair(pair).0)
        };
        if !headers.get_all(SET_COOKIE).iter().any(own) {
            return;
        }
        let old: Vec<HeaderValue> = match headers.entry(SET_COOKIE) {
            http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
            http::header::Entry::Vacant(_) => return,
        };
        for v in old.into_iter().filter(|v| !own(v)) {
            headers.append(SET_COOKIE, v);
        }
    }

    /// `Set-Cookie` for a new session id.
    pub fn set(&self, id: &SessionId, https: bool) -> HeaderValue {
        self.header(https, &self.value(id), false)
    }

    /// `Set-Cookie` that deletes the session cookie.
    pub fn clear(&self, https: bool) -> HeaderValue {
        self.header(https, "", true)
    }

    fn header(&self, https: bool, value: &str, delete: bool) -> HeaderValue {
        let mut cookie = Cookie::build((self.name_for(https), value))
            .path("/")
            .http_only(true)
            .secure(https)
            .same_site(SameSite::Lax);
        if let Some(d) = &self.domain {
            cookie = cookie.domain(d.as_str());
        }
        if delete {
            cookie = cookie.max_age(CookieDuration::ZERO);
        }
        set_cookie_value(&cookie.build())
    }
}

/// The `Set-Cookie` value for `cookie`, rendered by the cookie crate (no
/// percent-encoding: names are checked token characters and values base64url).
pub(crate) fn set_cookie_value(cookie: &Cookie<'_>) -> HeaderValue {
    // Invariant: name, domain and value are token characters (`new`, base64url),
    // and the crate adds only attribute names, digits and "; ".
    HeaderValue::from_str(&cookie.to_string()).expect("cookie parts are token characters")
}

#[cfg(test)]
pub(crate) mod tests;
