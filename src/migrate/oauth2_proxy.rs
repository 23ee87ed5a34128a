//! oauth2-proxy: its config file (TOML, `client_id = "..."`), and the same
//! options as command-line flags (`--client-id=...`, one per line, as in a
//! container's `args:`, `- ` list markers allowed) or environment variables
//! (`OAUTH2_PROXY_CLIENT_ID=...`, as in an env file; `export` allowed).
//! A file with any flag or variable line is read line by line (and may mix
//! the three spellings); otherwise it is parsed as TOML.
//!
//! Flags name a repeatable option in the singular (`--email-domain`), the
//! file and variables in the plural (`email_domains`,
//! `OAUTH2_PROXY_EMAIL_DOMAINS`, comma-separated): all become the plural.

use super::{host_of, issuer_of, provider, MigrateError, Plan, Value};

/// One option as read: its file spelling, its values, and its line.
#[derive(Debug, Clone)]
struct Opt {
    key: String,
    values: Vec<String>,
    line: usize,
}

impl Opt {
    fn first(&self) -> &str {
        self.values.first().map(String::as_str).unwrap_or("")
    }
    fn flag(&self) -> bool {
        matches!(self.first(), "" | "true" | "1")
    }
    fn at(&self) -> String {
        format!("{} (line {})", self.key, self.line)
    }
}

/// Flags (singular) whose file and variable spelling is plural.
const PLURALS: &[(&str, &str)] = &[
    ("email_domain", "email_domains"),
    ("upstream", "upstreams"),
    ("allowed_group", "allowed_groups"),
    ("allowed_role", "allowed_roles"),
    ("skip_auth_route", "skip_auth_routes"),
    ("cookie_domain", "cookie_domains"),
    ("whitelist_domain", "whitelist_domains"),
    ("trusted_ip", "trusted_ips"),
    ("api_route", "api_routes"),
    ("extra_jwt_issuer", "extra_jwt_issuers"),
];

/// Options whose value is a list (split on commas when given as one string).
fn is_list(key: &str) -> bool {
    PLURALS.iter().any(|(_, p)| *p == key) || key == "skip_auth_regex"
}

fn plural(key: &str) -> String {
    PLURALS
        .iter()
        .find(|(s, _)| *s == key)
        .map_or(key, |(_, p)| p)
        .to_string()
}

/// The options of `text`, in order (a later one wins for single values;
/// lists accumulate).
fn parse(text: &str) -> Result<Vec<Opt>, MigrateError> {
    let line_based = text.lines().any(|l| {
        let l = l
            .trim_start()
            .trim_start_matches("- ")
            .trim_start_matches(['"', '\'']);
        l.starts_with("--")
            || l.starts_with("OAUTH2_PROXY_")
            || l.starts_with("export OAUTH2_PROXY_")
    });
    if line_based {
        parse_lines(text)
    } else {
        parse_toml(text)
    }
}

fn parse_toml(text: &str) -> Result<Vec<Opt>, MigrateError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(1);
        MigrateError::Line {
            line,
            message: format!(
                "not an oauth2-proxy config file (TOML: {}); flags (--client-id=...) and variables (OAUTH2_PROXY_CLIENT_ID=...) are read one per line",
                e.message()
            ),
        }
    })?;
    let mut out = Vec::new();
    for (key, value) in table {
        let line = line_of(text, &key);
        let values = match value {
            toml::Value::String(s) => vec![s],
            toml::Value::Boolean(b) => vec![b.to_string()],
            toml::Value::Integer(i) => vec![i.to_string()],
            toml::Value::Float(f) => vec![f.to_string()],
            toml::Value::Array(items) => {
                let mut v = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(s) => v.push(s),
                        other => v.push(other.to_string()),
                    }
                }
                v
            }
            toml::Value::Datetime(d) => vec![d.to_string()],
            toml::Value::Table(_) => {
                return Err(MigrateError::Line {
                    line,
                    message: format!(
                        "[{key}] is a table; oauth2-proxy's config file has only `option = value` lines (the alpha YAML config is not read: convert it with its legacy options)"
                    ),
                })
            }
        };
        out.push(Opt { key, values, line });
    }
    out.sort_by_key(|o| o.line);
    Ok(out)
}

/// The line where `key = ` first appears (1 when not found).
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

fn parse_lines(text: &str) -> Result<Vec<Opt>, MigrateError> {
    let mut out: Vec<Opt> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = unquote(l.strip_prefix("- ").unwrap_or(l));
        let l = l.strip_prefix("export ").unwrap_or(l).trim();
        let (key, values) = if let Some(flag) = l.strip_prefix("--") {
            let (name, value) = match flag.split_once(['=', ' ']) {
                Some((n, v)) => (n, Some(unquote(v).to_string())),
                None => (flag, None),
            };
            let key = plural(&name.replace('-', "_"));
            (key, vec![value.unwrap_or_default()])
        } else if let Some(var) = l.strip_prefix("OAUTH2_PROXY_") {
            let Some((name, value)) = var.split_once('=') else {
                return Err(MigrateError::Line {
                    line,
                    message: format!("OAUTH2_PROXY_{var} has no value (expected NAME=value)"),
                });
            };
            let key = name.trim().to_ascii_lowercase();
            let value = unquote(value);
            let values = if is_list(&key) {
                value
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect()
            } else {
                vec![value.to_string()]
            };
            (key, values)
        } else if let Some((k, v)) = l.split_once('=') {
            // A config-file line among flags: a single-line TOML value.
            let key = k.trim().to_string();
            let value: toml::Value = format!("v = {}", v.trim())
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .ok_or_else(|| MigrateError::Line {
                    line,
                    message: format!(
                        "the value of {key} is not a TOML value (quote strings: {key} = \"...\")"
                    ),
                })?;
            let values = match value {
                toml::Value::String(s) => vec![s],
                toml::Value::Array(a) => a
                    .into_iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect(),
                other => vec![other.to_string()],
            };
            (key, values)
        } else {
            return Err(MigrateError::Line {
                line,
                message: format!(
                    "cannot read {:?}: expected an oauth2-proxy flag (--client-id=...), variable (OAUTH2_PROXY_CLIENT_ID=...) or config line (client_id = \"...\")",
                    truncate(l)
                ),
            });
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(MigrateError::Line {
                line,
                message: format!("{:?} is not an oauth2-proxy option name", truncate(&key)),
            });
        }
        match out.iter_mut().find(|o| o.key == key) {
            Some(o) if is_list(&key) => o.values.extend(values),
            Some(o) => {
                o.values = values;
                o.line = line;
            }
            None => out.push(Opt { key, values, line }),
        }
    }
    Ok(out)
}

/// At most 60 characters of `s` (error messages never carry whole lines:
/// a line may hold a secret).
fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

/// A prefix for `public` from a skip-auth regex that is one (`^/static/`,
/// `^/healthz$`, optionally after `GET=`); `None` for a real pattern.
pub(super) fn literal_prefix(pattern: &str) -> Option<String> {
    let pattern = match pattern.split_once('=') {
        Some((method, p))
            if !method.is_empty() && method.chars().all(|c| c.is_ascii_uppercase()) =>
        {
            p
        }
        _ => pattern,
    };
    let body = pattern.strip_prefix('^')?;
    let body = match body.strip_suffix('$') {
        Some(b) => b,
        None => body.strip_suffix(".*").unwrap_or(body),
    };
    // A bare `.` is a wildcard; `\.` a dot.
    if body.replace("\\.", "").contains('.') {
        return None;
    }
    let plain = body
        .replace("\\.", ".")
        .replace("\\-", "-")
        .replace("\\/", "/");
    if !plain.starts_with('/') || plain.chars().any(|c| "\\()[]*+?|{}^$".contains(c)) {
        return None;
    }
    Some(plain)
}

pub fn read(text: &str) -> Result<Plan, MigrateError> {
    let opts = parse(text)?;
    let get = |k: &str| opts.iter().find(|o| o.key == k);
    let mut plan = Plan::default();

    // The provider.
    let kind = get("provider").map(|o| o.first().to_ascii_lowercase());
    let issuer = get("oidc_issuer_url");
    let name = match kind.as_deref() {
        Some("azure" | "entra-id") => "entra",
        _ => "oidc",
    };
    let connection_named = |plan: &mut Plan| plan.connection("name", Value::Str(name.into()), "");
    match (kind.as_deref(), issuer) {
        (
            Some(
                "github" | "gitlab-oauth" | "bitbucket" | "facebook" | "linkedin" | "digitalocean"
                | "nextcloud" | "login.gov" | "keycloak",
            ),
            _,
        ) => {
            let o = get("provider").expect("matched");
            return Err(MigrateError::Line {
                line: o.line,
                message: format!(
                    "provider = {:?} signs in with plain OAuth 2.0 and the provider's own API; realmgate signs in with OpenID Connect, SAML, WS-Federation or LDAP. Use the provider's OpenID Connect interface (provider = \"oidc\" with oidc_issuer_url) if it has one",
                    o.first()
                ),
            });
        }
        (Some("azure" | "entra-id"), issuer) => {
            connection_named(&mut plan);
            let tenant = get("azure_tenant").map(|o| (o.first().to_string(), o.at()));
            match (issuer, tenant) {
                (Some(i), _) => provider(&mut plan, &issuer_of(i.first()), &i.at()),
                (None, Some((t, at))) => {
                    plan.connection("type", Value::Str("entra".into()), &at);
                    plan.connection("tenant", Value::Str(t), &at);
                }
                (None, None) => {
                    // oauth2-proxy's default azure_tenant is "common".
                    let at = get("provider").map(Opt::at).unwrap_or_default();
                    provider(
                        &mut plan,
                        "https://login.microsoftonline.com/common/v2.0",
                        &at,
                    );
                }
            }
        }
        (Some("google"), None) | (None, None) if get("client_id").is_some() => {
            connection_named(&mut plan);
            let at = get("provider").map_or("provider (default google)".into(), Opt::at);
            provider(&mut plan, "https://accounts.google.com", &at);
            plan.connection("name", Value::Str("google".into()), "");
        }
        (_, Some(i)) => {
            connection_named(&mut plan);
            provider(&mut plan, &issuer_of(i.first()), &i.at());
            if entra_like(&plan) {
                plan.connection("name", Value::Str("entra".into()), "");
            }
        }
        _ => {}
    }
    if let Some(o) = get("client_id") {
        plan.connection("client_id", Value::Str(o.first().into()), o.at());
    }
    if let Some(o) = get("client_secret") {
        plan.client_secret(format!("the value of {}", o.at()), o.at());
    }
    if let Some(o) = get("client_secret_file") {
        // A path, not a secret: kept.
        plan.connection("client_secret_file", Value::Str(o.first().into()), o.at());
    }

    // The route.
    let redirect = get("redirect_url");
    let host = redirect.and_then(|o| host_of(o.first()));
    let route_name = host
        .as_deref()
        .and_then(|h| h.split('.').next())
        .map_or_else(|| "app".to_string(), |h| super::name_from(h, "app"));
    plan.route("name", Value::Str(route_name), "");
    match (&host, redirect) {
        (Some(h), Some(o)) => {
            plan.route("hosts", Value::List(vec![h.clone()]), o.at());
            let path = url::Url::parse(o.first())
                .map(|u| u.path().to_string())
                .unwrap_or_default();
            if path != crate::config::OAUTH2_PROXY_CALLBACK {
                plan.note(
                    o.at(),
                    format!(
                        "the redirect URI's path {path:?} is not /oauth2/callback: register {}{} at the provider (what `check` prints)",
                        o.first().split(&path).next().unwrap_or(""),
                        crate::config::OAUTH2_PROXY_CALLBACK
                    ),
                );
            }
        }
        _ => {
            plan.route("hosts", Value::List(vec!["app.example.com".into()]), "");
            plan.note(
                "redirect_url (not set)",
                "oauth2-proxy took the host from each request; realmgate routes by host: replace \"app.example.com\" in [[route]] hosts with the app's host name(s)",
            );
        }
    }
    match get("upstreams") {
        Some(o) if !o.values.is_empty() => {
            let first = o.values[0].clone();
            if first.starts_with("http://") || first.starts_with("https://") {
                plan.route("upstream", Value::Str(first), o.at());
            } else {
                plan.route("upstream", Value::Str("http://127.0.0.1:8080".into()), "");
                plan.note(
                    o.at(),
                    format!("{first:?} is not an http(s) upstream (file:// and static:// are oauth2-proxy's own responders); set [[route]] upstream to the app's URL"),
                );
            }
            if o.values.len() > 1 {
                plan.note(
                    o.at(),
                    format!(
                        "{} upstreams: realmgate has one upstream per [[route]]; add a [[route]] with path_prefix for each of {}",
                        o.values.len(),
                        o.values[1..].join(", ")
                    ),
                );
            }
        }
        _ => {
            plan.route("upstream", Value::Str("http://127.0.0.1:8080".into()), "");
            plan.note(
                "upstreams (not set)",
                "no upstream given (oauth2-proxy in front of ingress-nginx answers /oauth2/auth only): set [[route]] upstream, or keep the placeholder if only /oauth2/auth is used",
            );
        }
    }
    plan.route(
        "oauth2_proxy_endpoints",
        Value::Bool(true),
        "oauth2-proxy's /oauth2/* endpoints (registered redirect URI, ingress-nginx annotations)",
    );

    for o in &opts {
        option(&mut plan, o, &opts);
    }
    Ok(plan)
}

fn entra_like(plan: &Plan) -> bool {
    plan.connection
        .iter()
        .any(|e| e.key == "type" && e.value == Value::Str("entra".into()))
}

/// Every option not handled above: mapped, or a note.
fn option(plan: &mut Plan, o: &Opt, all: &[Opt]) {
    let at = o.at();
    let note = |plan: &mut Plan, why: &str| plan.note(at.clone(), why.to_string());
    match o.key.as_str() {
        // Handled in `read`.
        "provider" | "oidc_issuer_url" | "azure_tenant" | "client_id" | "client_secret"
        | "client_secret_file" | "redirect_url" | "upstreams" | "config" => {}
        "http_address" => {
            let a = o.first().trim_start_matches("http://");
            let a = if a.starts_with(':') { format!("0.0.0.0{a}") } else { a.to_string() };
            plan.server("listen", Value::Str(a), at);
        }
        "https_address" | "tls_cert_file" | "tls_key_file" | "tls_min_version" | "tls_cipher_suite" => note(
            plan,
            "TLS on realmgate itself is [server.tls] cert and key (PEM paths; reloaded on SIGHUP) with listen on the TLS port; add that table if realmgate terminates TLS",
        ),
        "cookie_secret" | "cookie_secret_file" => note(
            plan,
            "not carried over: realmgate's session cookie holds a random id authenticated with its own session secret (session.secret_file, a new one); users sign in once after the switch",
        ),
        "cookie_name" => note(
            plan,
            "realmgate's cookie is session.cookie_name (default \"realmgate\", \"__Host-\" prefixed on HTTPS); the oauth2-proxy cookie is ignored, so users sign in once after the switch",
        ),
        "cookie_domains" if !o.values.is_empty() => {
            plan.session("cookie_domain", Value::Str(o.values[0].clone()), at.clone());
            if o.values.len() > 1 {
                note(plan, "realmgate has one cookie_domain; the others were dropped");
            }
        }
        "cookie_expire" => plan.session("lifetime", Value::Str(o.first().into()), at),
        "cookie_refresh" => note(
            plan,
            "realmgate refreshes the provider's tokens by itself shortly before they expire (session.refresh_tokens = true, the default), not on a fixed period",
        ),
        "cookie_secure" | "cookie_httponly" | "cookie_samesite" | "cookie_path" | "cookie_csrf_per_request"
        | "cookie_csrf_expire" => note(
            plan,
            "realmgate's cookies are always HttpOnly, Secure on HTTPS, SameSite=Lax, Path=/; sign-in state is bound to the browser by its own signed cookie",
        ),
        "email_domains" => {
            let domains: Vec<String> = o.values.iter().filter(|d| *d != "*").cloned().collect();
            if !domains.is_empty() {
                plan.allow("email_domains", Value::List(domains), at.clone());
                note(
                    plan,
                    "realmgate counts an email only when it is verified (email_verified, or trusted_email = true on the connection) and one plain address; see docs/migrating.md",
                );
            }
        }
        "authenticated_emails_file" => note(
            plan,
            "list those addresses in [route.allow] users = [...] (realmgate does not read a separate file)",
        ),
        "allowed_groups" => plan.allow("groups", Value::List(o.values.clone()), at),
        "allowed_roles" => plan.allow("roles", Value::List(o.values.clone()), at),
        "scope" => {
            let scopes: Vec<String> = o.first().split_whitespace().map(str::to_string).collect();
            plan.connection("scopes", Value::List(scopes), at);
        }
        "skip_auth_routes" | "skip_auth_regex" => {
            let mut public = Vec::new();
            for p in &o.values {
                match literal_prefix(p) {
                    Some(prefix) => public.push(prefix),
                    None => plan.note(
                        at.clone(),
                        format!("{p:?} is a regular expression; realmgate's public takes path prefixes (matched on the canonical path): add the prefixes it means"),
                    ),
                }
            }
            if !public.is_empty() {
                let mut all = match plan.route.iter().find(|e| e.key == "public") {
                    Some(super::Entry { value: Value::List(v), .. }) => v.clone(),
                    _ => Vec::new(),
                };
                all.extend(public);
                plan.route("public", Value::List(all), at.clone());
                if o.values.iter().any(|p| p.contains('=')) {
                    note(plan, "the method part (GET=) is dropped: a public prefix is public for every method");
                }
                // `^/health$` allowed that one path; a prefix opens what is
                // below it too (review 13, H3).
                for p in o.values.iter().filter(|p| p.ends_with('$') && literal_prefix(p).is_some()) {
                    plan.note(
                        at.clone(),
                        format!("{p:?} matched that path only; public = [{:?}] also makes every path below it public (/x/...): check that nothing below it needs a sign-in, or move such paths to another route", literal_prefix(p).unwrap_or_default()),
                    );
                }
            }
        }
        "skip_provider_button" => {}
        "pass_access_token" => plan.route("pass_access_token", Value::Bool(o.flag()), at),
        "pass_authorization_header" | "set_authorization_header" => {
            if o.flag() {
                plan.route("pass_id_token", Value::Bool(true), at.clone());
                note(
                    plan,
                    "realmgate sends the ID token as X-Forwarded-Id-Token (X-Auth-Request-Id-Token with headers = \"auth_request\"), never as Authorization: change the app to read that header",
                );
            }
        }
        "set_xauthrequest" => note(
            plan,
            "/oauth2/auth always answers with X-Auth-Request-User, -Email, -Preferred-Username, -Groups; X-Auth-Request-User is realmgate's user id (docs/migrating.md)",
        ),
        "pass_user_headers" => {
            plan.route(
                "headers",
                Value::Str(if o.flag() { "forwarded" } else { "none" }.into()),
                at,
            );
        }
        "pass_host_header" => plan.route("preserve_host", Value::Bool(o.flag()), at),
        "pass_basic_auth" | "basic_auth_password" | "prefer_email_to_user" => note(
            plan,
            "realmgate does not build Basic auth from the identity; the app gets X-Forwarded-User (the user id) and X-Forwarded-Email",
        ),
        "reverse_proxy" | "real_client_ip_header" => note(
            plan,
            "realmgate believes X-Forwarded-* (and X-Original-URL from ingress-nginx) only from [server] trusted_proxies: list the addresses of the proxies in front",
        ),
        "trusted_ips" => note(
            plan,
            "not mapped: realmgate has no sign-in bypass by client address (a forged or shared address would skip authentication)",
        ),
        "session_store_type" if o.first() == "redis" => plan.session("store", Value::Str("redis".into()), at),
        "session_store_type" => {}
        "redis_connection_url" => {
            let url = o.first();
            let has_password = url::Url::parse(url).is_ok_and(|u| u.password().is_some());
            if has_password {
                let path = format!("{}/redis_url", super::SECRETS_DIR);
                plan.session("redis_url_file", Value::Str(path.clone()), at.clone());
                plan.secrets.push(super::Secret {
                    key: "session.redis_url_file".into(),
                    path,
                    env: "REALMGATE_SESSION__REDIS_URL".into(),
                    what: format!("the URL of {at} (it holds a password)"),
                });
            } else {
                plan.session("redis_url", Value::Str(url.into()), at);
            }
        }
        "redis_password" | "redis_sentinel_password" => note(
            plan,
            "put the password in the Redis URL (redis://:PASSWORD@host:6379/0) in session.redis_url_file",
        ),
        "redis_use_sentinel" | "redis_sentinel_master_name" | "redis_sentinel_connection_urls" => note(
            plan,
            "Redis Sentinel is not supported; realmgate takes one Redis URL or a list for Redis Cluster",
        ),
        "redis_use_cluster" | "redis_cluster_connection_urls" => {
            plan.session("redis_url", Value::List(o.values.clone()), at.clone());
            note(plan, "a list of URLs is a Redis Cluster in realmgate");
        }
        "oidc_groups_claim" if o.first() != "groups" => note(
            plan,
            "realmgate reads groups from the groups claim (and, for Entra, from Microsoft Graph on overage)",
        ),
        "oidc_groups_claim" => {}
        "user_id_claim" | "oidc_email_claim" | "oidc_audience_claims" => note(
            plan,
            "realmgate's user id is fixed (SPEC 6.1): Entra's oid, else <connection>:<sub>; the email is the email claim. Apps keyed on oauth2-proxy's X-Forwarded-User (often the email) must map users once (docs/migrating.md)",
        ),
        "insecure_oidc_allow_unverified_email" if o.flag() => {
            plan.connection("trusted_email", Value::Bool(true), at.clone());
            note(
                plan,
                "mapped to trusted_email = true: every email this provider sends counts as verified for email_domains and users; keep it only if the provider controls the addresses",
            );
        }
        "insecure_oidc_allow_unverified_email" => {}
        "insecure_oidc_skip_issuer_verification" | "insecure_oidc_skip_nonce" | "ssl_insecure_skip_verify"
        | "ssl_upstream_insecure_skip_verify" => note(
            plan,
            "not mapped: realmgate always checks the issuer, nonce and TLS certificates (an upstream's private CA goes in [[route]] upstream_ca)",
        ),
        "skip_oidc_discovery" => {}
        "login_url" if skip_discovery(all) => {
            plan.connection("authorization_endpoint", Value::Str(o.first().into()), at)
        }
        "redeem_url" if skip_discovery(all) => {
            plan.connection("token_endpoint", Value::Str(o.first().into()), at)
        }
        "oidc_jwks_url" if skip_discovery(all) => {
            plan.connection("jwks_uri", Value::Str(o.first().into()), at)
        }
        "profile_url" | "validate_url" | "login_url" | "redeem_url" | "oidc_jwks_url" => note(
            plan,
            "realmgate takes the provider's endpoints from its discovery document",
        ),
        "skip_jwt_bearer_tokens" | "extra_jwt_issuers" => note(
            plan,
            "bearer tokens: list the accepted audiences in [[route]] api_audiences (realmgate validates them against the connection's issuer and keys; other issuers need their own [[connection]])",
        ),
        "whitelist_domains" => note(
            plan,
            "realmgate accepts a return URL (rd) on the same host or on any configured route host; add the other hosts as routes if users must return there",
        ),
        "proxy_prefix" if o.first() != "/oauth2" => note(
            plan,
            "realmgate's oauth2-proxy endpoints are at /oauth2 only: change the redirect URI and annotations to /oauth2/..., or use /.auth/... (docs/migrating.md)",
        ),
        "proxy_prefix" => {}
        "code_challenge_method" => note(plan, "realmgate always uses PKCE with S256"),
        "approval_prompt" | "prompt" => {
            plan.connection("upstream_params", Value::Map(vec![("prompt".into(), o.first().into())]), at)
        }
        "acr_values" => {
            plan.connection("upstream_params", Value::Map(vec![("acr_values".into(), o.first().into())]), at)
        }
        "upstream_timeout" => plan.route("request_timeout", Value::Str(o.first().into()), at),
        "request_logging" | "standard_logging" | "auth_logging" | "request_logging_format"
        | "standard_logging_format" | "auth_logging_format" | "logging_filename" | "silence_ping_logging"
        | "exclude_logging_path" | "logging_local_time" | "logging_compress" | "logging_max_size"
        | "logging_max_age" | "logging_max_backups" => note(
            plan,
            "realmgate logs one access line per request (target access) and sign-ins to stderr; format with [log] format = \"json\"",
        ),
        "ping_path" | "ping_user_agent" | "ready_path" | "gcp_healthchecks" => note(
            plan,
            "health checks are GET /healthz and /readyz on the [admin] listener",
        ),
        "metrics_address" | "metrics_secure_address" => note(
            plan,
            "metrics are GET /metrics on [admin] listen (default 127.0.0.1:9090)",
        ),
        "custom_templates_dir" | "custom_sign_in_logo" | "banner" | "footer" | "display_htpasswd_form" => note(
            plan,
            "realmgate's pages take a title, a logo and an accent colour from [ui]; templates are not replaceable",
        ),
        "htpasswd_file" | "htpasswd_user_group" => note(
            plan,
            "no htpasswd users: sign-in is OpenID Connect, SAML, WS-Federation or LDAP",
        ),
        "api_routes" => note(
            plan,
            "realmgate answers API clients (Accept not HTML, XHR, non-GET) with 401 JSON on every path, no list needed",
        ),
        "email_domain" | "upstream" => {}
        _ => note(plan, "not known to `realmgate migrate`; not mapped"),
    }
}

fn skip_discovery(all: &[Opt]) -> bool {
    all.iter()
        .any(|o| o.key == "skip_oidc_discovery" && o.flag())
}
