//! `realmgate test-connection NAME [--user LOGIN]` for LDAP connections:
//! each URL (connect, TLS), the search account's bind, and optionally one
//! user looked up with the search account (no password is asked or sent).
//! Says what is wrong and what to do.

use std::io::Write;
use std::sync::Arc;

use super::{Directory, DirectoryError};
use crate::config::{ConnectionKind, ConnectionSettings};

/// True when everything checked is well. Output errors count as failure.
pub async fn test_connection(
    conn: &ConnectionSettings,
    user: Option<&str>,
    out: &mut (dyn Write + Send),
) -> bool {
    run(conn, user, out).await.unwrap_or(false)
}

async fn run(
    conn: &ConnectionSettings,
    user: Option<&str>,
    out: &mut (dyn Write + Send),
) -> std::io::Result<bool> {
    let ConnectionKind::Ldap(cfg) = &conn.kind else {
        writeln!(
            out,
            "PROBLEM: connection {:?} is not an LDAP connection",
            conn.name
        )?;
        return Ok(false);
    };
    let mode = if cfg.bind_as.is_some() {
        "direct bind (bind_as)"
    } else {
        "search-then-bind"
    };
    writeln!(out, "connection {:?}: LDAP, {mode}", conn.name)?;
    let dir = match Directory::new(Arc::new((**cfg).clone())) {
        Ok(d) => d,
        Err(e) => {
            writeln!(out, "PROBLEM: {e}")?;
            return Ok(false);
        }
    };
    let mut ok = true;
    let mut any_up = false;
    for (url, r) in dir.probe_urls().await {
        match r {
            Ok(()) => {
                any_up = true;
                writeln!(out, "  {url}: connected, TLS verified")?;
            }
            Err(e) => {
                ok = false;
                writeln!(out, "PROBLEM: {e}")?;
                writeln!(out, "  (check the host and port, the firewall, and that the certificate is issued for this host name by a CA in ca_file or the system store)")?;
            }
        }
    }
    if !any_up {
        writeln!(
            out,
            "PROBLEM: no directory server answered; sign-ins would get a 503 page"
        )?;
        return Ok(false);
    }
    match dir.probe_search_account().await {
        None => writeln!(out, "  no search account (direct bind): a user can only be checked with their password, by signing in")?,
        Some(Ok(())) => writeln!(out, "  search account {:?}: bind OK", cfg.bind_dn.as_deref().unwrap_or(""))?,
        Some(Err(e)) => {
            writeln!(out, "PROBLEM: {e}")?;
            return Ok(false);
        }
    }
    if let (Some(login), None) = (user, &cfg.bind_as) {
        match dir.lookup(login).await {
            Ok(Some(u)) => {
                writeln!(out, "  user {login:?} found: {}", u.dn)?;
                writeln!(out, "    user id: {}:{}", conn.name, u.subject)?;
                writeln!(out, "    email: {}", u.email.as_deref().unwrap_or("(none)"))?;
                writeln!(out, "    name: {}", u.name.as_deref().unwrap_or("(none)"))?;
                writeln!(
                    out,
                    "    username: {}",
                    u.username.as_deref().unwrap_or("(none)")
                )?;
                writeln!(
                    out,
                    "    groups: {}",
                    if u.groups.is_empty() {
                        "(none)".to_string()
                    } else {
                        u.groups.join(", ")
                    }
                )?;
                if u.email.is_none() {
                    writeln!(out, "  note: no {:?} attribute: policies by email and email headers will not apply to this user", cfg.attributes.email)?;
                }
            }
            Ok(None) => {
                ok = false;
                writeln!(out, "PROBLEM: no entry under {:?} matches the user filter for {login:?}; check user_base, user_filter, and that the search account may read users", cfg.user_base.as_deref().unwrap_or(""))?;
            }
            Err(DirectoryError::InvalidCredentials) => {
                ok = false;
                writeln!(out, "PROBLEM: the user filter matches several entries for {login:?}; make it match one unique attribute")?;
            }
            Err(e) => {
                ok = false;
                writeln!(out, "PROBLEM: {e}")?;
            }
        }
    }
    if ok {
        writeln!(out, "OK")?;
    }
    Ok(ok)
}
