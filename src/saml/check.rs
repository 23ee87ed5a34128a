//! `realmgate test-connection <saml or wsfed connection>`: fetches (or
//! reads) the IdP metadata the way sign-in will, and says what was found or
//! what is wrong.

use std::io::Write;

use crate::config::ConnectionSettings;
use crate::http_client::HttpClient;

use super::config::{IdpSource, Protocol};

/// Prints what the connection's IdP description holds; false on a problem.
pub async fn test_connection(conn: &ConnectionSettings, out: &mut dyn Write) -> bool {
    let Some(settings) = conn.saml() else {
        let _ = writeln!(
            out,
            "PROBLEM: {:?} is not a SAML or WS-Fed connection",
            conn.name
        );
        return false;
    };
    let kind = match settings.protocol {
        Protocol::Saml => "SAML 2.0",
        Protocol::WsFed => "WS-Federation",
    };
    let _ = writeln!(
        out,
        "connection {:?}: {kind}, IdP {}",
        conn.name,
        settings.idp_description()
    );
    let found = match &settings.idp {
        IdpSource::MetadataUrl(url) => match HttpClient::new() {
            Ok(http) => super::source::fetch(&http, url.as_str(), settings.protocol)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot set up the HTTP client: {e}")),
        },
        _ => settings
            .load_local_idp()
            .and_then(|m| m.ok_or_else(|| "the IdP is not described".to_string())),
    };
    match found {
        Ok(md) => {
            let _ = writeln!(out, "IdP entity id: {}", md.entity_id);
            let _ = writeln!(out, "IdP sign-in URL: {}", md.sso_url);
            match &md.slo_url {
                Some(u) => {
                    let _ = writeln!(out, "IdP single logout URL: {u}");
                }
                None => {
                    let _ = writeln!(out, "IdP single logout URL: (none)");
                }
            }
            let _ = writeln!(
                out,
                "OK: the IdP metadata is usable (signing certificates pinned)"
            );
            true
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "PROBLEM: {e}. Check the metadata URL or file, and that this host can reach the IdP."
            );
            false
        }
    }
}
