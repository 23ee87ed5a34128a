//! The Entra-specific rules of bearer access tokens (SPEC 5.9), on top of the
//! checks every token gets in `id_token::check_claims`.
//!
//! Entra issues two token formats, chosen by the *API's* app registration
//! (`accessTokenAcceptedVersion`), not by the client:
//!
//! | format | `iss` | `ver` | calling app |
//! | --- | --- | --- | --- |
//! | v2.0 | discovery's issuer, `{authority}/{tid}/v2.0` | `2.0` | `azp` |
//! | v1.0 | `https://sts.windows.net/{tid}/` (public cloud) | `1.0` | `appid` |
//!
//! Both are signed by the same keys (the tenant's JWKS), so the issuer and
//! the version must agree: a token that claims one format with the other's
//! issuer was not made by Entra. Entra ID tokens carry neither `azp` nor
//! `appid`, which tells them apart from access tokens even when an app role
//! (`roles`) is present in both.

use serde_json::{Map, Value};
use url::Url;

use super::issuer::TENANT_PLACEHOLDER;
use crate::config::EntraSettings;

/// The issuer template of Entra v1.0 access tokens for an authority host.
///
/// The public cloud's v1.0 tokens come from `https://sts.windows.net/{tid}/`
/// and the China cloud's from `https://sts.chinacloudapi.cn/{tid}/`; other
/// authorities (US Government, and test doubles) issue v1.0 tokens as
/// `{authority_host}/{tid}/`, which is also what the v1.0 discovery document
/// at `{authority_host}/{tenant}/.well-known/openid-configuration` says.
pub fn v1_issuer_template(authority_host: &Url) -> String {
    match authority_host.host_str() {
        Some("login.microsoftonline.com" | "login.windows.net") => {
            format!("https://sts.windows.net/{TENANT_PLACEHOLDER}/")
        }
        Some("login.chinacloudapi.cn" | "login.partner.microsoftonline.cn") => {
            format!("https://sts.chinacloudapi.cn/{TENANT_PLACEHOLDER}/")
        }
        _ => format!(
            "{}/{TENANT_PLACEHOLDER}/",
            authority_host.as_str().trim_end_matches('/')
        ),
    }
}

/// Whether `iss` is a v1.0 issuer of this Entra connection (the token's own
/// `tid` filled in; `check_claims` already made sure it is a tenant id).
fn is_v1_issuer(iss: &str, tid: &str, e: &EntraSettings) -> bool {
    iss == v1_issuer_template(&e.authority_host).replace(TENANT_PLACEHOLDER, tid)
}

/// After `check_claims`: `ver` must match the issuer's format, and the token
/// must name the calling app the way that format does.
pub fn check_entra_version(claims: &Map<String, Value>, e: &EntraSettings) -> Result<(), String> {
    let get = |k: &str| claims.get(k).and_then(Value::as_str);
    let iss = get("iss").unwrap_or_default();
    let tid = get("tid").unwrap_or_default();
    let (want_ver, client_claim) = if is_v1_issuer(iss, tid, e) {
        ("1.0", "appid")
    } else {
        ("2.0", "azp")
    };
    match get("ver") {
        Some(v) if v == want_ver => {}
        Some(_) => {
            return Err(format!(
                "ver does not match the issuer (a v{want_ver} issuer issues ver {want_ver} tokens)"
            ))
        }
        None => return Err("ver missing".into()),
    }
    if get(client_claim).is_none_or(str::is_empty) {
        return Err(format!(
            "not an access token (no {client_claim} claim naming the calling app)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_issuers_by_cloud() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            v1_issuer_template(&u("https://login.microsoftonline.com")),
            "https://sts.windows.net/{tenantid}/"
        );
        assert_eq!(
            v1_issuer_template(&u("https://login.chinacloudapi.cn/")),
            "https://sts.chinacloudapi.cn/{tenantid}/"
        );
        assert_eq!(
            v1_issuer_template(&u("https://login.microsoftonline.us")),
            "https://login.microsoftonline.us/{tenantid}/"
        );
        assert_eq!(
            v1_issuer_template(&u("http://127.0.0.1:4000")),
            "http://127.0.0.1:4000/{tenantid}/"
        );
    }
}
