//! The human summary `realmgate check` prints, and the callback URLs to
//! register at each provider.

use std::fmt::Write;

use super::{
    ConnectionKind, ConnectionSettings, RouteSettings, Settings, StoreSettings, TenantAllowList,
};
use crate::connection::credential::{ClientCredential, EXPIRY_WARNING_SECS};

/// Every (connection, callback URL) pair an operator must register, in order.
///
/// The URL's origin is `server.public_origin` when set. Otherwise it is each
/// host of each route that allows the connection, with `https` (realmgate or a
/// load balancer in front of it terminates TLS), except for `localhost` and
/// loopback addresses, which get `http` and the listen port (development).
pub fn callback_urls(settings: &Settings) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    // LDAP connections have no redirect URI (the password form is realmgate's).
    for conn in settings.connections.iter().filter(|c| !c.is_ldap()) {
        let own = conn.callback_path();
        // oauth2-proxy's redirect URI on routes with `oauth2_proxy_endpoints`.
        let path_on = |r: &crate::config::RouteSettings| {
            if r.oauth2_proxy_endpoints && conn.is_oidc() {
                super::OAUTH2_PROXY_CALLBACK.to_string()
            } else {
                own.clone()
            }
        };
        let mut push = |url: String| {
            if !out.iter().any(|(c, u)| *c == conn.name && *u == url) {
                out.push((conn.name.clone(), url));
            }
        };
        let mut allowed = false;
        for route in allowing(settings, conn) {
            allowed = true;
            let path = path_on(route);
            for origin in route_origins(settings, route) {
                push(format!("{origin}{path}"));
            }
        }
        if let Some(origin) = &settings.server.public_origin {
            if !allowed {
                push(format!("{}{own}", origin.as_str().trim_end_matches('/')));
            }
        }
    }
    out
}

/// The routes where `conn` may sign users in.
fn allowing<'a>(
    settings: &'a Settings,
    conn: &'a ConnectionSettings,
) -> impl Iterator<Item = &'a RouteSettings> {
    settings
        .routes
        .iter()
        .filter(|r| r.connections.contains(&conn.name))
        .map(|r| &**r)
}

/// The origins users reach `route` at, as an operator registers them:
/// `server.public_origin` when set; else each host with `https` (realmgate
/// or a load balancer in front of it terminates TLS), except `localhost`
/// and loopback addresses, which get the listen port, and `http` without
/// `[server.tls]` (development).
fn route_origins(settings: &Settings, route: &RouteSettings) -> Vec<String> {
    if let Some(origin) = &settings.server.public_origin {
        return vec![origin.as_str().trim_end_matches('/').to_string()];
    }
    let port = settings.server.listen.port();
    let tls = settings.server.tls.is_some();
    route
        .hosts
        .iter()
        .map(|host| {
            let local = host == "localhost"
                || host.ends_with(".localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            match (local, tls) {
                (true, false) => format!("http://{}:{port}", bracket(host)),
                (true, true) if port != 443 => format!("https://{}:{port}", bracket(host)),
                _ => format!("https://{}", bracket(host)),
            }
        })
        .collect()
}

/// The password form of an LDAP connection on every origin of every route
/// that allows it (`GET /.auth/login/<name>`), in order, without repeats.
fn sign_in_form_urls(settings: &Settings, conn: &ConnectionSettings) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for route in allowing(settings, conn) {
        for origin in route_origins(settings, route) {
            let url = format!("{origin}/.auth/login/{}", conn.name);
            if !out.contains(&url) {
                out.push(url);
            }
        }
    }
    out
}

/// What `check` prints for an LDAP connection: the directory, how users
/// bind, and where the sign-in form is. Nothing is registered at any
/// provider: the form is realmgate's own, so there is no redirect URI.
fn ldap_lines(
    settings: &Settings,
    conn: &ConnectionSettings,
    l: &crate::ldap::LdapSettings,
) -> Vec<String> {
    let urls: Vec<&str> = l.urls.iter().map(|u| u.as_str()).collect();
    let mut notes = Vec::new();
    if urls.len() > 1 {
        notes.push("tried in order");
    }
    if l.start_tls {
        notes.push("StartTLS");
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    };
    let mut lines = vec![format!("directory: {}{notes}", urls.join(", "))];
    lines.push(match (&l.bind_as, &l.bind_dn) {
        (Some(template), _) => format!("bind: direct bind as {template}"),
        (None, Some(dn)) => format!("bind: search-then-bind (search account {dn})"),
        (None, None) => "bind: search-then-bind".to_string(),
    });
    let forms = sign_in_form_urls(settings, conn);
    if forms.is_empty() {
        lines.push("sign-in form: (none: no route allows this connection)".to_string());
    } else {
        lines.push("sign-in form:".to_string());
        lines.extend(forms.into_iter().map(|u| format!("  {u}")));
    }
    lines.push(
        "redirect URI to register: none anywhere (realmgate serves the password form itself)"
            .to_string(),
    );
    lines
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// What is valid but probably a mistake; `check` prints each on a line
/// starting with `Warning:` (and `run` logs the admin one at start).
pub fn warnings(settings: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    if settings.admin.exposed_without_token() {
        out.push(format!(
            "[admin] listen = \"{}\" is not a loopback address and no [admin] token_file is set: \
             anyone who can reach that port can read /metrics and end sessions with POST /sessions/revoke. \
             Set [admin] token_file (or token) to a random token of at least {} characters, \
             or listen on 127.0.0.1.",
            settings.admin.listen,
            super::MIN_ADMIN_TOKEN_BYTES
        ));
    }
    // A `headers_extra` source realmgate does not know, or a claim no
    // connection of the route keeps, sends nothing: most likely a typo.
    for r in &settings.routes {
        for (header, source) in &r.headers_extra {
            let claim = source.strip_prefix("claims.");
            if claim.is_none()
                && !crate::headers::identity::EXTRA_SOURCES.contains(&source.as_str())
            {
                out.push(format!(
                    "route {:?}: headers_extra {header} = {source:?} is not a source realmgate knows, so that header is never sent; use one of {} or \"claims.<name>\"",
                    r.name,
                    crate::headers::identity::EXTRA_SOURCES.join(", ")
                ));
            } else if claim.is_some()
                && !settings
                    .connections
                    .iter()
                    .any(|c| c.extended_profile && r.connections.contains(&c.name))
            {
                out.push(format!(
                    "route {:?}: headers_extra {header} = {source:?} reads a claim, but no connection of the route keeps claims; set extended_profile = true on the connection, or that header is never sent",
                    r.name
                ));
            }
        }
    }
    // A cookie for a domain that does not cover a route's host is dropped
    // by browsers there (RFC 6265 5.3 step 6): sign-in loops on that host.
    if let Some(domain) = &settings.session.cookie_domain {
        let bare = domain.trim_start_matches('.');
        for r in &settings.routes {
            for h in &r.hosts {
                if h != bare && !h.ends_with(&format!(".{bare}")) {
                    out.push(format!(
                        "route {:?}: host {h:?} is not within session.cookie_domain {domain:?}: browsers drop the session cookie there, and sign-in on that host never sticks. Set cookie_domain to a parent of every route host, or serve that host from another gateway.",
                        r.name
                    ));
                }
            }
        }
    }
    // A SAML or WS-Fed connection whose files cannot be read or parsed
    // starts all the same (it is retried at each sign-in), but every
    // sign-in answers 503 until they can.
    for c in &settings.connections {
        if let Some(s) = c.saml() {
            if let Err(e) = crate::saml::signin::check_local_files(&c.name, s) {
                out.push(format!(
                    "connection {:?}: {e}: every sign-in of this connection answers 503 until the file can be read and parsed (metadata XML without a DTD, PEM key and certificate)",
                    c.name
                ));
            }
        }
    }
    // The provider's keys decide who is signed in: fetched over plain
    // http from another host, anyone on the path can serve their own JWKS
    // (SAML and WS-Fed metadata URLs are refused so; review 13, H3).
    for c in &settings.connections {
        let urls: Vec<(&str, &url::Url)> = match &c.kind {
            ConnectionKind::Oidc(o) => {
                let mut urls = vec![("issuer", &o.issuer)];
                if let Some(m) = &o.endpoints {
                    urls.extend([
                        ("authorization_endpoint", &m.authorization_endpoint),
                        ("token_endpoint", &m.token_endpoint),
                        ("jwks_uri", &m.jwks_uri),
                    ]);
                    urls.extend(m.userinfo_endpoint.iter().map(|u| ("userinfo_endpoint", u)));
                    urls.extend(
                        m.end_session_endpoint
                            .iter()
                            .map(|u| ("end_session_endpoint", u)),
                    );
                }
                urls
            }
            ConnectionKind::Entra(e) => vec![
                ("authority_host", &e.authority_host),
                ("graph_endpoint", &e.graph_endpoint),
            ],
            ConnectionKind::Ldap(_) | ConnectionKind::Saml(_) | ConnectionKind::WsFed(_) => {
                Vec::new()
            }
        };
        for (key, url) in urls {
            if url.scheme() == "http" && !crate::saml::config::is_loopback(url) {
                out.push(format!(
                    "connection {:?}: {key} = \"{url}\" is plain http to another host: discovery, the provider's keys (which decide who is signed in), the client secret and the tokens cross the network in clear, and anyone on the path can sign in as anyone. Use https://.",
                    c.name
                ));
            }
        }
    }
    // `allowed_tenants` only narrows a multi-tenant connection: a
    // single-tenant one takes its own tenant's tokens only (review 12), so
    // a list there admits nobody else, and nobody at all without its tenant.
    for c in &settings.connections {
        let ConnectionKind::Entra(e) = &c.kind else {
            continue;
        };
        let TenantAllowList::List(list) = &e.allowed_tenants else {
            if e.allowed_tenants == TenantAllowList::Any && !e.is_multi_tenant() {
                out.push(format!(
                    "connection {:?}: allowed_tenants = [\"*\"] does not open the single-tenant connection (tenant = {:?}) to other tenants: only its own users sign in. For users of other tenants, use tenant = \"organizations\" with allowed_tenants listing them.",
                    c.name, e.tenant
                ));
            }
            continue;
        };
        if e.is_multi_tenant() {
            continue;
        }
        let own = e.tenant.to_ascii_lowercase();
        if crate::oidc::metadata::is_guid(&own) && !list.contains(&own) {
            out.push(format!(
                "connection {:?}: allowed_tenants does not list the connection's own tenant {:?}, and a single-tenant connection takes no other: nobody can sign in. Remove allowed_tenants, or use tenant = \"organizations\" with allowed_tenants listing every tenant to admit.",
                c.name, e.tenant
            ));
        } else {
            out.push(format!(
                "connection {:?}: allowed_tenants does not open the single-tenant connection (tenant = {:?}) to the other tenants it lists: only its own users sign in. For users of other tenants, use tenant = \"organizations\" with allowed_tenants listing them.",
                c.name, e.tenant
            ));
        }
    }
    // A bare group id (SPEC 6.1) matches the value from every connection
    // the route allows: a partner IdP or directory can send the same string
    // as contoso's Entra group id.
    for r in &settings.routes {
        let others: Vec<&str> = settings
            .connections
            .iter()
            .filter(|c| !c.is_entra() && r.connections.contains(&c.name))
            .map(|c| c.name.as_str())
            .collect();
        if others.is_empty() {
            continue;
        }
        for rule in &r.allow.group_rules {
            if rule.connections.is_none() && crate::connection::entra::issuer::is_guid(&rule.value)
            {
                out.push(format!(
                    "route {:?}: allow.groups {:?} is a bare id, so users of {} match it too when their provider sends that string; write \"<connection>:{}\" to mean one connection's group",
                    r.name,
                    rule.value,
                    others.join(", "),
                    rule.value
                ));
            }
        }
    }
    for c in &settings.connections {
        // Entra's token endpoint refuses a web app's code exchange without a
        // credential; a connection used only to accept bearer tokens
        // (`api_audiences`) needs none, so this is a warning, not an error.
        if c.is_entra() && c.credential.is_none() {
            out.push(format!(
                "connection {:?} (Entra ID) has no client credential: sign-in through it fails \
                 at the code exchange. Set client_certificate_file + client_key_file (a certificate \
                 uploaded under the app registration's \"Certificates & secrets\"), \
                 client_assertion_file (workload identity federation) or client_secret_file, \
                 unless the connection only accepts bearer tokens.",
                c.name
            ));
        }
        if c.group_names_from_graph && c.credential.is_none() {
            out.push(format!(
                "connection {:?}: group_names_from_graph = true needs a client credential (an \
                 app-only Graph token reads the names); without one, group ids are shown.",
                c.name
            ));
        }
        if let Some(ClientCredential::Certificate(cert)) = &c.credential {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let left = cert.not_after().saturating_sub(now);
            if left < EXPIRY_WARNING_SECS {
                out.push(format!(
                    "connection {:?}: the client certificate expires in {} day(s) ({}): upload a new \
                     certificate to the app registration and point client_certificate_file and \
                     client_key_file at it before then, or sign-ins fail at the code exchange.",
                    c.name,
                    left / 86_400,
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(cert.not_after())
                    )
                ));
            }
            if cert.not_before() > now {
                out.push(format!(
                    "connection {:?}: the client certificate is not valid yet (valid from {}); \
                     the provider refuses assertions signed with it until then.",
                    c.name,
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(cert.not_before())
                    )
                ));
            }
            if c.is_entra() && cert.alg() != jsonwebtoken::Algorithm::RS256 {
                out.push(format!(
                    "connection {:?}: the client certificate has a P-256 (EC) key; Entra ID \
                     accepts certificate credentials with RSA keys: use an RSA certificate.",
                    c.name
                ));
            }
        }
        if !c.client_id.is_empty() && c.client_id.bytes().all(|b| b == b'0' || b == b'-') {
            out.push(format!(
                "connection {:?}: client_id {:?} is the placeholder of the example configuration; \
                 set the application (client) id of your app registration.",
                c.name, c.client_id
            ));
        }
    }
    // A route that sends assertions without a configured key gets one made
    // at start (`AuthShared::ephemeral_assertion_key`).
    if settings.server.assertion_key.is_none() {
        let sending: Vec<&str> = settings
            .routes
            .iter()
            .filter(|r| r.sends_assertion())
            .map(|r| r.name.as_str())
            .collect();
        if !sending.is_empty() {
            out.push(format!(
                "routes {} send a signed assertion but no [server] assertion_key is set: each process signs with a key it makes at start, which changes at every restart and differs between replicas; set server.assertion_key = \"<path of a P-256 PEM key>\", the same file on every replica (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem)",
                sending.join(", ")
            ));
        }
    }
    // RSA private-key operations in the `rsa` crate are not constant-time
    // (RUSTSEC-2023-0071, see deny.toml), and a signed-in user can make the
    // gateway sign assertions and time the answers.
    if let Some(key) = &settings.server.assertion_key {
        if key.alg() == jsonwebtoken::Algorithm::RS256 {
            out.push(
                concat!(
                    "[server] assertion_key is an RSA key: the RSA implementation realmgate uses ",
                    "is not constant-time when signing (RUSTSEC-2023-0071), and signed-in users ",
                    "can make the gateway sign. Use a P-256 key (ES256) unless an app can only ",
                    "verify RS256: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem"
                )
                .to_string(),
            );
        }
    }
    out
}

/// The text `realmgate check` prints for a valid configuration.
pub fn summary(settings: &Settings) -> String {
    let mut s = String::new();
    let srv = &settings.server;
    let _ = writeln!(s, "Configuration is valid.\n");
    let warnings = warnings(settings);
    for w in &warnings {
        let _ = writeln!(s, "Warning: {w}");
    }
    if !warnings.is_empty() {
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "Listeners:");
    let _ = writeln!(
        s,
        "  proxy  {} ({}{})",
        srv.listen,
        if srv.tls.is_some() {
            "TLS, HTTP/1.1 and HTTP/2"
        } else {
            "HTTP/1.1 and h2c"
        },
        if srv.proxy_protocol {
            ", PROXY protocol required"
        } else {
            ""
        }
    );
    let admin = &settings.admin;
    let _ = writeln!(
        s,
        "  admin  {} (/healthz, /readyz, /metrics, POST /sessions/revoke; {})",
        admin.listen,
        if admin.token.is_some() {
            "bearer token required for /metrics and /sessions/*".to_string()
        } else if admin.hosts.is_empty() {
            "no token: Host must be an IP address or localhost".to_string()
        } else {
            format!(
                "no token: Host must be an IP address, localhost or {}",
                admin.hosts.join(", ")
            )
        }
    );
    if !srv.trusted_proxies.is_empty() {
        let list: Vec<String> = srv.trusted_proxies.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(s, "  trusted proxies: {}", list.join(", "));
    }
    let store = match &settings.session.store {
        StoreSettings::Memory { max_entries } => {
            format!("memory (up to {max_entries} sessions, one node)")
        }
        StoreSettings::Redis {
            urls,
            cluster,
            key_prefix,
            cache_ttl,
        } => {
            // Never the URLs: they may hold a password.
            let tls = if urls.iter().all(|u| u.starts_with("rediss://")) {
                ", TLS"
            } else {
                ""
            };
            let kind = if *cluster {
                format!(
                    "Redis Cluster ({} seed node{})",
                    urls.len(),
                    if urls.len() == 1 { "" } else { "s" }
                )
            } else {
                "redis (one server)".to_string()
            };
            let cache = if cache_ttl.is_zero() {
                "no local cache".to_string()
            } else {
                format!("local cache {}", humantime::format_duration(*cache_ttl))
            };
            format!("{kind}{tls}, key prefix {key_prefix:?}, {cache}")
        }
    };
    let _ = writeln!(
        s,
        "\nSessions: {store}; lifetime {}, idle timeout {}; {} secret{}",
        humantime::format_duration(settings.session.lifetime),
        humantime::format_duration(settings.session.idle_timeout),
        settings.session.secrets.len(),
        if settings.session.secrets.len() == 1 {
            ""
        } else {
            "s (the first signs)"
        }
    );

    let _ = writeln!(s, "\nRoutes:");
    for r in &settings.routes {
        let _ = writeln!(
            s,
            "  {}: {}{} -> {}",
            r.name,
            r.hosts.join(", "),
            if r.path_prefix == "/" {
                String::new()
            } else {
                format!(" {}", r.path_prefix)
            },
            r.upstream
        );
        let _ = writeln!(
            s,
            "    sign-in via: {}",
            if r.connections.is_empty() {
                "(none)".to_string()
            } else {
                r.connections.join(", ")
            }
        );
        let _ = writeln!(
            s,
            "    headers: {:?}{}",
            r.headers,
            if r.public.is_empty() {
                String::new()
            } else {
                format!("; public: {}", r.public.join(", "))
            }
        );
        if r.oauth2_proxy_endpoints {
            let _ = writeln!(
                s,
                "    oauth2-proxy endpoints: /oauth2/start, sign_in, callback, sign_out, auth, userinfo (every /oauth2/* path is realmgate's here)"
            );
        }
        if !r.allow.is_empty() {
            let a = &r.allow;
            let mut parts = Vec::new();
            if !a.groups.is_empty() {
                parts.push(format!("groups any of [{}]", a.groups.join(", ")));
            }
            if !a.email_domains.is_empty() {
                parts.push(format!("email domain in [{}]", a.email_domains.join(", ")));
            }
            if !a.users.is_empty() || !a.user_ids.is_empty() {
                parts.push(format!(
                    "{} listed email(s) and {} listed user id(s)",
                    a.users.len(),
                    a.user_ids.len()
                ));
            }
            if !a.tenants.is_empty() {
                parts.push(format!("tenant in [{}]", a.tenants.join(", ")));
            }
            if !a.roles.is_empty() {
                parts.push(format!("roles any of [{}]", a.roles.join(", ")));
            }
            for c in &a.claims {
                parts.push(format!("claim {} any of [{}]", c.name, c.values.join(", ")));
            }
            let _ = writeln!(s, "    allow: {}", parts.join(" and "));
        } else {
            let _ = writeln!(s, "    allow: any signed-in user");
        }
    }

    let _ = writeln!(s, "\nConnections:");
    let callbacks = callback_urls(settings);
    for c in &settings.connections {
        let kind = match &c.kind {
            ConnectionKind::Entra(e) => {
                let tenants = match &e.allowed_tenants {
                    TenantAllowList::Pinned => String::new(),
                    TenantAllowList::Any => ", any tenant".into(),
                    TenantAllowList::List(l) => format!(", tenants {}", l.join(", ")),
                };
                format!("Entra ID, tenant {}{tenants}", e.tenant)
            }
            ConnectionKind::Oidc(o) => format!("OpenID Connect, issuer {}", o.issuer),
            ConnectionKind::Ldap(_) => "LDAP / Active Directory, password form".to_string(),
            ConnectionKind::Saml(m) | ConnectionKind::WsFed(m) => {
                let kind = match m.protocol {
                    crate::saml::config::Protocol::Saml => "SAML 2.0",
                    crate::saml::config::Protocol::WsFed => "WS-Federation",
                };
                format!("{kind}, IdP {}", m.idp_description())
            }
        };
        let _ = writeln!(s, "  {} ({}): {kind}", c.name, c.display_name);
        if !c.home_realm_domains.is_empty() {
            let _ = writeln!(
                s,
                "    home realm domains: {}",
                c.home_realm_domains.join(", ")
            );
        }
        if let ConnectionKind::Ldap(l) = &c.kind {
            for line in ldap_lines(settings, c, l) {
                let _ = writeln!(s, "    {line}");
            }
            continue;
        }
        let mine: Vec<_> = callbacks.iter().filter(|(n, _)| *n == c.name).collect();
        if let Some(m) = c.saml() {
            // The entity id and ACS URL to register at the IdP, per origin.
            if mine.is_empty() {
                let _ = writeln!(s, "    (no route allows this connection)");
            }
            for (_, url) in &mine {
                let origin = url.strip_suffix(&c.callback_path()).unwrap_or(url);
                for line in m.summary(&c.name, origin) {
                    let _ = writeln!(s, "    {line}");
                }
            }
            continue;
        }
        let _ = writeln!(s, "    discovery: {}", c.discovery_url());
        let credential = match &c.credential {
            None => "none (public client)".to_string(),
            Some(cred @ ClientCredential::Certificate(cert)) => format!(
                "{}, x5t#S256 {}, expires {}",
                cred.kind_name(),
                cert.thumbprint(),
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(cert.not_after())
                )
            ),
            Some(other) => other.kind_name().to_string(),
        };
        let _ = writeln!(s, "    client credential: {credential}");
        let _ = writeln!(s, "    redirect URI(s) to register:");
        if mine.is_empty() {
            let _ = writeln!(s, "      (none: no route allows this connection)");
        }
        for (_, url) in &mine {
            let _ = writeln!(s, "      {url}");
        }
        // OpenID kinds: the per-connection front-channel logout URL (SPEC
        // 5.10; one per app registration, on the first redirect URI's host).
        if matches!(c.kind, ConnectionKind::Entra(_) | ConnectionKind::Oidc(_)) {
            if let Some(base) = mine.first().and_then(|(_, url)| {
                url.strip_suffix(c.callback_path().as_str())
                    .or_else(|| url.strip_suffix(super::OAUTH2_PROXY_CALLBACK))
            }) {
                let _ = writeln!(
                    s,
                    "    front-channel logout URL to register: {base}{}",
                    crate::config::ConnectionSettings::frontchannel_path(&c.name)
                );
            }
        }
    }
    s
}
