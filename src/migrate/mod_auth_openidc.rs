//! Apache httpd with mod_auth_openidc: the `OIDC*` directives, the
//! `<VirtualHost>`'s `ServerName`/`ServerAlias`, `ProxyPass` (the upstream)
//! and `<Location>` sections with `AuthType openid-connect` and `Require`
//! (`valid-user`, `claim name:value`).
//!
//! Other Apache directives (TLS, logging, modules, rewrite rules) are not
//! realmgate's business and are skipped without a note; every `OIDC*`
//! directive that does not map gets one. A line that is not a directive or
//! a section tag, or a section left open, is an error naming the line.

use super::{host_of, issuer_of, name_from, provider, MigrateError, Plan, Value};

/// One directive: its name, arguments and line, and the `<Location>` it is in.
#[derive(Debug, Clone)]
struct Directive {
    name: String,
    args: Vec<String>,
    line: usize,
    location: Option<String>,
}

impl Directive {
    fn arg(&self) -> &str {
        self.args.first().map(String::as_str).unwrap_or("")
    }
    fn at(&self) -> String {
        format!("{} (line {})", self.name, self.line)
    }
}

/// Splits an argument list: whitespace-separated, `"..."` quoted with `\"`.
fn split_args(text: &str, line: usize) -> Result<Vec<String>, MigrateError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut arg = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(ch) = chars.next() {
                if ch == '\\' {
                    if let Some(&next) = chars.peek() {
                        if next == c || next == '\\' {
                            arg.push(next);
                            chars.next();
                            continue;
                        }
                    }
                }
                if ch == c {
                    closed = true;
                    break;
                }
                arg.push(ch);
            }
            if !closed {
                return Err(MigrateError::Line {
                    line,
                    message: format!("a {c} quote is not closed"),
                });
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                arg.push(ch);
                chars.next();
            }
        }
        out.push(arg);
    }
    Ok(out)
}

fn parse(text: &str) -> Result<Vec<Directive>, MigrateError> {
    let mut out = Vec::new();
    // Open sections: (tag, line, location path when a <Location>).
    let mut open: Vec<(String, usize, Option<String>)> = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if pending.is_empty() {
            start = line;
        }
        let trimmed = raw.trim();
        if let Some(cont) = trimmed.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let l = std::mem::take(&mut pending);
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(close) = l.strip_prefix("</") {
            let tag = close.trim_end_matches('>').trim().to_ascii_lowercase();
            match open.pop() {
                Some((t, _, _)) if t == tag => continue,
                Some((t, opened, _)) => {
                    return Err(MigrateError::Line {
                        line: start,
                        message: format!("</{tag}> closes <{t}> of line {opened}"),
                    })
                }
                None => {
                    return Err(MigrateError::Line {
                        line: start,
                        message: format!("</{tag}> closes no open section"),
                    })
                }
            }
        }
        if let Some(section) = l.strip_prefix('<') {
            let Some(inner) = section.strip_suffix('>') else {
                return Err(MigrateError::Line {
                    line: start,
                    message: "a section tag must end with '>'".into(),
                });
            };
            let mut parts = inner.splitn(2, char::is_whitespace);
            let tag = parts.next().unwrap_or("").to_ascii_lowercase();
            let args = split_args(parts.next().unwrap_or(""), start)?;
            if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(MigrateError::Line {
                    line: start,
                    message: format!("<{}> is not an Apache section", truncate(inner)),
                });
            }
            let location = match tag.as_str() {
                "location" => args.first().cloned(),
                _ => open.iter().rev().find_map(|(_, _, l)| l.clone()),
            };
            open.push((tag, start, location));
            continue;
        }
        let mut parts = l.splitn(2, char::is_whitespace);
        let name = parts.next().unwrap_or("");
        if !name.starts_with(|c: char| c.is_ascii_alphabetic())
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(MigrateError::Line {
                line: start,
                message: format!(
                    "{:?} is not an Apache directive (expected a name such as OIDCClientID, then its arguments)",
                    truncate(l)
                ),
            });
        }
        let args = split_args(parts.next().unwrap_or(""), start)?;
        if args.first().is_some_and(|a| a == "=" || a.starts_with('=')) || name.contains('=') {
            return Err(MigrateError::Line {
                line: start,
                message: format!(
                    "{name} = ... is not an Apache directive (a directive is a name, then its arguments, without '='); is this an oauth2-proxy file (--from oauth2-proxy)?"
                ),
            });
        }
        out.push(Directive {
            name: name.to_string(),
            args,
            line: start,
            location: open.iter().rev().find_map(|(_, _, l)| l.clone()),
        });
    }
    if let Some((tag, line, _)) = open.pop() {
        return Err(MigrateError::Line {
            line,
            message: format!("<{tag}> is never closed"),
        });
    }
    Ok(out)
}

/// At most 60 characters (a line may hold a secret).
fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

pub fn read(text: &str) -> Result<Plan, MigrateError> {
    let all = parse(text)?;
    if !all
        .iter()
        .any(|d| d.name.to_ascii_lowercase().starts_with("oidc"))
    {
        let first = all.first();
        return Err(MigrateError::Line {
            line: first.map_or(1, |d| d.line),
            message: match first {
                Some(d) => format!(
                    "no mod_auth_openidc directive (OIDCProviderMetadataURL, OIDCClientID, ...) in the file; the first line read is {:?}",
                    truncate(&d.name)
                ),
                None => "the file has no Apache directive at all (expected OIDCProviderMetadataURL, OIDCClientID, ...)".into(),
            },
        });
    }
    let get = |n: &str| all.iter().rev().find(|d| d.name.eq_ignore_ascii_case(n));
    let mut plan = Plan::default();

    let issuer = get("OIDCProviderMetadataURL")
        .map(|d| (issuer_of(d.arg()), d.at()))
        .or_else(|| get("OIDCProviderIssuer").map(|d| (d.arg().to_string(), d.at())));
    if let Some((issuer, at)) = &issuer {
        let name = if super::entra_tenant(issuer).is_some() {
            "entra".to_string()
        } else {
            host_of(issuer)
                .and_then(|h| {
                    h.split('.')
                        .find(|p| {
                            !matches!(*p, "login" | "auth" | "accounts" | "sso" | "idp" | "www")
                        })
                        .map(str::to_string)
                })
                .map_or_else(|| "oidc".into(), |h| name_from(&h, "oidc"))
        };
        plan.connection("name", Value::Str(name), "");
        provider(&mut plan, issuer, at);
    }
    if let Some(d) = get("OIDCClientID") {
        plan.connection("client_id", Value::Str(d.arg().into()), d.at());
    }
    if let Some(d) = get("OIDCClientSecret") {
        plan.client_secret(format!("the value of {}", d.at()), d.at());
    }

    // The route: host, upstream, the protected location.
    let mut hosts: Vec<String> = Vec::new();
    let mut host_at = String::new();
    for d in all.iter().filter(|d| {
        d.name.eq_ignore_ascii_case("ServerName") || d.name.eq_ignore_ascii_case("ServerAlias")
    }) {
        for a in &d.args {
            let h = a.split(':').next().unwrap_or("").to_ascii_lowercase();
            if !h.is_empty() && !hosts.contains(&h) {
                hosts.push(h);
                host_at = d.at();
            }
        }
    }
    if hosts.is_empty() {
        if let Some(h) = get("OIDCRedirectURI").and_then(|d| host_of(d.arg())) {
            hosts.push(h);
            host_at = "OIDCRedirectURI".into();
        }
    }
    let route_name = hosts
        .first()
        .and_then(|h| h.split('.').next())
        .map_or_else(|| "app".to_string(), |h| name_from(h, "app"));
    plan.route("name", Value::Str(route_name), "");
    if hosts.is_empty() {
        plan.route("hosts", Value::List(vec!["app.example.com".into()]), "");
        plan.note(
            "ServerName (not found)",
            "replace \"app.example.com\" in [[route]] hosts with the app's host name(s)",
        );
    } else {
        plan.route("hosts", Value::List(hosts), host_at);
    }
    let proxy = all
        .iter()
        .filter(|d| d.name.eq_ignore_ascii_case("ProxyPass") && d.args.len() >= 2)
        .find(|d| d.args[0] == "/")
        .or_else(|| {
            all.iter()
                .find(|d| d.name.eq_ignore_ascii_case("ProxyPass") && d.args.len() >= 2)
        });
    match proxy {
        Some(d) if d.args[1].starts_with("http://") || d.args[1].starts_with("https://") => {
            plan.route("upstream", Value::Str(d.args[1].clone()), d.at());
            if d.args[0] != "/" {
                plan.note(d.at(), format!("only {} is proxied in Apache; realmgate's route covers the whole host (set path_prefix = {:?} to narrow it)", d.args[0], d.args[0].trim_end_matches('/')));
            }
        }
        _ => {
            plan.route("upstream", Value::Str("http://127.0.0.1:8080".into()), "");
            plan.note("ProxyPass (none to http/https)", "realmgate is a reverse proxy: set [[route]] upstream to the app's URL (Apache served the content itself or through another handler)");
        }
    }
    locations(&mut plan, &all);

    for d in &all {
        directive(&mut plan, d);
    }
    if !all
        .iter()
        .any(|d| d.name.eq_ignore_ascii_case("OIDCPassClaimsAs"))
    {
        plan.route(
            "headers",
            Value::Str("oidc_claim".into()),
            "mod_auth_openidc's default OIDCPassClaimsAs both (OIDC_CLAIM_* headers)",
        );
    }
    Ok(plan)
}

/// `<Location>` sections: the protected one's `Require` lines become
/// `[route.allow]`, unprotected ones `public`.
fn locations(plan: &mut Plan, all: &[Directive]) {
    let protected = |loc: &str| {
        all.iter().any(|d| {
            d.location.as_deref() == Some(loc)
                && d.name.eq_ignore_ascii_case("AuthType")
                && d.arg().eq_ignore_ascii_case("openid-connect")
        })
    };
    let mut locs: Vec<&str> = Vec::new();
    for d in all {
        if let Some(l) = d.location.as_deref() {
            if !locs.contains(&l) {
                locs.push(l);
            }
        }
    }
    let mut public = Vec::new();
    let (mut groups, mut users, mut roles, mut tenants) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut claims: Vec<(String, String)> = Vec::new();
    let mut kinds = 0;
    let protected_locs: Vec<&str> = locs.iter().copied().filter(|l| protected(l)).collect();
    for loc in &locs {
        let in_loc = all.iter().filter(|d| d.location.as_deref() == Some(*loc));
        if !protected(loc) {
            let opens = all.iter().any(|d| {
                d.location.as_deref() == Some(*loc)
                    && ((d.name.eq_ignore_ascii_case("AuthType")
                        && d.arg().eq_ignore_ascii_case("none"))
                        || (d.name.eq_ignore_ascii_case("Require")
                            && d.args.join(" ").eq_ignore_ascii_case("all granted")))
            });
            if opens
                && protected_locs
                    .iter()
                    .any(|p| loc.starts_with(p.trim_end_matches('/')))
            {
                public.push(loc.to_string());
            }
            continue;
        }
        if *loc != "/" && protected_locs.len() > 1 {
            plan.note(
                format!("<Location {loc}>"),
                "a second protected location: realmgate has one policy per [[route]]; add a [[route]] with this path_prefix and its own [route.allow]",
            );
            continue;
        }
        if *loc != "/" {
            plan.note(
                format!("<Location {loc}>"),
                "only this location was protected in Apache; the [[route]] protects the whole host (add public prefixes, or set path_prefix)",
            );
        }
        for d in in_loc.filter(|d| d.name.eq_ignore_ascii_case("Require")) {
            let words: Vec<&str> = d.args.iter().map(String::as_str).collect();
            match words.as_slice() {
                ["valid-user"] => {}
                ["claim", rest @ ..] => {
                    for r in rest {
                        let Some((claim, value)) = r.split_once(':') else {
                            plan.note(d.at(), format!("claim {r:?} is a regular expression (name~regex); realmgate matches exact values: list them"));
                            continue;
                        };
                        let list = match claim {
                            "groups" => &mut groups,
                            "email" | "upn" | "preferred_username" => &mut users,
                            "roles" => &mut roles,
                            "tid" => &mut tenants,
                            _ => {
                                claims.push((claim.to_string(), value.to_string()));
                                continue;
                            }
                        };
                        list.push(value.to_string());
                    }
                }
                ["all", "granted"] => plan.note(d.at(), "the location is protected but lets everyone in: realmgate's auth = \"optional\" forwards anonymous users"),
                _ => plan.note(d.at(), format!("Require {} does not map: realmgate's [route.allow] takes groups, users, email_domains, tenants, roles and claims", d.args.join(" "))),
            }
        }
    }
    if !public.is_empty() {
        plan.route(
            "public",
            Value::List(public),
            "<Location> sections without authentication",
        );
    }
    for (key, list) in [
        ("groups", groups),
        ("users", users),
        ("roles", roles),
        ("tenants", tenants),
    ] {
        if !list.is_empty() {
            kinds += 1;
            plan.allow(key, Value::List(list), "Require claim");
        }
    }
    if !claims.is_empty() {
        kinds += 1;
        let mut by: Vec<(String, Vec<String>)> = Vec::new();
        for (c, v) in claims {
            match by.iter_mut().find(|(n, _)| *n == c) {
                Some((_, vs)) => vs.push(v),
                None => by.push((c, vec![v])),
            }
        }
        let names: Vec<String> = by.iter().map(|(c, _)| c.clone()).collect();
        plan.note(
            "Require claim",
            format!(
                "claims {} map to [route.allow] claims = {{ {} }}, which needs extended_profile = true on the connection; add both",
                names.join(", "),
                by.iter()
                    .map(|(c, v)| format!("{c} = {:?}", v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if kinds > 1 {
        plan.note(
            "Require",
            "Apache grants access when any one Require line matches; realmgate's [route.allow] lists must all match (stricter): split the route if either kind alone should be enough",
        );
    }
}

/// Every `OIDC*` directive: mapped or a note.
fn directive(plan: &mut Plan, d: &Directive) {
    let at = d.at();
    let name = d.name.to_ascii_lowercase();
    if !name.starts_with("oidc") {
        return;
    }
    let note = |plan: &mut Plan, why: &str| plan.note(at.clone(), why.to_string());
    let seconds = |s: &str| s.parse::<u64>().ok().map(super::seconds);
    match name.as_str() {
        "oidcprovidermetadataurl" | "oidcproviderissuer" | "oidcclientid" | "oidcclientsecret" => {}
        "oidcproviderauthorizationendpoint" => plan.connection("authorization_endpoint", Value::Str(d.arg().into()), at),
        "oidcprovidertokenendpoint" => plan.connection("token_endpoint", Value::Str(d.arg().into()), at),
        "oidcproviderjwksuri" => plan.connection("jwks_uri", Value::Str(d.arg().into()), at),
        "oidcprovideruserinfoendpoint" => plan.connection("userinfo_endpoint", Value::Str(d.arg().into()), at),
        "oidcproviderendsessionendpoint" => plan.connection("end_session_endpoint", Value::Str(d.arg().into()), at),
        "oidcredirecturi" => note(
            plan,
            "realmgate's redirect URI is /.auth/login/<connection>/callback on each route host: register the one `realmgate check` prints at the provider (the old one can stay registered until the switch)",
        ),
        "oidccryptopassphrase" => note(
            plan,
            "not carried over: realmgate's session secret is new (session.secret_file); users sign in once after the switch",
        ),
        "oidcscope" => {
            let scopes: Vec<String> = d.args.join(" ").split_whitespace().map(str::to_string).collect();
            plan.connection("scopes", Value::List(scopes), at);
        }
        "oidcremoteuserclaim" => note(
            plan,
            "realmgate's user id is fixed (SPEC 6.1): Entra's oid, else <connection>:<sub>; it is OIDC_CLAIM_sub/oid and Remote-User (headers = \"remote\"). Apps keyed on the old REMOTE_USER must map users once (docs/migrating.md)",
        ),
        "oidcpassclaimsas" => {
            let profile = match d.arg().to_ascii_lowercase().as_str() {
                "none" => "none",
                "environment" => {
                    note(plan, "environment variables do not reach a proxied app; realmgate sends headers only: none are sent (headers = \"none\"); use \"oidc_claim\" to send OIDC_CLAIM_* headers");
                    "none"
                }
                _ => "oidc_claim",
            };
            plan.route("headers", Value::Str(profile.into()), at);
        }
        "oidcsessioninactivitytimeout" => match seconds(d.arg()) {
            Some(s) => plan.session("idle_timeout", Value::Str(s), at),
            None => note(plan, "not a number of seconds"),
        },
        "oidcsessionmaxduration" => match seconds(d.arg()) {
            Some(s) if s != "0s" && s != "0" => plan.session("lifetime", Value::Str(s), at),
            _ => note(plan, "0 (the ID token's lifetime) has no equivalent: realmgate's session.lifetime is fixed (default 8h)"),
        },
        "oidcsessiontype" | "oidccachetype" | "oidccacheshmmax" | "oidccacheshmentrysizemax" | "oidccacheencrypt" => note(
            plan,
            "sessions live in session.store: \"memory\" (one node) or \"redis\" (replicas); the cookie holds only a random id",
        ),
        "oidcrediscacheserver" => {
            let server = d.arg();
            let url = if server.contains("://") { server.to_string() } else { format!("redis://{server}") };
            plan.session("store", Value::Str("redis".into()), at.clone());
            plan.session("redis_url", Value::Str(url), at);
        }
        "oidcrediscachepassword" | "oidcrediscacheusername" => note(
            plan,
            "put the credentials in the Redis URL (redis://user:PASSWORD@host:6379/0) and that URL in session.redis_url_file (a secret file)",
        ),
        "oidccookiedomain" => plan.session("cookie_domain", Value::Str(d.arg().into()), at),
        "oidccookie" | "oidccookiepath" | "oidccookiehttponly" | "oidccookiesamesite" | "oidcstatemaxnumberofcookies"
        | "oidcstatetimeout" => note(
            plan,
            "realmgate's cookies are session.cookie_name (HttpOnly, Secure on HTTPS, SameSite=Lax, Path=/) and one state cookie bounding pending sign-ins per browser",
        ),
        "oidcdefaultloggedouturl" => note(
            plan,
            "link to /.auth/logout?post_logout_redirect_uri=<that URL> (a path on the host, or a route host's URL)",
        ),
        "oidcdefaulturl" => note(plan, "a sign-in without a target lands on / of the route's host"),
        "oidcauthrequestparams" => {
            let params: Vec<(String, String)> = url::form_urlencoded::parse(d.arg().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            plan.connection("upstream_params", Value::Map(params), at);
        }
        "oidcprovidertokenendpointauth" => match d.arg() {
            "client_secret_basic" | "client_secret_post" => {}
            "private_key_jwt" => note(plan, "use client_certificate_file and client_key_file on the connection (private_key_jwt with the certificate's x5t#S256)"),
            other => note(plan, &format!("{other} is not supported; realmgate uses client_secret_post, private_key_jwt or a federated assertion")),
        },
        "oidcpassidtokenas" => {
            plan.route("pass_id_token", Value::Bool(true), at.clone());
            note(plan, "the ID token is sent as one header (OIDC_id_token with headers = \"oidc_claim\"), not as claims or a payload");
        }
        "oidcpassrefreshtoken" => note(plan, "never: realmgate keeps refresh tokens to itself and refreshes the session"),
        "oidcpassuserinfoas" => note(plan, "userinfo claims are kept with extended_profile = true and sent through headers_extra"),
        "oidcunauthaction" => match d.arg().to_ascii_lowercase().as_str() {
            "pass" => plan.route("auth", Value::Str("optional".into()), at),
            "auth" => {}
            _ => note(plan, "realmgate redirects browsers to sign in and answers other clients 401 JSON (SPEC 5.1)"),
        },
        "oidcunautzaction" => note(plan, "a denied user gets a 403 page that says why and offers to sign out"),
        "oidcxforwardedheaders" => note(
            plan,
            "realmgate believes X-Forwarded-* only from [server] trusted_proxies: list the addresses of the proxies in front",
        ),
        "oidcssvalidateserver" | "oidcsslvalidateserver" | "oidcvalidateissuer" => note(
            plan,
            "not mapped: realmgate always checks TLS certificates and the issuer",
        ),
        "oidcresponsetype" | "oidcresponsemode" | "oidcpkcemethod" => note(
            plan,
            "realmgate uses the authorization code flow with PKCE S256 (response_mode=form_post is served too)",
        ),
        "oidcclaimprefix" if d.arg() != "OIDC_CLAIM_" => note(plan, "realmgate's oidc_claim profile always uses OIDC_CLAIM_"),
        "oidcclaimprefix" | "oidcclaimdelimiter" => {}
        "oidcinfohook" => note(plan, "realmgate's equivalent is GET /.auth/me"),
        "oidcrefreshaccesstokenbeforeexpiry" => note(plan, "realmgate refreshes tokens shortly before they expire by itself (session.refresh_tokens = true)"),
        "oidcwhitelistedclaims" | "oidcblacklistedclaims" => note(plan, "the oidc_claim profile sends a fixed set of claims (sub, oid, tid, email, name, preferred_username, groups); others through headers_extra"),
        n if n.starts_with("oidcoauth") => note(
            plan,
            "OAuth 2.0 resource server: list the accepted token audiences in [[route]] api_audiences (validated against the connection's keys)",
        ),
        _ => note(plan, "not known to `realmgate migrate`; not mapped"),
    }
}
