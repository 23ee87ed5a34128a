//! A `type = "ldap"` connection's settings (SPEC 9), validated by
//! `config::validate` (module `ldap` there).

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapSettings {
    /// `ldaps://` or (with `start_tls`) `ldap://` URLs, tried in order.
    pub urls: Vec<Url>,
    /// StartTLS on `ldap://` URLs (required for them).
    pub start_tls: bool,
    /// CA certificates (PEM) that replace the system roots.
    pub ca_file: Option<PathBuf>,
    /// The search account; None with `bind_as` (direct bind).
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    /// Where users are searched (`user_filter`), or, with `bind_as`, where
    /// the bound user's entry is looked up (default: the rootDSE's
    /// `defaultNamingContext`).
    pub user_base: Option<String>,
    /// Contains `{login}` (RFC 4515-escaped at use).
    pub user_filter: Option<String>,
    /// AD direct bind: the bind name with `{login}` (`{login}` alone: the
    /// UPN as typed; in a DN template it is RFC 4514-escaped).
    pub bind_as: Option<String>,
    pub attributes: LdapAttributes,
    pub groups: LdapGroups,
    pub group_name_attribute: String,
    pub password_change_url: Option<Url>,
    /// Per connection attempt and per operation.
    pub timeout: Duration,
    /// Failed sign-ins per login name, and per client address, within
    /// `failure_window`, after which the form refuses that login.
    pub max_failed_logins: u32,
    pub failure_window: Duration,
}

/// Which directory attributes fill the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapAttributes {
    /// `objectGUID` (AD, binary) or `entryUUID` (OpenLDAP).
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub username: String,
}

/// How the user's groups are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapGroups {
    /// The user entry's `memberOf` values (direct groups); with a
    /// `group_base`, only groups under it (a group of the same name made in
    /// another OU is not the one a policy names).
    MemberOf {
        base: Option<String>,
    },
    /// AD's transitive groups: a search with LDAP_MATCHING_RULE_IN_CHAIN.
    MemberOfChain {
        base: String,
    },
    /// A search under `base` with `filter` (`{dn}`: the user's DN, escaped).
    Search {
        base: String,
        filter: String,
    },
    None,
}
