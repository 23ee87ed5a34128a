//! The keys of `type = "ldap"` connections (SPEC 9). Every problem names
//! its key.

use super::*;
use crate::ldap::{LdapAttributes, LdapGroups, LdapSettings};

/// Default `failure_window` and `max_failed_logins`: realmgate's limit
/// trips before a typical AD lockout threshold (often 10-50 in 30 min).
const DEFAULT_MAX_FAILED: u64 = 10;
const DEFAULT_FAILURE_WINDOW: &str = "15m";

/// Keys only the OpenID Connect kinds have.
pub(super) fn refuse_other_keys(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    raw: &RawConnection,
) {
    let other = [
        ("tenant", raw.tenant.is_some()),
        ("allowed_tenants", raw.allowed_tenants.is_some()),
        ("authority_host", raw.authority_host.is_some()),
        ("graph_endpoint", raw.graph_endpoint.is_some()),
        ("issuer", raw.issuer.is_some()),
        (
            "authorization_endpoint",
            raw.authorization_endpoint.is_some(),
        ),
        ("token_endpoint", raw.token_endpoint.is_some()),
        ("jwks_uri", raw.jwks_uri.is_some()),
        ("userinfo_endpoint", raw.userinfo_endpoint.is_some()),
        ("end_session_endpoint", raw.end_session_endpoint.is_some()),
        ("client_id", raw.client_id.is_some()),
        ("client_secret", raw.client_secret.is_some()),
        ("client_secret_file", raw.client_secret_file.is_some()),
        ("scopes", raw.scopes.is_some()),
        ("extended_profile", raw.extended_profile.is_some()),
        ("upstream_params", raw.upstream_params.is_some()),
        ("forward_params", raw.forward_params.is_some()),
    ];
    for (k, set) in other {
        if set {
            cx.bad(
                at(k),
                "is only for OpenID Connect connections (type = \"entra\" or \"oidc\")",
                "no such key on an LDAP connection (see docs/ldap.md for its keys)",
            );
        }
    }
}

/// LDAP keys on an OpenID Connect connection.
pub(super) fn refuse_ldap_keys(cx: &mut Ctx<'_>, at: &dyn Fn(&str) -> String, raw: &RawConnection) {
    let keys = [
        ("url", raw.url.is_some()),
        ("start_tls", raw.start_tls.is_some()),
        ("ca_file", raw.ca_file.is_some()),
        ("bind_dn", raw.bind_dn.is_some()),
        ("bind_password", raw.bind_password.is_some()),
        ("bind_password_file", raw.bind_password_file.is_some()),
        ("user_base", raw.user_base.is_some()),
        ("user_filter", raw.user_filter.is_some()),
        ("bind_as", raw.bind_as.is_some()),
        ("attributes", raw.attributes.is_some()),
        ("group_base", raw.group_base.is_some()),
        ("group_filter", raw.group_filter.is_some()),
        ("group_name_attribute", raw.group_name_attribute.is_some()),
        ("password_change_url", raw.password_change_url.is_some()),
        ("timeout", raw.timeout.is_some()),
        ("max_failed_logins", raw.max_failed_logins.is_some()),
        ("failure_window", raw.failure_window.is_some()),
    ];
    for (k, set) in keys {
        if set {
            cx.bad(
                at(k),
                "is only for type = \"ldap\"",
                "no such key on an OpenID Connect connection",
            );
        }
    }
}

/// `ConnectionSettings::groups`: the OIDC switch, or "an LDAP mode other
/// than none".
pub(super) fn groups_switch(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    raw: &RawConnection,
) -> bool {
    let is_ldap = raw.kind.as_deref() == Some("ldap");
    match (&raw.groups, is_ldap) {
        (None, _) => true,
        (Some(RawGroups::Switch(b)), false) => *b,
        (Some(RawGroups::Mode(m)), true) => m != "none",
        (Some(RawGroups::Mode(m)), false) => {
            cx.bad(
                at("groups"),
                format!("{m:?} is a group mode of LDAP connections"),
                "true or false",
            );
            true
        }
        (Some(RawGroups::Switch(_)), true) => {
            // Reported by `connection`.
            true
        }
    }
}

pub(super) fn connection(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    raw: &RawConnection,
) -> Option<LdapSettings> {
    let start_tls = raw.start_tls.unwrap_or(false);
    let texts: Vec<String> = match &raw.url {
        None => {
            cx.bad(at("url"), "is missing", "the directory's URL, such as \"ldaps://dc1.corp.contoso.com\", or a list of them tried in order");
            Vec::new()
        }
        Some(OneOrMany::One(u)) => vec![u.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
    };
    if raw.url.is_some() && texts.is_empty() {
        cx.bad(at("url"), "is empty", "at least one ldaps:// URL");
    }
    let mut urls = Vec::new();
    for (j, t) in texts.iter().enumerate() {
        let key = if texts.len() == 1 && matches!(raw.url, Some(OneOrMany::One(_))) {
            at("url")
        } else {
            at(&format!("url[{j}]"))
        };
        let Some(u) = cx.url(&key, t, &["ldaps", "ldap"]) else {
            continue;
        };
        if u.scheme() == "ldap" && !start_tls {
            cx.bad(
                key,
                format!("{t:?} is plain LDAP: passwords would cross the network in clear"),
                "an ldaps:// URL, or start_tls = true",
            );
            continue;
        }
        if u.path().len() > 1 || u.query().is_some() {
            cx.bad(
                key,
                format!("{t:?} has a path or query (an LDAP URL's DN, attributes or filter)"),
                "scheme, host and port only; the base goes in user_base",
            );
            continue;
        }
        urls.push(u);
    }
    if start_tls && !urls.is_empty() && urls.iter().all(|u| u.scheme() == "ldaps") {
        cx.bad(
            at("start_tls"),
            "is set but every URL is ldaps:// (TLS from the first byte)",
            "start_tls only with ldap:// URLs",
        );
    }
    let ca_file = raw.ca_file.as_ref().map(|p| cx.resolve(p));
    if let Some(p) = &ca_file {
        match read_bounded(p) {
            Ok(b) if String::from_utf8_lossy(&b).contains("-----BEGIN CERTIFICATE-----") => {}
            Ok(_) => cx.bad(
                at("ca_file"),
                format!("{} holds no PEM certificate", p.display()),
                "a PEM file with the CA certificate(s) that issued the directory's certificate",
            ),
            Err(e) => cx.bad(
                at("ca_file"),
                format!("cannot read {}: {e}", p.display()),
                "a readable PEM file",
            ),
        }
    }
    let bind_password = cx.secret(
        &at("bind_password"),
        raw.bind_password.as_deref(),
        raw.bind_password_file.as_deref(),
    );
    let bind_as = raw.bind_as.clone();
    let bind_dn = raw.bind_dn.clone().filter(|d| !d.trim().is_empty());
    if let Some(t) = &bind_as {
        if !t.contains("{login}") {
            cx.bad(
                at("bind_as"),
                format!("{t:?} does not contain {{login}}"),
                "\"{login}\" (the UPN as typed), or a template such as \"CORP\\\\{login}\"",
            );
        }
        if bind_dn.is_some() {
            cx.bad(at("bind_dn"), "is set together with bind_as", "either a search account (bind_dn, search-then-bind) or bind_as (direct bind), not both");
        }
    } else {
        if bind_dn.is_none() {
            cx.bad(at("bind_dn"), "is missing", "the search account's DN (search-then-bind), or bind_as = \"{login}\" for AD direct bind");
        }
        if bind_password.as_ref().is_none_or(|p| p.expose().is_empty()) && bind_dn.is_some() {
            cx.bad(at("bind_password_file"), "is missing or empty", "the search account's password in a file (an empty password would be an anonymous bind)");
        }
        if raw.user_base.as_deref().is_none_or(|b| b.trim().is_empty()) {
            cx.bad(
                at("user_base"),
                "is missing",
                "the DN under which users are searched, such as \"DC=corp,DC=contoso,DC=com\"",
            );
        }
        if raw.user_filter.is_none() {
            cx.bad(at("user_filter"), "is missing", "a filter with {login}, such as \"(&(objectClass=user)(userPrincipalName={login}))\"");
        }
    }
    if let Some(f) = &raw.user_filter {
        if !f.contains("{login}") {
            cx.bad(
                at("user_filter"),
                format!("{f:?} does not contain {{login}}"),
                "a filter with {login}, such as \"(uid={login})\"",
            );
        } else if !balanced(f) {
            cx.bad(
                at("user_filter"),
                format!("{f:?} is not one parenthesized filter"),
                "a filter such as \"(&(objectClass=user)(userPrincipalName={login}))\"",
            );
        }
    }
    let mut attrs = raw.attributes.clone().unwrap_or_default();
    for k in attrs.keys() {
        if !matches!(k.as_str(), "user_id" | "email" | "name" | "username") {
            cx.bad(
                at(&format!("attributes.{k}")),
                "is not an attribute realmgate fills",
                "user_id, email, name, username",
            );
        }
    }
    let mut take = |k: &str, d: &str| attrs.remove(k).unwrap_or_else(|| d.to_string());
    let attributes = LdapAttributes {
        user_id: take("user_id", "entryUUID"),
        email: take("email", "mail"),
        name: take("name", "displayName"),
        username: take("username", "uid"),
    };
    // An allow-list, not a list of names known to change: any other
    // attribute (`cn`, `displayName`, `employeeNumber`) may be one that
    // users or admins can set, and two entries with the same value would be
    // one user to every app (SPEC 6.1). These are assigned by the directory
    // server when an entry is made and never change.
    const IMMUTABLE_IDS: [&str; 4] = ["objectGUID", "entryUUID", "nsUniqueId", "ipaUniqueID"];
    if !IMMUTABLE_IDS
        .iter()
        .any(|id| attributes.user_id.eq_ignore_ascii_case(id))
    {
        cx.bad(
            at("attributes.user_id"),
            format!("{:?} is not an id the directory assigns once and never changes; a name users or admins can set would let two entries be one user (SPEC 6.1)", attributes.user_id),
            "\"objectGUID\" (Active Directory), \"entryUUID\" (OpenLDAP and most others), \"nsUniqueId\" (389 Directory Server) or \"ipaUniqueID\" (FreeIPA)",
        );
    }
    let group_base = raw.group_base.clone().filter(|b| !b.trim().is_empty());
    let group_filter = raw.group_filter.clone();
    let groups = match &raw.groups {
        None => LdapGroups::MemberOf {
            base: group_base.clone(),
        },
        Some(RawGroups::Switch(_)) => {
            cx.bad(
                at("groups"),
                "is true or false",
                "\"memberof\", \"memberof_chain\", \"search\" or \"none\"",
            );
            LdapGroups::None
        }
        Some(RawGroups::Mode(m)) => match m.as_str() {
            "memberof" => LdapGroups::MemberOf {
                base: group_base.clone(),
            },
            "memberof_chain" => match group_base.clone().or_else(|| raw.user_base.clone()) {
                Some(base) => LdapGroups::MemberOfChain { base },
                None => {
                    cx.bad(at("group_base"), "is missing (memberof_chain searches the groups)", "the DN under which groups are, such as \"OU=Groups,DC=corp,DC=contoso,DC=com\"");
                    LdapGroups::None
                }
            },
            "search" => {
                if group_base.is_none() {
                    cx.bad(
                        at("group_base"),
                        "is missing (groups = \"search\")",
                        "the DN under which groups are searched",
                    );
                }
                let filter = group_filter
                    .clone()
                    .unwrap_or_else(|| "(member={dn})".into());
                if !filter.contains("{dn}") || !balanced(&filter) {
                    cx.bad(
                        at("group_filter"),
                        format!("{filter:?} is not a filter with {{dn}}"),
                        "a filter such as \"(member={dn})\" or \"(uniqueMember={dn})\"",
                    );
                }
                LdapGroups::Search {
                    base: group_base.clone().unwrap_or_default(),
                    filter,
                }
            }
            "none" => LdapGroups::None,
            other => {
                cx.bad(
                    at("groups"),
                    format!("{other:?} is not a group mode"),
                    "\"memberof\", \"memberof_chain\", \"search\" or \"none\"",
                );
                LdapGroups::None
            }
        },
    };
    if group_filter.is_some() && !matches!(groups, LdapGroups::Search { .. }) {
        cx.bad(
            at("group_filter"),
            "is set but groups is not \"search\"",
            "groups = \"search\", or no group_filter",
        );
    }
    let password_change_url = raw
        .password_change_url
        .as_deref()
        .and_then(|u| cx.url(&at("password_change_url"), u, &["https", "http"]));
    let timeout = cx.duration(&at("timeout"), raw.timeout.as_deref(), "5s");
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        cx.bad(
            at("timeout"),
            format!("{timeout:?} is out of range"),
            "between 1s and 60s",
        );
    }
    let max = raw.max_failed_logins.unwrap_or(DEFAULT_MAX_FAILED);
    if max == 0 || max > 1000 {
        cx.bad(
            at("max_failed_logins"),
            format!("{max} is out of range"),
            "between 1 and 1000 (below the directory's own lockout threshold)",
        );
    }
    let failure_window = cx.duration(
        &at("failure_window"),
        raw.failure_window.as_deref(),
        DEFAULT_FAILURE_WINDOW,
    );
    if failure_window < Duration::from_secs(1) || failure_window > Duration::from_secs(24 * 3600) {
        cx.bad(
            at("failure_window"),
            format!("{failure_window:?} is out of range"),
            "between 1s and 24h",
        );
    }
    if urls.is_empty() {
        return None;
    }
    Some(LdapSettings {
        urls,
        start_tls,
        ca_file,
        bind_dn: if bind_as.is_some() { None } else { bind_dn },
        bind_password: if bind_as.is_some() {
            None
        } else {
            bind_password
        },
        user_base: raw.user_base.clone().filter(|b| !b.trim().is_empty()),
        user_filter: raw.user_filter.clone(),
        bind_as,
        attributes,
        groups,
        group_name_attribute: raw
            .group_name_attribute
            .clone()
            .unwrap_or_else(|| "cn".into()),
        password_change_url,
        timeout,
        max_failed_logins: u32::try_from(max).unwrap_or(u32::MAX),
        failure_window,
    })
}

/// True when `f`, with its placeholders filled with a plain value, is
/// one LDAP filter as ldap3 (which sends it) parses it.
fn balanced(f: &str) -> bool {
    let f = f.replace("{login}", "x").replace("{dn}", "cn=x");
    ldap3::parse_filter(f.trim()).is_ok()
}
