//! The serde mirror of the TOML file: close to what the operator wrote, no
//! meaning attached yet. Every table denies unknown keys; no `flatten` (it
//! disables `deny_unknown_fields`, serde-rs/serde#2283). Defaults are applied
//! in `validate`, so `None` here means "not written".

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub public_origin: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub proxy_protocol: Option<bool>,
    pub shutdown_grace: Option<String>,
    pub shutdown_delay: Option<String>,
    pub max_header_bytes: Option<u64>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub workers: Option<u64>,
    pub assertion_key: Option<PathBuf>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub hosts: Option<Vec<String>>,
}

/// One string or a list of strings (`redis_url`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub secrets: Option<Vec<String>>,
    pub secrets_file: Option<Vec<PathBuf>>,
    pub cookie_name: Option<String>,
    pub cookie_domain: Option<String>,
    pub lifetime: Option<String>,
    pub idle_timeout: Option<String>,
    pub store: Option<String>,
    pub memory_max_entries: Option<u64>,
    pub redis_url: Option<OneOrMany>,
    pub redis_url_file: Option<PathBuf>,
    pub redis_key_prefix: Option<String>,
    pub redis_cache_ttl: Option<String>,
    pub refresh_tokens: Option<bool>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
    /// Where audit events go: "stdout" (default), "stderr", "off", or an
    /// absolute file path (appended to, reopened on reload).
    pub audit: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUi {
    pub title: Option<String>,
    pub logo_url: Option<String>,
    pub accent_color: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    pub name: Option<String>,
    pub display_name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    // Entra
    pub tenant: Option<String>,
    pub allowed_tenants: Option<Vec<String>>,
    pub authority_host: Option<String>,
    pub graph_endpoint: Option<String>,
    // Generic OIDC
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    // Both
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub client_certificate_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub client_assertion_file: Option<PathBuf>,
    pub scopes: Option<Vec<String>>,
    pub home_realm_domains: Option<Vec<String>>,
    pub always_show_button: Option<bool>,
    /// `true`/`false` (OIDC, Entra) or a group mode (LDAP).
    pub groups: Option<RawGroups>,
    pub group_names: Option<BTreeMap<String, String>>,
    pub group_names_from_graph: Option<bool>,
    pub groups_in_headers: Option<String>,
    pub extended_profile: Option<bool>,
    pub trusted_email: Option<bool>,
    pub upstream_params: Option<BTreeMap<String, String>>,
    pub forward_params: Option<Vec<String>>,
    // SAML and WS-Fed (validated by src/saml/config.rs)
    pub idp_metadata_url: Option<String>,
    pub idp_metadata_file: Option<PathBuf>,
    pub idp_entity_id: Option<String>,
    pub idp_sso_url: Option<String>,
    pub idp_slo_url: Option<String>,
    pub idp_certificate_file: Option<PathBuf>,
    pub sp_entity_id: Option<String>,
    pub sp_key_file: Option<PathBuf>,
    pub sp_certificate_file: Option<PathBuf>,
    pub attributes: Option<BTreeMap<String, String>>,
    pub allow_idp_initiated: Option<bool>,
    pub require_signed: Option<String>,
    pub metadata_url: Option<String>,
    pub metadata_file: Option<PathBuf>,
    pub realm: Option<String>,
    // LDAP (SPEC 9)
    pub url: Option<OneOrMany>,
    pub start_tls: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    pub user_base: Option<String>,
    pub user_filter: Option<String>,
    pub bind_as: Option<String>,
    pub group_base: Option<String>,
    pub group_filter: Option<String>,
    pub group_name_attribute: Option<String>,
    pub password_change_url: Option<String>,
    pub timeout: Option<String>,
    pub max_failed_logins: Option<u64>,
    pub failure_window: Option<String>,
}

/// `groups`: a switch for OpenID Connect kinds, a mode for LDAP.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RawGroups {
    Switch(bool),
    Mode(String),
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    pub groups: Option<Vec<String>>,
    pub email_domains: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    pub tenants: Option<Vec<String>>,
    /// App roles (the `roles` claim), SPEC 5.10.
    pub roles: Option<Vec<String>>,
    /// Claim name -> allowed values (claims kept with `extended_profile`).
    pub claims: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub path_prefix: Option<String>,
    pub upstream: Option<String>,
    pub upstream_ca: Option<PathBuf>,
    pub connections: Option<Vec<String>>,
    pub public: Option<Vec<String>>,
    pub headers: Option<String>,
    pub headers_extra: Option<BTreeMap<String, String>>,
    pub pass_access_token: Option<bool>,
    pub pass_id_token: Option<bool>,
    pub jwt_assertion: Option<bool>,
    pub api_audiences: Option<Vec<String>>,
    pub preserve_host: Option<bool>,
    pub upstream_client: Option<String>,
    pub connect_timeout: Option<String>,
    pub request_timeout: Option<String>,
    /// `"required"` (default) or `"optional"` (SPEC 5.10).
    pub auth: Option<String>,
    /// oauth2-proxy's `/oauth2/*` endpoints as aliases of `/.auth/*` (issue 22).
    pub oauth2_proxy_endpoints: Option<bool>,
    pub allow: Option<RawAllow>,
}

/// The top-level tables and arrays of tables, for the unknown-key check.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "server",
    "admin",
    "session",
    "log",
    "ui",
    "connection",
    "route",
];

/// The keys a table struct accepts, read from serde itself (the error for an
/// unknown key lists them), so docs checks cannot drift from the structs.
#[cfg(test)]
pub fn field_names<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    use figment::providers::Serialized;
    let probe = Figment::from(Serialized::defaults(
        [("__probe__", 0)].into_iter().collect::<BTreeMap<_, _>>(),
    ));
    match probe.extract::<T>() {
        Err(e) => e
            .into_iter()
            .find_map(|e| match e.kind {
                figment::error::Kind::UnknownField(_, expected) => Some(expected.to_vec()),
                _ => None,
            })
            .unwrap_or_default(),
        Ok(_) => Vec::new(),
    }
}

#[cfg(test)]
use figment::Figment;

/// Every key of every table, for the `config.toml.example` check.
#[cfg(test)]
pub fn all_keys() -> Vec<&'static str> {
    let mut keys = Vec::new();
    keys.extend(field_names::<RawServer>());
    keys.extend(field_names::<RawTls>());
    keys.extend(field_names::<RawAdmin>());
    keys.extend(field_names::<RawSession>());
    keys.extend(field_names::<RawLog>());
    keys.extend(field_names::<RawUi>());
    keys.extend(field_names::<RawConnection>());
    keys.extend(field_names::<RawRoute>());
    keys.extend(field_names::<RawAllow>());
    keys
}
