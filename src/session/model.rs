//! What a session holds. The cookie carries only the session id; this lives
//! in the store (memory or Redis), serialized with serde.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Text many sessions repeat (group ids, app roles), shared rather than
/// copied: the memory store keeps each once, and a session read from it
/// holds a counted reference to it, not a copy (issue 23: a cold read of
/// an Entra session made an allocation per group).
pub type Shared = Arc<str>;

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

/// The format of stored sessions. Version 2 (issue 17): user ids of
/// non-Entra connections are `<connection>:<sub>`. A record of another
/// version (written before the upgrade, without the field: 0) is treated
/// as absent by the stores, so its user signs in again once; it never
/// reaches headers or policies with an old-format user id.
pub const SESSION_VERSION: u32 = 2;

/// A signed-in user as stored. Times are Unix seconds. Its `Debug` leaves
/// the provider's tokens out (see the impl).
///
/// Absent optional fields are left out of the Redis record (issue 23: a
/// smaller record) and read as absent, which is also how every earlier
/// build reads a record without them: records stay readable both ways
/// during a rolling upgrade, so the format keeps its version.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// [`SESSION_VERSION`] for sessions made by this build.
    #[serde(default)]
    pub version: u32,
    /// The user id apps see (SPEC 6.1; [`user_id_for`]): `oid` for Entra,
    /// `<connection>:<sub>` otherwise. Never the email. Ids of different
    /// connections are never equal.
    pub user_id: String,
    /// The ID token's `sub`.
    pub subject: String,
    /// Entra `tid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The connection that signed the user in.
    pub connection: String,
    /// The ID token's `iss`.
    pub issuer: String,
    /// The provider's session id (`sid`), for back-channel logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub email_trust: EmailTrust,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// Group ids as the provider gave them.
    #[serde(with = "shared_list")]
    pub groups: Vec<Shared>,
    /// App roles (the `roles` claim, SPEC 5.10), kept whether or not
    /// `extended_profile` is on. Added after version 2 with a default: a
    /// record written without it reads as no roles (compatible, no new
    /// version: a policy on roles refuses such a user until they sign in
    /// again, never the other way round).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "shared_list")]
    pub roles: Vec<Shared>,
    /// The SAML NameID, for SP-initiated single logout (its LogoutRequest
    /// repeats it exactly, with `sid` as the SessionIndex). Added after
    /// version 2 with a default (no new version: a record without it only
    /// skips the IdP's logout); boxed and absent for every other kind, so
    /// it costs a session one pointer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_name_id: Option<Box<SamlNameId>>,
    /// Extra claims, kept only with `extended_profile = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access or ID token expires, whichever is first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_expire_at: Option<u64>,
    pub created_at: u64,
    /// Absolute end: `created_at + lifetime`.
    pub expires_at: u64,
    /// The client address that signed in (`peer::client_address`: behind
    /// trusted proxies, the address they name), for the admin listing
    /// (issue 22 item 8). Added without a new version: older records read
    /// as unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<std::net::IpAddr>,
    /// Work derived from this session, kept with it (not part of its
    /// value: never stored, see [`Derived`]).
    #[serde(skip)]
    pub derived: Derived,
}

/// What is derived from a session and never stored: the identity headers
/// of the first route it is forwarded on (`headers::identity`, its only
/// user: a second kind of value would take the slot from it), made once
/// for as long as a store keeps this copy. Not part of the session's value:
/// never serialized, equal to any other, empty in a clone (a changed copy
/// renders again). Write `derived: Default::default()` when building a
/// session.
#[derive(Default)]
pub struct Derived(std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>);

impl Derived {
    /// What was set, if it is a `T`.
    pub(crate) fn get<T: 'static>(&self) -> Option<&T> {
        self.0.get().and_then(|b| b.downcast_ref())
    }

    /// Sets `value` unless something was set before; gives it back then
    /// (None: it was set).
    pub(crate) fn set<T: std::any::Any + Send + Sync>(&self, value: T) -> Option<T> {
        // The box given back is the one just made: always a `T`.
        let back = self.0.set(Box::new(value)).err()?;
        back.downcast::<T>().ok().map(|t| *t)
    }
}

impl Clone for Derived {
    fn clone(&self) -> Derived {
        Derived::default()
    }
}

impl PartialEq for Derived {
    fn eq(&self, _: &Derived) -> bool {
        true
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

/// Every field but the provider's tokens (`id_token`, `access_token`,
/// `refresh_token`: shown as `[redacted]` when present), so that no log
/// line or panic message that formats a session (or an error holding one,
/// `policy::Denied`) can carry a credential.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |t: &Option<String>| t.as_ref().map(|_| "[redacted]");
        f.debug_struct("Session")
            .field("version", &self.version)
            .field("user_id", &self.user_id)
            .field("subject", &self.subject)
            .field("tenant_id", &self.tenant_id)
            .field("connection", &self.connection)
            .field("issuer", &self.issuer)
            .field("sid", &self.sid)
            .field("email", &self.email)
            .field("email_trust", &self.email_trust)
            .field("name", &self.name)
            .field("preferred_username", &self.preferred_username)
            .field("groups", &self.groups)
            .field("roles", &self.roles)
            .field("saml_name_id", &self.saml_name_id)
            .field("claims", &self.claims)
            .field("id_token", &redacted(&self.id_token))
            .field("access_token", &redacted(&self.access_token))
            .field("refresh_token", &redacted(&self.refresh_token))
            .field("tokens_expire_at", &self.tokens_expire_at)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("client_addr", &self.client_addr)
            .finish()
    }
}

/// A SAML `NameID` as the IdP sent it (value and qualifiers), kept for
/// the LogoutRequest of SP-initiated single logout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlNameId {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_qualifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_name_qualifier: Option<String>,
}

/// How long a new session lives, and which provider tokens it keeps: the
/// terms of `Session::new`, which lives with the identity it consumes in
/// `crate::connection` (so this data model imports nothing of the seam).
#[derive(Debug, Clone, Copy)]
pub struct SessionTerms {
    pub created_at: u64,
    /// Absolute end (Unix seconds).
    pub expires_at: u64,
    /// Keep the access token (some route passes it upstream).
    pub keep_access_token: bool,
    /// Keep the refresh token (`session.refresh_tokens`).
    pub keep_refresh_token: bool,
}

impl Session {
    /// The email, only when it is trusted and one plain addr-spec
    /// ([`crate::email`]): an email that is not plain is no usable email,
    /// for policies and headers alike.
    pub fn verified_email(&self) -> Option<&str> {
        if self.email_trust.is_verified() {
            self.email.as_deref().filter(|e| crate::email::is_plain(e))
        } else {
            None
        }
    }

    /// The user's tenant as headers, the assertion, `/.auth/me` and
    /// `allow.tenants` present it: Entra's only ([`tenant_id_for`]), judged
    /// against the connection in force, so a session made before that rule
    /// (a partner's `tid` naming contoso's tenant) shows none either.
    pub fn tenant(&self, conn: &crate::config::ConnectionSettings) -> Option<&str> {
        tenant_id_for(conn, self.tenant_id.as_deref())
    }

    /// [`Session::verified_email`], unless its domain is one another
    /// connection owns (SPEC 6.1): what headers, the assertion and
    /// `/.auth/me` present as verified, checked against the configuration
    /// in force (a session made before a reload, or by an older build, is
    /// judged as one made now).
    pub fn vouched_email(&self, conn: &crate::config::ConnectionSettings) -> Option<&str> {
        let email = self.verified_email()?;
        if conn.domains_of_other_connections.is_empty() {
            return Some(email);
        }
        let domain = crate::email::parse(email)?;
        (!conn.domains_of_other_connections.contains(domain.domain())).then_some(email)
    }

    /// The provider's `preferred_username`, unless it names a domain
    /// another connection owns ([`crate::email::names_any_domain`]): Easy
    /// Auth's `X-MS-CLIENT-PRINCIPAL-NAME` (ASP.NET's `User.Identity.Name`)
    /// and the username headers carry it, and a partner's provider must not
    /// mint `alice@contoso.com` there for an app to take for contoso's
    /// Alice (SPEC 6.1). Judged against the configuration in force, as
    /// [`Session::vouched_email`].
    ///
    /// A username that names no domain (`alice`, `CORP\alice`) says whose
    /// account it is only within one directory: it is shown only from the
    /// connection that owns such names (the only LDAP directory, else the
    /// only connection other than Entra's:
    /// `ConnectionSettings::bare_usernames_are_ambiguous`); another
    /// connection's user who chose `alice` would read as the directory's
    /// Alice, so there only a username that is one plain address is shown
    /// (review 12).
    pub fn vouched_username(&self, conn: &crate::config::ConnectionSettings) -> Option<&str> {
        let username = self.preferred_username.as_deref()?;
        if conn.bare_usernames_are_ambiguous && !crate::email::is_plain(username) {
            return None;
        }
        vouched_text(username, conn)
    }

    /// The display `name`, by the rule of [`Session::vouched_username`]:
    /// a partner's user may name themselves `ceo@contoso.com`, and apps show
    /// (and some key on) the name headers and Easy Auth's `name` claim.
    pub fn vouched_name(&self, conn: &crate::config::ConnectionSettings) -> Option<&str> {
        vouched_text(self.name.as_deref()?, conn)
    }

    /// Stops vouching for an email of a domain another connection owns
    /// (its `home_realm_domains`; SPEC 6.1): policies already refuse it for
    /// `email_domains`/`users`, and headers, the signed assertion and
    /// `/.auth/me` must not present it as verified either, where an app
    /// would take a partner's `alice@contoso.com` for contoso's Alice
    /// (review 9). `owner_of` answers a domain's owning connection.
    pub fn disown_foreign_email<'a>(&mut self, owner_of: impl Fn(&str) -> Option<&'a str>) {
        let foreign = self
            .verified_email()
            .and_then(crate::email::parse)
            .and_then(|e| owner_of(e.domain()))
            .is_some_and(|owner| owner != self.connection);
        if foreign {
            self.email_trust = EmailTrust::Unverified;
        }
    }

    /// True when this build wrote the record (see [`SESSION_VERSION`]).
    pub fn is_current(&self) -> bool {
        self.version == SESSION_VERSION
    }
}

/// `text` (a username or display name the provider chose), unless it names
/// a domain another connection owns ([`crate::email::names_any_domain`]),
/// or, where some other connection owns domains, holds an `@` without
/// being one plain address: `alice@(x)contoso.com` and `alice@contoso .com`
/// read as contoso's to RFC 5322 parsers (Python's `parseaddr`, .NET's
/// `MailAddress`), and no list of such spellings is complete.
fn vouched_text<'a>(text: &'a str, conn: &crate::config::ConnectionSettings) -> Option<&'a str> {
    let owned = &conn.domains_of_other_connections;
    if owned.is_empty() {
        return Some(text);
    }
    let has_at = text.contains('@') || (!text.is_ascii() && crate::fold::fold(text).contains('@'));
    let refused =
        crate::email::names_any_domain(text, owned) || (has_at && !crate::email::is_plain(text));
    (!refused).then_some(text)
}

/// The user id of a user of `connection` (SPEC 6.1): Entra's `oid` as it is
/// (Microsoft issues it, unique across tenants; the same person through two
/// Entra connections is the same user), `<connection>:<sub>` for every other
/// kind. Connection names cannot contain `:` and an `oid` is a GUID, so ids
/// of different connections can never be equal. None when the claim the id
/// comes from is missing or empty.
pub fn user_id_for(
    connection: &crate::config::ConnectionSettings,
    sub: &str,
    oid: Option<&str>,
) -> Option<String> {
    if connection.is_entra() {
        oid.filter(|o| !o.is_empty()).map(str::to_string)
    } else if sub.is_empty() {
        None
    } else {
        Some(format!("{}:{sub}", connection.name))
    }
}

/// The tenant id a token's `tid` claim gives a user of `connection`: only
/// Entra's, whose issuer and tenant rules (`allowed_tenants`, the pinned
/// tenant) were checked against Microsoft's `tid` (SPEC 5.4). Any other
/// provider may put any text in a `tid` claim, contoso's tenant id
/// included; it would pass `allow.tenants` and reach apps as the user's
/// tenant (`X-Forwarded-Tenant`, Easy Auth's `tenantid`), so it gives none,
/// as its `sub` gives no bare user id (SPEC 6.1).
pub fn tenant_id_for<'a>(
    connection: &crate::config::ConnectionSettings,
    tid: Option<&'a str>,
) -> Option<&'a str> {
    tid.filter(|_| connection.is_entra())
}

/// A list of [`Shared`] strings as plain ones (JSON answers, tests).
pub fn strs(list: &[Shared]) -> Vec<&str> {
    list.iter().map(|x| &**x).collect()
}

/// Serde for a list of [`Shared`] strings: a JSON array of strings, as the
/// `Vec<String>` it replaced (records written by either read the same).
/// Serde's own `Arc` support needs its `rc` feature, which also changes
/// how every other `Arc` in the crate would serialize; this is all it takes.
mod shared_list {
    use std::fmt;

    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    use super::Shared;

    pub(super) fn serialize<S: Serializer>(list: &[Shared], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|x| &**x))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Shared>, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Vec<Shared>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Shared>, A::Error> {
                // Capped: the hint comes from the input.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
                while let Some(item) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    out.push(Shared::from(&*item));
                }
                Ok(out)
            }
        }
        d.deserialize_seq(List)
    }
}

#[cfg(test)]
mod tests;
