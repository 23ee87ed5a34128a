//! `realmgate test-connection NAME`: fetch discovery and JWKS once, print what
//! an operator needs to see, and say precisely what is wrong.

use std::io::Write;

use super::jwks::{alg_name, KeySet};
use super::metadata::Metadata;
use super::ProviderConfig;
use crate::config::{ConnectionKind, Settings};
use crate::connection::credential::ClientCredential;
use crate::http_client::HttpClient;

/// `realmgate test-connection NAME`: fetch discovery and JWKS, print issuer,
/// endpoints and key ids to `out`, say precisely what is wrong. True when all is well.
pub async fn test_connection(
    settings: &Settings,
    name: &str,
    out: &mut (dyn Write + Send),
) -> bool {
    // An output error (a closed pipe) counts as failure.
    check(settings, name, out).await.unwrap_or(false)
}

async fn check(
    settings: &Settings,
    name: &str,
    out: &mut (dyn Write + Send),
) -> std::io::Result<bool> {
    let Some(conn) = settings.connection(name) else {
        let known: Vec<&str> = settings
            .connections
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        writeln!(
            out,
            "PROBLEM: there is no connection named {name:?}; configured: {}",
            if known.is_empty() {
                "(none)".to_string()
            } else {
                known.join(", ")
            }
        )?;
        return Ok(false);
    };
    let cfg = ProviderConfig::from_settings(conn);
    match &cfg.kind {
        ConnectionKind::Entra(e) => writeln!(
            out,
            "connection {name:?}: Entra ID, tenant {}, authority {}",
            e.tenant,
            e.authority_host.as_str().trim_end_matches('/')
        )?,
        ConnectionKind::Oidc(o) => writeln!(
            out,
            "connection {name:?}: OpenID Connect, issuer {}",
            o.issuer.as_str().trim_end_matches('/')
        )?,
        // `cli` sends LDAP connections to `ldap::check`.
        ConnectionKind::Ldap(_) => {
            writeln!(out, "connection {name:?}: LDAP (see `ldap::check`)")?;
            return Ok(false);
        }
        // `cli` sends SAML and WS-Fed connections to `saml::check`.
        ConnectionKind::Saml(_) | ConnectionKind::WsFed(_) => {
            writeln!(
                out,
                "connection {name:?}: SAML / WS-Fed (see `saml::check`)"
            )?;
            return Ok(false);
        }
    }
    let http = match HttpClient::new() {
        Ok(h) => h,
        Err(e) => {
            writeln!(out, "PROBLEM: cannot set up the HTTP client: {e}")?;
            return Ok(false);
        }
    };

    let meta = match cfg.discovery_url() {
        None => {
            writeln!(out, "discovery: not used (endpoints configured manually)")?;
            match Metadata::manual(&cfg) {
                Some(m) => m,
                None => {
                    writeln!(out, "PROBLEM: no endpoints configured")?;
                    return Ok(false);
                }
            }
        }
        Some(url) => {
            writeln!(out, "discovery: {url}")?;
            let response = match http.get(&url).await {
                Ok(r) => r,
                Err(e) => {
                    writeln!(out, "PROBLEM: discovery document unreachable: {url}: {e}")?;
                    return Ok(false);
                }
            };
            if !response.status().is_success() {
                writeln!(
                    out,
                    "PROBLEM: discovery document {url} answered HTTP {}{}",
                    response.status(),
                    error_code(response.body())
                        .map(|c| format!(" (error {c})"))
                        .unwrap_or_default()
                )?;
                if let (ConnectionKind::Entra(e), 400 | 404) =
                    (&cfg.kind, response.status().as_u16())
                {
                    writeln!(
                        out,
                        "  Entra answers this for a tenant it does not know: check tenant = {:?} (a tenant domain or id) and authority_host",
                        e.tenant
                    )?;
                }
                return Ok(false);
            }
            match Metadata::from_discovery(response.body(), &cfg) {
                Ok(m) => m,
                Err(p) => {
                    writeln!(out, "PROBLEM: {}", p.0)?;
                    return Ok(false);
                }
            }
        }
    };

    writeln!(out, "issuer:                 {}", meta.issuer)?;
    if let Some(tid) = &meta.pinned_tid {
        writeln!(out, "tenant id:              {tid}")?;
    }
    writeln!(
        out,
        "authorization_endpoint: {}",
        meta.authorization_endpoint
    )?;
    writeln!(out, "token_endpoint:         {}", meta.token_endpoint)?;
    let opt = |u: &Option<url::Url>| u.as_ref().map_or("(none)".to_string(), |u| u.to_string());
    writeln!(
        out,
        "userinfo_endpoint:      {}",
        opt(&meta.userinfo_endpoint)
    )?;
    writeln!(
        out,
        "end_session_endpoint:   {}",
        opt(&meta.end_session_endpoint)
    )?;
    writeln!(out, "jwks_uri:               {}", meta.jwks_uri)?;

    let jwks_url = meta.jwks_uri.as_str();
    let response = match http.get(jwks_url).await {
        Ok(r) => r,
        Err(e) => {
            writeln!(out, "PROBLEM: JWKS unreachable: {jwks_url}: {e}")?;
            return Ok(false);
        }
    };
    if !response.status().is_success() {
        writeln!(
            out,
            "PROBLEM: JWKS {jwks_url} answered HTTP {}",
            response.status()
        )?;
        return Ok(false);
    }
    let keys = match KeySet::parse(response.body(), 0) {
        Ok(k) => k,
        Err(e) => {
            writeln!(out, "PROBLEM: {e}")?;
            return Ok(false);
        }
    };
    writeln!(out, "signing keys:           {}", keys.keys.len())?;
    for k in &keys.keys {
        writeln!(
            out,
            "  kid {}  {:?}  alg {}",
            k.kid.as_deref().unwrap_or("(none)"),
            k.kind,
            k.alg.map_or("(not declared; RS256 accepted)", alg_name)
        )?;
    }
    for (kid, reason) in &keys.skipped {
        writeln!(
            out,
            "  ignored kid {}: {reason}",
            kid.as_deref().unwrap_or("(none)")
        )?;
    }
    if keys.keys.is_empty() {
        writeln!(
            out,
            "PROBLEM: the JWKS has no usable signing key: no ID token could be verified"
        )?;
        return Ok(false);
    }
    if !check_credential(&http, &cfg, &meta, out).await? {
        return Ok(false);
    }
    writeln!(out, "OK: discovery and keys are usable")?;
    Ok(true)
}

/// Tries a client credentials token request with the connection's
/// credential (Entra always; other providers when discovery lists the
/// grant), so a wrong or expired credential shows before users hit it.
/// Only `invalid_client` means the credential is wrong: a provider may
/// refuse the grant itself for this client (`unauthorized_client`, ...).
async fn check_credential(
    http: &HttpClient,
    cfg: &ProviderConfig,
    meta: &Metadata,
    out: &mut (dyn Write + Send),
) -> std::io::Result<bool> {
    let Some(credential) = &cfg.credential else {
        writeln!(out, "client credential:      none (public client)")?;
        return Ok(true);
    };
    writeln!(out, "client credential:      {}", credential.kind_name())?;
    if !meta.client_credentials_grant {
        writeln!(
            out,
            "  not tried: the discovery document does not list client_credentials in grant_types_supported"
        )?;
        return Ok(true);
    }
    let scope = match &cfg.kind {
        ConnectionKind::Entra(e) => Some(crate::connection::entra::graph_scope(&e.graph_endpoint)),
        // Not OpenID Connect: `test-connection` checks the other kinds elsewhere.
        ConnectionKind::Oidc(_)
        | ConnectionKind::Ldap(_)
        | ConnectionKind::Saml(_)
        | ConnectionKind::WsFed(_) => None,
    };
    let mut params = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &scope {
        params.push(("scope", scope));
    }
    match super::token::request(http, cfg, meta, &params).await {
        Ok(_) => {
            writeln!(
                out,
                "  accepted: a client credentials token request with it succeeded"
            )?;
            Ok(true)
        }
        Err(super::OidcError::Exchange(code)) if code != "invalid_client" && code != "HTTP 401" => {
            writeln!(
                out,
                "  not refused: the token endpoint answered {code} to the client credentials grant (the grant, not the credential)"
            )?;
            Ok(true)
        }
        Err(super::OidcError::Exchange(code)) => {
            writeln!(
                out,
                "PROBLEM: the token endpoint refused the client credential ({code}): {}",
                match credential {
                    ClientCredential::Secret(_) =>
                        "the secret is wrong or expired; create a new one under Certificates & secrets",
                    ClientCredential::Certificate(_) =>
                        "upload this certificate under Certificates & secrets -> Certificates (check the x5t#S256 `realmgate check` prints), or it expired",
                    ClientCredential::AssertionFile(_) =>
                        "the federated token does not match a federated credential of the app registration (issuer, subject, audience), or it expired",
                }
            )?;
            Ok(false)
        }
        Err(e) => {
            writeln!(out, "PROBLEM: {e}")?;
            Ok(false)
        }
    }
}

/// The OAuth `error` code of a JSON error body, sanitized.
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("error")
        .and_then(serde_json::Value::as_str)
        .map(super::token::sanitize_code)
}
