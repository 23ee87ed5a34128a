//! The validated configuration. Only these types reach the server: every value
//! here has been parsed and checked by `config::validate`, so the rest of the
//! gateway never re-validates (parse, don't validate).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use url::Url;

/// Everything realmgate runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub admin: AdminSettings,
    pub session: SessionSettings,
    pub log: LogSettings,
    pub ui: UiSettings,
    /// In file order; names are unique.
    pub connections: Vec<Arc<ConnectionSettings>>,
    /// In file order; (host, path_prefix) pairs are unique.
    pub routes: Vec<Arc<RouteSettings>>,
}

impl Settings {
    /// The connection called `name`.
    pub fn connection(&self, name: &str) -> Option<&Arc<ConnectionSettings>> {
        self.connections.iter().find(|c| c.name == name)
    }

    /// The connection whose `home_realm_domains` hold `domain` (lowercase,
    /// A-label form), if any: unique across connections (validated).
    pub fn domain_owner(&self, domain: &str) -> Option<&str> {
        self.connections
            .iter()
            .find(|c| c.home_realm_domains.iter().any(|d| d == domain))
            .map(|c| c.name.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Set only when every route is reached through one external origin.
    pub public_origin: Option<Url>,
    /// Peers whose X-Forwarded-For/-Proto/-Host (and X-Request-Id) are believed.
    pub trusted_proxies: Vec<IpNet>,
    pub proxy_protocol: bool,
    pub shutdown_grace: Duration,
    /// On SIGTERM, how long the listener keeps accepting (and serving) with
    /// `/.auth/health` and `/readyz` at 503, so load balancers stop sending
    /// before it closes. Then the drain (`shutdown_grace`) begins.
    pub shutdown_delay: Duration,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    /// How long an idle keep-alive client connection is kept open.
    pub idle_timeout: Duration,
    /// Proxy threads, each with its own event loop and upstream pools
    /// (`workers = 0` in the file: one per available CPU core). Read at start only.
    pub workers: usize,
    pub tls: Option<TlsSettings>,
    /// Signs `X-Realmgate-Assertion` (and `X-Pomerium-Jwt-Assertion`); its
    /// public half is served at `/.auth/keys`. Read at load and on SIGHUP.
    pub assertion_key: Option<Arc<super::assertion_key::AssertionKey>>,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain, re-read on SIGHUP.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), re-read on SIGHUP.
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// `[admin] token` / `token_file`: when set, `/metrics` and `/sessions/*`
    /// need `Authorization: Bearer <token>` (SPEC 6.1). Visible ASCII, at
    /// least [`crate::config::MIN_ADMIN_TOKEN_BYTES`] bytes; re-read on SIGHUP.
    pub token: Option<Secret>,
    /// `[admin] hosts`: names (lowercase, A-label, no port) that may reach
    /// `/metrics` and `/sessions/*` without a token, besides IP addresses and
    /// `localhost` (DNS rebinding defence).
    pub hosts: Vec<String>,
}

impl AdminSettings {
    /// True when the admin listener is reachable from other machines and no
    /// token protects it: `check` warns, `run` logs a warning.
    pub fn exposed_without_token(&self) -> bool {
        self.token.is_none() && !self.listen.ip().is_loopback()
    }
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The first secret signs; every secret verifies (rotation: `[new, old]`).
    pub secrets: Vec<Secret>,
    pub cookie_name: String,
    pub cookie_domain: Option<String>,
    pub lifetime: Duration,
    pub idle_timeout: Duration,
    pub store: StoreSettings,
    pub refresh_tokens: bool,
}

#[derive(Debug, Clone)]
pub enum StoreSettings {
    Memory {
        max_entries: u64,
    },
    Redis {
        /// One URL, or the seed nodes of a Redis Cluster.
        urls: Vec<String>,
        /// `redis_url` was a list: Redis Cluster.
        cluster: bool,
        key_prefix: String,
        /// How long a replica may answer from its local cache (zero: never).
        cache_ttl: Duration,
    },
}

pub use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing-subscriber filter directive such as `info` or `realmgate=debug`.
    pub level: String,
    /// Where the audit trail goes (`crate::audit`).
    pub audit: crate::audit::AuditSink,
}

/// Branding of the login and error pages.
#[derive(Debug, Clone)]
pub struct UiSettings {
    pub title: String,
    pub logo_url: Option<String>,
    /// A CSS colour: `#rgb` or `#rrggbb`.
    pub accent_color: String,
}

/// oauth2-proxy's redirect URI path: the callback of OpenID Connect
/// sign-ins on routes with `oauth2_proxy_endpoints` (`endpoints::oauth2`).
pub const OAUTH2_PROXY_CALLBACK: &str = "/oauth2/callback";

// Built once per config load and kept behind an Arc: the size difference
// between the variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionKind {
    Entra(EntraSettings),
    Oidc(OidcSettings),
    /// LDAP or Active Directory behind realmgate's password form (SPEC 9).
    Ldap(Box<crate::ldap::settings::LdapSettings>),
    /// SAML 2.0 Web Browser SSO (SPEC 9, `crate::saml`).
    Saml(Arc<crate::saml::config::SamlSettings>),
    /// WS-Federation passive (SPEC 9, `crate::saml::wsfed`).
    WsFed(Arc<crate::saml::config::SamlSettings>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraSettings {
    /// Tenant domain or id, or `common` / `organizations`.
    pub tenant: String,
    /// Which `tid` values are accepted.
    pub allowed_tenants: TenantAllowList,
    /// e.g. `https://login.microsoftonline.com` (no trailing slash).
    pub authority_host: Url,
    pub graph_endpoint: Url,
}

impl EntraSettings {
    /// True for `common` and `organizations`: the issuer is a `{tenantid}` template.
    pub fn is_multi_tenant(&self) -> bool {
        matches!(
            self.tenant.to_ascii_lowercase().as_str(),
            "common" | "organizations" | "consumers"
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantAllowList {
    /// Single-tenant connection: the tenant's own id, learned from discovery.
    Pinned,
    /// `allowed_tenants = ["*"]`: any tenant (written explicitly by the operator).
    Any,
    /// Tenant ids (lowercased GUIDs).
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// Discovery at issuer + `/.well-known/openid-configuration`, unless `endpoints` is set.
    pub issuer: Url,
    /// Set when the provider has no discovery document.
    pub endpoints: Option<ManualEndpoints>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualEndpoints {
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    pub userinfo_endpoint: Option<Url>,
    pub end_session_endpoint: Option<Url>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupsInHeaders {
    All,
    Known,
}

#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Unique; appears in URLs (`/.auth/login/{name}`) and logs.
    pub name: String,
    pub display_name: String,
    pub kind: ConnectionKind,
    pub client_id: String,
    /// How the connection authenticates at the token endpoint (SPEC 5.10);
    /// `None` for a public client.
    pub credential: Option<crate::connection::credential::ClientCredential>,
    pub scopes: Vec<String>,
    /// Lowercased, IDNA-normalized (punycode) domains, unique across connections.
    pub home_realm_domains: Vec<String>,
    pub always_show_button: bool,
    pub groups: bool,
    /// group id -> display name.
    pub group_names: HashMap<String, String>,
    /// The display names other connections' `group_names` give, and the ids
    /// they map (but not another Entra connection's ids to an Entra
    /// connection), as `fold` reads them: a raw group value of this
    /// connection (or a name Graph gives it) that reads as one of them is
    /// left out of headers, where it would look like that connection's
    /// group to the app (SPEC 6.1, review 9, review 11).
    pub names_of_other_connections: std::collections::HashSet<String>,
    /// The names and ids this connection's own `group_names` maps, as
    /// `fold` reads them: a group value or Graph display name that reads as
    /// one of them is not shown ([`ConnectionSettings::reads_as_a_mapped_name`]).
    pub own_names_folded: std::collections::HashSet<String>,
    /// The `home_realm_domains` of every other connection: an email of one
    /// of them is not this connection's to vouch for (SPEC 6.1), in
    /// headers, the assertion and `/.auth/me` alike
    /// (`Session::vouched_email`), whenever the session was made.
    pub domains_of_other_connections: std::collections::HashSet<String>,
    /// Another connection of the configuration is not Entra's, so it may
    /// issue usernames that name no domain (`alice`, as an LDAP directory's
    /// `sAMAccountName` or a partner's self-chosen username, or a down-level
    /// `CORP\alice`), and this connection does not own such names: its
    /// bare usernames could be that connection's user's too, and apps read
    /// them as the user's name (`Session::vouched_username`, review 12).
    /// The owner is the one LDAP connection when there is exactly one,
    /// else the one connection other than Entra's when there is one.
    pub bare_usernames_are_ambiguous: bool,
    /// Names of groups `group_names` does not map are read from Microsoft
    /// Graph (Entra only, SPEC 5.10).
    pub group_names_from_graph: bool,
    pub groups_in_headers: GroupsInHeaders,
    pub extended_profile: bool,
    pub trusted_email: bool,
    /// Added to every authorization request.
    pub upstream_params: Vec<(String, String)>,
    /// Query parameters `/.auth/login?…` may pass through to the provider.
    pub forward_params: Vec<String>,
}

impl ConnectionSettings {
    /// True when `text` (a group value or name this connection does not
    /// map) reads, as lenient comparers read it (`fold`: case, width,
    /// marks, invisible code points), as a name or id that some connection
    /// maps in `group_names`: another connection's (SPEC 6.1), or this
    /// one's own, whose group the policy would not take it for (a mapped
    /// name matches through the mapping only; review 12). Shown anywhere,
    /// it would look like that group to the app.
    pub fn reads_as_a_mapped_name(&self, text: &str) -> bool {
        if self.names_of_other_connections.is_empty() && self.own_names_folded.is_empty() {
            return false;
        }
        let folded = crate::fold::fold(text.trim());
        self.names_of_other_connections.contains(&folded) || self.own_names_folded.contains(&folded)
    }

    /// The issuer the discovery document is fetched from (Entra: `{authority}/{tenant}/v2.0`).
    pub fn issuer_url(&self) -> Url {
        match &self.kind {
            ConnectionKind::Entra(e) => {
                let base = e.authority_host.as_str().trim_end_matches('/');
                Url::parse(&format!("{base}/{}/v2.0", e.tenant))
                    .expect("authority_host was validated as a base URL")
            }
            ConnectionKind::Oidc(o) => o.issuer.clone(),
            // Not an OpenID provider: the first directory URL (no caller
            // asks an LDAP connection for its issuer; `is_ldap` comes first).
            ConnectionKind::Ldap(l) => l
                .urls
                .first()
                .cloned()
                .unwrap_or_else(|| Url::parse("ldaps://invalid").expect("a constant URL")),
            // Not an OpenID provider either (`is_oidc` comes first).
            ConnectionKind::Saml(_) | ConnectionKind::WsFed(_) => {
                Url::parse("https://invalid").expect("a constant URL")
            }
        }
    }

    /// The discovery document URL.
    pub fn discovery_url(&self) -> Url {
        let issuer = self.issuer_url();
        let base = issuer.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/.well-known/openid-configuration"))
            .expect("issuer was validated as a URL")
    }

    /// The front-channel logout path of `connection` (SPEC 5.10), printed by
    /// `check` for registration and served by `endpoints::frontchannel`.
    pub fn frontchannel_path(connection: &str) -> String {
        format!("/.auth/logout/frontchannel/{connection}")
    }

    /// The redirect URI path for this connection (on routes with
    /// `oauth2_proxy_endpoints`, OpenID Connect kinds use
    /// [`OAUTH2_PROXY_CALLBACK`] instead).
    pub fn callback_path(&self) -> String {
        format!("/.auth/login/{}/callback", self.name)
    }

    pub fn is_entra(&self) -> bool {
        matches!(self.kind, ConnectionKind::Entra(_))
    }

    /// A `type = "ldap"` connection: realmgate's password form, no OpenID provider.
    pub fn is_ldap(&self) -> bool {
        matches!(self.kind, ConnectionKind::Ldap(_))
    }

    /// An OpenID Connect kind (`entra`, `oidc`): one with a provider client.
    pub fn is_oidc(&self) -> bool {
        matches!(
            self.kind,
            ConnectionKind::Entra(_) | ConnectionKind::Oidc(_)
        )
    }

    /// The settings of a `type = "saml"` or `"wsfed"` connection.
    pub fn saml(&self) -> Option<&Arc<crate::saml::config::SamlSettings>> {
        match &self.kind {
            ConnectionKind::Saml(s) | ConnectionKind::WsFed(s) => Some(s),
            _ => None,
        }
    }
}

/// Which identity headers a route sends upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProfile {
    Forwarded,
    AuthRequest,
    EasyAuth,
    Remote,
    Pomerium,
    OidcClaim,
    None,
}

/// Whether a route needs a signed-in user (`auth`, SPEC 5.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteAuth {
    /// Every request not on a public path needs a session (or token).
    #[default]
    Required,
    /// Anonymous requests are forwarded without identity headers; signed-in
    /// ones with them. An invalid bearer token is still refused.
    Optional,
}

/// Which client sends a route's requests upstream (`upstream_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamClient {
    /// realmgate's own HTTP/1.1 exchange for plain `http://` upstreams
    /// (requests without a body), hyper for the rest (`proxy::exchange`).
    Auto,
    /// hyper-util's pooled client for every request of the route: for an
    /// upstream that misbehaves with realmgate's own exchange.
    Hyper,
}

#[derive(Debug, Clone, Default)]
pub struct AllowSettings {
    /// Any of these group ids or mapped names, as written (for `check` and
    /// `explain`); the policy matches `group_rules`.
    pub groups: Vec<String>,
    /// `groups`, scoped to connections (SPEC 6.1), in the same order.
    pub group_rules: Vec<ScopedValue>,
    /// Lowercased, IDNA-normalized.
    pub email_domains: Vec<String>,
    /// Plain emails (lowercased, host in A-label form) from `allow.users`.
    pub users: Vec<String>,
    /// User ids from `allow.users` (an Entra `oid`, or `<connection>:<id>`).
    pub user_ids: Vec<ScopedValue>,
    /// Tenant ids.
    pub tenants: Vec<String>,
    /// Any of these app roles (the `roles` claim), as written; the policy
    /// matches `role_rules` (SPEC 5.10).
    pub roles: Vec<String>,
    /// `roles`, scoped to connections (SPEC 6.1), in the same order.
    pub role_rules: Vec<ScopedValue>,
    /// `allow.claims`: claim name -> any of these values (as written, and
    /// scoped), every named claim must match. Sorted by claim name.
    pub claims: Vec<ClaimRule>,
    /// Every connection's home realm domains -> that connection (SPEC 6.1:
    /// an email of an owned domain counts only from its owner). Filled only
    /// when `email_domains` or `users` is set.
    pub domain_owners: HashMap<String, String>,
}

impl AllowSettings {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
            && self.email_domains.is_empty()
            && self.users.is_empty()
            && self.user_ids.is_empty()
            && self.tenants.is_empty()
            && self.roles.is_empty()
            && self.claims.is_empty()
    }
}

/// One `allow.claims` entry: the session's claim `name` (kept with
/// `extended_profile`) must hold one of `values` (a string, or an array of
/// strings one of which matches; exact, case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    pub name: String,
    /// As written (for `check` and `explain`).
    pub values: Vec<String>,
    /// `values`, scoped to connections (SPEC 6.1).
    pub rules: Vec<ScopedValue>,
}

/// One entry of a value list of `[route.allow]` (`groups`; later `roles`,
/// `claims`, and user ids), scoped as SPEC 6.1 says. Built by
/// `config::validate`; matched by `policy::entry_matches`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedValue {
    /// The connections whose users it can match; None: every connection
    /// the route allows.
    pub connections: Option<Vec<String>>,
    /// The value to match (without its `<connection>:` prefix).
    pub value: String,
    /// How a user's value is compared with it.
    pub by: MatchBy,
}

/// How a [`ScopedValue`] compares with a user's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchBy {
    /// The value as the provider sent it.
    Value,
    /// The name the user's connection's `group_names` gives the value only
    /// (a bare entry that is a name there: a raw value that happens to read
    /// like the name is not that group).
    Name,
    /// Either (`<connection>:<id or name>`).
    ValueOrName,
}

#[derive(Debug, Clone)]
pub struct RouteSettings {
    pub name: String,
    /// Lowercased host names without port.
    pub hosts: Vec<String>,
    /// Starts and, unless it is `/`, does not end with `/`... it is kept as written
    /// after validation: it always starts with `/`.
    pub path_prefix: String,
    /// `http` or `https` origin, possibly with a base path.
    pub upstream: Url,
    pub upstream_ca: Option<PathBuf>,
    /// Names of the connections that may sign in here (all when the key is absent).
    pub connections: Vec<String>,
    /// Path prefixes served without sign-in, matched on the normalized path.
    pub public: Vec<String>,
    pub headers: HeaderProfile,
    /// Header name -> claim path such as `claims.employeeid`.
    pub headers_extra: Vec<(HeaderName, String)>,
    pub pass_access_token: bool,
    pub pass_id_token: bool,
    pub jwt_assertion: bool,
    pub api_audiences: Vec<String>,
    pub preserve_host: bool,
    pub upstream_client: UpstreamClient,
    pub connect_timeout: Duration,
    /// Time to the upstream's response headers.
    pub request_timeout: Duration,
    /// `auth`: `required` (the default) or `optional`.
    pub auth: RouteAuth,
    /// `oauth2_proxy_endpoints`: `/oauth2/*` on this route is realmgate's
    /// (oauth2-proxy's endpoint names, `endpoints::oauth2`), not the app's.
    pub oauth2_proxy_endpoints: bool,
    pub allow: AllowSettings,
}

impl RouteSettings {
    /// True when this route sends a signed assertion (`jwt_assertion`, or
    /// the `pomerium` profile's `X-Pomerium-Jwt-Assertion`).
    pub fn sends_assertion(&self) -> bool {
        self.jwt_assertion || self.headers == HeaderProfile::Pomerium
    }
}
