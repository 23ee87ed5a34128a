//! Attribute mapping: which SAML attribute gives the user id, email, name,
//! username and groups (`attributes = { ... }`), with Entra ID's and AD
//! FS's claim URIs as defaults.

use std::collections::BTreeMap;

use super::response::Assertion;

const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";

/// Defaults per field, first present wins: Entra ID's claim URIs, AD FS's,
/// then the OIDs of eduPerson/inetOrgPerson (Shibboleth, Okta).
const DEFAULT_USER_ID: &[&str] = &["http://schemas.microsoft.com/identity/claims/objectidentifier"];
const DEFAULT_EMAIL: &[&str] = &[
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
];
const DEFAULT_NAME: &[&str] = &[
    "http://schemas.microsoft.com/identity/claims/displayname",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
];
const DEFAULT_USERNAME: &[&str] = &[
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "urn:oid:0.9.2342.19200300.100.1.1",
];
const DEFAULT_GROUPS: &[&str] = &[
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.xmlsoap.org/claims/Group",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
];

/// The fields `attributes` may map.
pub const FIELDS: &[&str] = &["user_id", "email", "name", "username", "groups"];

/// Attribute names per field; a configured field replaces its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeMap {
    user_id: Vec<String>,
    email: Vec<String>,
    name: Vec<String>,
    username: Vec<String>,
    groups: Vec<String>,
}

impl Default for AttributeMap {
    fn default() -> Self {
        let v = |d: &[&str]| d.iter().map(|s| s.to_string()).collect();
        AttributeMap {
            user_id: v(DEFAULT_USER_ID),
            email: v(DEFAULT_EMAIL),
            name: v(DEFAULT_NAME),
            username: v(DEFAULT_USERNAME),
            groups: v(DEFAULT_GROUPS),
        }
    }
}

impl AttributeMap {
    /// From the connection's `attributes` table; an unknown field is an
    /// error naming the fields that exist.
    pub fn from_config(map: &BTreeMap<String, String>) -> Result<AttributeMap, String> {
        let mut m = AttributeMap::default();
        for (field, attr) in map {
            if attr.trim().is_empty() {
                return Err(format!("attributes.{field} is empty"));
            }
            let slot = match field.as_str() {
                "user_id" => &mut m.user_id,
                "email" => &mut m.email,
                "name" => &mut m.name,
                "username" => &mut m.username,
                "groups" => &mut m.groups,
                other => {
                    return Err(format!(
                        "attributes.{other} is not a field (use {})",
                        FIELDS.join(", ")
                    ))
                }
            };
            *slot = vec![attr.clone()];
        }
        Ok(m)
    }

    /// True when `attributes.user_id` names an attribute other than the
    /// default: user ids then come from that attribute, never from the
    /// NameID, so `<connection>:<NameID>` names no session of the user (and
    /// may name the session of another user whose attribute equals it).
    pub fn maps_user_id(&self) -> bool {
        !self
            .user_id
            .iter()
            .map(String::as_str)
            .eq(DEFAULT_USER_ID.iter().copied())
    }

    /// The identity an assertion carries.
    pub fn identity(&self, a: &Assertion) -> Result<Identity, IdentityError> {
        let subject = match first(a, &self.user_id) {
            Some(values) => match values {
                [one] if !one.is_empty() => one.clone(),
                _ => return Err(IdentityError::AmbiguousUserId),
            },
            None if a.name_id_format.as_deref() == Some(PERSISTENT) && !a.name_id.is_empty() => {
                a.name_id.clone()
            }
            None => return Err(IdentityError::NoUserId),
        };
        let single = |names: &[String]| {
            first(a, names)
                .and_then(|v| v.first())
                .filter(|s| !s.is_empty())
                .cloned()
        };
        Ok(Identity {
            subject,
            email: single(&self.email),
            name: single(&self.name),
            username: single(&self.username),
            groups: first(a, &self.groups)
                .map(|v| v.iter().filter(|g| !g.is_empty()).cloned().collect())
                .unwrap_or_default(),
            session_index: a.session_index.clone(),
            name_id: a.name_id.clone(),
        })
    }
}

/// The values of the first of `names` the assertion carries.
fn first<'a>(a: &'a Assertion, names: &[String]) -> Option<&'a [String]> {
    names.iter().find_map(|n| {
        a.attributes
            .iter()
            .find(|(an, _)| an == n)
            .map(|(_, v)| v.as_slice())
    })
}

/// Who signed in, as the session needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The stable subject: the `user_id` attribute or a persistent NameID.
    /// The user id apps see is `<connection>:<subject>` (SPEC 6.1).
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    pub groups: Vec<String>,
    /// For single logout.
    pub session_index: Option<String>,
    pub name_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the SAML assertion has no user id: map attributes.user_id to a stable attribute, or have the IdP send a persistent NameID")]
    NoUserId,
    #[error("the SAML user id attribute does not hold exactly one non-empty value")]
    AmbiguousUserId,
}
