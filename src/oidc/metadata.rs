//! Provider metadata: the discovery document (or the manual endpoints of an
//! `oidc` connection), checked against the configuration before anything in it
//! is trusted.
//!
//! openidconnect's own discovery is not used: it insists that the document's
//! `issuer` equals the URL it was fetched from, which Entra's multi-tenant
//! (`common`/`organizations`) documents never satisfy (their issuer is the
//! `https://login.microsoftonline.com/{tenantid}/v2.0` template), and the
//! single-tenant ones don't either when the tenant is configured by domain.

use serde::Deserialize;
use url::Url;

use super::ProviderConfig;
use crate::config::ConnectionKind;
use crate::http_client;

/// The placeholder Entra's multi-tenant discovery documents put in `issuer`.
/// Entra's rules live with the Entra kind; re-exported for the verifier.
pub use crate::connection::entra::issuer::{is_guid, TENANT_PLACEHOLDER};

/// How a token's `iss` is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerRule {
    /// `iss` must equal this string exactly.
    Exact(String),
    /// Entra multi-tenant: `iss` must equal this template with `{tenantid}`
    /// replaced by the token's own `tid`.
    TenantTemplate(String),
    /// Configured without discovery (`Metadata::manual`): `iss` must equal
    /// the configured issuer, held here without a trailing `/`, with or
    /// without one. Nothing says how the provider spells it, and the URL
    /// parser adds a `/` to a bare origin, so `https://tenant.auth0.com/`
    /// (Auth0's) and `https://idp.example` (most others') both work
    /// however the operator wrote them.
    Configured(String),
}

impl IssuerRule {
    /// True when `iss` is `base` with or without one trailing `/`
    /// ([`IssuerRule::Configured`]).
    pub fn configured_matches(base: &str, iss: &str) -> bool {
        iss.strip_suffix('/').unwrap_or(iss) == base
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (RFC 6749 2.3.1): the default when discovery says nothing.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// Everything realmgate needs from discovery, validated.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// The discovery document's `issuer` as written (may be a template).
    pub issuer: String,
    pub issuer_rule: IssuerRule,
    /// Entra single-tenant: the tenant id in the issuer; tokens must carry it as `tid`.
    pub pinned_tid: Option<String>,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    pub userinfo_endpoint: Option<Url>,
    pub end_session_endpoint: Option<Url>,
    pub client_auth: ClientAuth,
    /// RFC 9207 `authorization_response_iss_parameter_supported`.
    pub iss_parameter_supported: bool,
    /// `grant_types_supported` lists `client_credentials` (Entra's
    /// discovery lists no grant types, but Entra serves it).
    pub client_credentials_grant: bool,
}

#[derive(Deserialize)]
struct RawDiscovery {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    jwks_uri: Option<String>,
    userinfo_endpoint: Option<String>,
    end_session_endpoint: Option<String>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    grant_types_supported: Option<Vec<String>>,
}

/// A reason discovery cannot be used, worded for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataProblem(pub String);

impl Metadata {
    /// Metadata of an `oidc` connection configured without discovery.
    pub(crate) fn manual(cfg: &ProviderConfig) -> Option<Metadata> {
        let ConnectionKind::Oidc(o) = &cfg.kind else {
            return None;
        };
        let e = o.endpoints.as_ref()?;
        Some(Metadata {
            issuer: trim_issuer(o.issuer.as_str()).to_string(),
            issuer_rule: IssuerRule::Configured(trim_issuer(o.issuer.as_str()).to_string()),
            pinned_tid: None,
            authorization_endpoint: e.authorization_endpoint.clone(),
            token_endpoint: e.token_endpoint.clone(),
            jwks_uri: e.jwks_uri.clone(),
            userinfo_endpoint: e.userinfo_endpoint.clone(),
            end_session_endpoint: e.end_session_endpoint.clone(),
            client_auth: ClientAuth::Basic,
            iss_parameter_supported: false,
            client_credentials_grant: false,
        })
    }

    /// Parses and checks a discovery document fetched for `cfg`.
    pub(crate) fn from_discovery(
        body: &[u8],
        cfg: &ProviderConfig,
    ) -> Result<Metadata, MetadataProblem> {
        let raw: RawDiscovery = serde_json::from_slice(body).map_err(|e| {
            MetadataProblem(format!("the discovery document is not valid JSON ({e})"))
        })?;
        let issuer = raw
            .issuer
            .filter(|i| !i.is_empty())
            .ok_or_else(|| MetadataProblem("the discovery document has no issuer".into()))?;
        let (issuer_rule, pinned_tid) = issuer_rule(&issuer, cfg)?;
        let endpoint = |name: &str, v: Option<String>| -> Result<Url, MetadataProblem> {
            let v =
                v.ok_or_else(|| MetadataProblem(format!("the discovery document has no {name}")))?;
            parse_endpoint(name, &v)
        };
        let optional = |name: &str, v: Option<String>| -> Result<Option<Url>, MetadataProblem> {
            v.map(|v| parse_endpoint(name, &v)).transpose()
        };
        let client_auth = match raw.token_endpoint_auth_methods_supported.as_deref() {
            None => ClientAuth::Basic,
            Some(m) if m.iter().any(|m| m == "client_secret_basic") => ClientAuth::Basic,
            Some(m) if m.iter().any(|m| m == "client_secret_post") => ClientAuth::Post,
            Some(_) => ClientAuth::Basic,
        };
        Ok(Metadata {
            issuer,
            issuer_rule,
            pinned_tid,
            authorization_endpoint: endpoint("authorization_endpoint", raw.authorization_endpoint)?,
            token_endpoint: endpoint("token_endpoint", raw.token_endpoint)?,
            jwks_uri: endpoint("jwks_uri", raw.jwks_uri)?,
            userinfo_endpoint: optional("userinfo_endpoint", raw.userinfo_endpoint)?,
            end_session_endpoint: optional("end_session_endpoint", raw.end_session_endpoint)?,
            client_auth,
            iss_parameter_supported: raw.authorization_response_iss_parameter_supported,
            client_credentials_grant: matches!(cfg.kind, ConnectionKind::Entra(_))
                || raw
                    .grant_types_supported
                    .iter()
                    .flatten()
                    .any(|g| g == "client_credentials"),
        })
    }
}

/// Endpoints must be absolute https URLs (http only on loopback), like every provider URL.
fn parse_endpoint(name: &str, value: &str) -> Result<Url, MetadataProblem> {
    let url =
        Url::parse(value).map_err(|_| MetadataProblem(format!("{name} {value:?} is not a URL")))?;
    let uri: http::Uri = url
        .as_str()
        .parse()
        .map_err(|_| MetadataProblem(format!("{name} {value:?} is not a URL")))?;
    http_client::check_url(&uri).map_err(|e| MetadataProblem(format!("{name}: {e}")))?;
    Ok(url)
}

fn trim_issuer(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

/// Decides how tokens' `iss` is checked, and refuses a document whose issuer
/// does not belong to the configured connection.
fn issuer_rule(
    issuer: &str,
    cfg: &ProviderConfig,
) -> Result<(IssuerRule, Option<String>), MetadataProblem> {
    match &cfg.kind {
        ConnectionKind::Oidc(o) => {
            // OpenID Connect Discovery 4.3: the issuer must be identical to the
            // configured one (we tolerate only a trailing `/`, which URL
            // normalization adds to a bare origin).
            if trim_issuer(issuer) != trim_issuer(o.issuer.as_str()) {
                return Err(MetadataProblem(format!(
                    "issuer mismatch: the discovery document says {issuer:?}, the connection is configured with {:?}",
                    trim_issuer(o.issuer.as_str())
                )));
            }
            Ok((IssuerRule::Exact(issuer.to_string()), None))
        }
        ConnectionKind::Entra(e) => {
            crate::connection::entra::issuer::discovery_rule(e, issuer).map_err(MetadataProblem)
        }
        ConnectionKind::Ldap(_) => Err(MetadataProblem(
            "an LDAP connection has no discovery document".into(),
        )),
        ConnectionKind::Saml(_) | ConnectionKind::WsFed(_) => Err(MetadataProblem(
            "a SAML or WS-Fed connection has no discovery document".into(),
        )),
    }
}
