//! `realmgate explain --url URL (--claims FILE | --user EMAIL)`: which route,
//! connection and policy clauses decide a URL for an identity, step by step.
//! It runs the same code as the gateway (router, `policy::evaluate`).

use std::path::Path;
use std::process::ExitCode;

use serde_json::{Map, Value};

use crate::config::Settings;
use crate::session::model::{Session, SessionTerms};

/// Exit code for "denied" (0 = allowed, 1 = denied or not routable, 64 = usage).
const DENIED: u8 = 1;

pub fn run(settings: &Settings, url: &str, claims: Option<&Path>, user: Option<&str>) -> ExitCode {
    match explain(settings, url, claims, user) {
        Ok((text, allowed)) => {
            print!("{text}");
            if allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(DENIED)
            }
        }
        Err(e) => {
            eprintln!("realmgate explain: {e}");
            ExitCode::from(64)
        }
    }
}

/// The explanation text and whether the request would be forwarded.
pub fn explain(
    settings: &Settings,
    url: &str,
    claims: Option<&Path>,
    user: Option<&str>,
) -> Result<(String, bool), String> {
    use std::fmt::Write;
    let parsed = url::Url::parse(url).map_err(|e| format!("--url {url:?} is not an absolute URL ({e}); expected e.g. https://hr.contoso.com/payroll"))?;
    let host = parsed
        .host_str()
        .ok_or("--url has no host")?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let mut out = String::new();
    let router = crate::router::Router::new(&settings.routes);
    let path =
        crate::pathnorm::normalize(parsed.path()).unwrap_or_else(|| parsed.path().to_string());
    let _ = writeln!(out, "1. Route: host {host:?}, path {path:?}");
    let Some(route) = router.find(&host, &path) else {
        let _ = writeln!(
            out,
            "   no route serves this host and path: the gateway answers 421 and forwards nothing."
        );
        return Ok((out, false));
    };
    let _ = writeln!(
        out,
        "   route {:?} (path prefix {:?}) -> upstream {}",
        route.name, route.path_prefix, route.upstream
    );
    if crate::endpoints::is_auth_path(parsed.path()) {
        let _ = writeln!(
            out,
            "2. /.auth/ is answered by realmgate itself; nothing is forwarded."
        );
        return Ok((out, false));
    }
    if crate::pathnorm::is_public(parsed.path(), &route.public) {
        let _ = writeln!(out, "2. Public path (matches one of {:?}): forwarded without sign-in, identity headers stripped.", route.public);
        return Ok((out, true));
    }
    let _ = writeln!(out, "2. Not a public path: sign-in required.");
    let session = match (claims, user) {
        (Some(path), _) => from_claims(settings, path)?,
        (None, Some(email)) => from_email(settings, route, email)?,
        (None, None) => return Err("give --claims FILE or --user EMAIL".into()),
    };
    // An email says nothing of groups, app roles or other claims (first
    // hour 7): say so rather than count zero of them.
    let described_by_email = claims.is_none();
    let groups = if described_by_email {
        "groups and app roles unknown (an email does not say them; give --claims FILE)".to_string()
    } else {
        format!(
            "{} group(s), app roles [{}]",
            session.groups.len(),
            session.roles.join(", ")
        )
    };
    let _ = writeln!(
        out,
        "3. Identity: user {:?} via connection {:?}, tenant {}, email {} ({}), {groups}",
        session.user_id,
        session.connection,
        session.tenant_id.as_deref().unwrap_or("(none)"),
        session.email.as_deref().unwrap_or("(none)"),
        if session.email_trust.is_verified() {
            "verified"
        } else {
            "unverified: email rules cannot match"
        },
    );
    let connection = settings.connection(&session.connection).map(|c| &**c);
    let clauses = crate::policy::evaluate(route, connection, &session);
    let _ = writeln!(out, "4. Policy:");
    for c in &clauses {
        let verdict = match c.failed {
            None => "pass".to_string(),
            Some(r) => format!("FAIL ({})", r.label()),
        };
        let unknown = described_by_email
            && matches!(
                c.failed,
                Some(
                    crate::policy::DenyReason::Groups
                        | crate::policy::DenyReason::Roles
                        | crate::policy::DenyReason::Claims
                )
            );
        if unknown {
            let _ = writeln!(
                out,
                "   - {:<20} {verdict:<24} unknown: --user does not say the user's {}",
                c.rule,
                c.failed.map_or("claims", |r| r.label())
            );
        } else {
            let _ = writeln!(out, "   - {:<20} {verdict:<24} {}", c.rule, c.detail);
        }
    }
    let decision = crate::policy::decide(route, connection, &session);
    match decision {
        Ok(_) => {
            let _ = writeln!(
                out,
                "5. Decision: ALLOW. Forwarded to {} with the {:?} identity headers.",
                route.upstream, route.headers
            );
            Ok((out, true))
        }
        Err(reason) => {
            let _ = writeln!(out, "5. Decision: DENY (403): {}", reason.text());
            if described_by_email
                && matches!(
                    reason,
                    crate::policy::DenyReason::Groups
                        | crate::policy::DenyReason::Roles
                        | crate::policy::DenyReason::Claims
                )
            {
                let _ = writeln!(
                    out,
                    "   This clause judges {} that --user cannot know: the real user may pass it. \
                     Describe the user with --claims FILE (a JSON object of their ID token claims, \
                     e.g. {{\"oid\": \"...\", \"tid\": \"...\", \"groups\": [\"<group id>\"], \"roles\": [\"...\"]}}) to decide it.",
                    reason.label()
                );
            }
            Ok((out, false))
        }
    }
}

fn from_claims(settings: &Settings, path: &Path) -> Result<Session, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --claims {}: {e}", path.display()))?;
    let claims: Map<String, Value> = serde_json::from_str(&text)
        .map_err(|e| format!("--claims {} is not a JSON object: {e}", path.display()))?;
    let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    // The connection: named in the file ("connection"), else the only one.
    let connection = match s("connection") {
        Some(c) => c,
        None if settings.connections.len() == 1 => settings.connections[0].name.clone(),
        None => return Err(format!(
            "{} does not say which connection signed the user in; add \"connection\": \"<name>\" (one of: {})",
            path.display(),
            settings.connections.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        )),
    };
    let conn = settings
        .connection(&connection)
        .ok_or_else(|| format!("no connection named {connection:?}"))?;
    // What a sign-in at this connection would make of these claims.
    let identity = crate::connection::described_identity(conn, &claims)
        .ok_or("the claims have no oid (Entra) or sub")?;
    Ok(Session::new(identity, described_terms()))
}

/// A described user's session never expires and keeps no tokens.
fn described_terms() -> SessionTerms {
    SessionTerms {
        created_at: 0,
        expires_at: u64::MAX,
        keep_access_token: false,
        keep_refresh_token: false,
    }
}

fn from_email(
    settings: &Settings,
    route: &crate::config::RouteSettings,
    email: &str,
) -> Result<Session, String> {
    let allowed = settings
        .connections
        .iter()
        .filter(|c| route.connections.contains(&c.name));
    let conn = crate::discovery::connection_for(email, allowed.map(|c| &**c))
        .ok_or_else(|| "no connection of this route has the email's domain as a home realm domain; use --claims to describe the user".to_string())?;
    Ok(Session::new(
        crate::connection::described_by_email(conn, email),
        described_terms(),
    ))
}

#[cfg(test)]
mod tests;
