//! The keys of `type = "saml"` and `type = "wsfed"` connections (SPEC §9),
//! validated into [`SamlSettings`]. Every problem names its key and says
//! what is expected, like the rest of `realmgate check`.

use std::path::PathBuf;

use url::Url;

use super::attributes::AttributeMap;
use super::metadata::IdpMetadata;
use super::response::SignedPart;
use super::verify::IdpTrust;
use crate::config::raw::RawConnection;

/// SAML 2.0 Web Browser SSO or WS-Federation passive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Saml,
    WsFed,
}

/// Where the IdP's entity id, endpoints and certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdpSource {
    MetadataUrl(Url),
    MetadataFile(PathBuf),
    /// `idp_entity_id` + `idp_sso_url` + `idp_certificate_file`.
    Manual {
        entity_id: String,
        sso_url: Url,
        slo_url: Option<Url>,
        certificate_file: PathBuf,
    },
}

/// A validated SAML or WS-Fed connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlSettings {
    pub protocol: Protocol,
    pub idp: IdpSource,
    /// None: `<origin>/.auth/saml/<name>`.
    pub sp_entity_id: Option<String>,
    pub sp_key_file: Option<PathBuf>,
    pub sp_certificate_file: Option<PathBuf>,
    pub attributes: AttributeMap,
    pub allow_idp_initiated: bool,
    pub require_signed: SignedPart,
    /// WS-Fed `wtrealm` (None for SAML: the SP entity id is used).
    pub realm: Option<String>,
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: &'static str,
    pub problem: String,
    pub expected: String,
}

fn problem(key: &'static str, problem: impl Into<String>, expected: impl Into<String>) -> Problem {
    Problem {
        key,
        problem: problem.into(),
        expected: expected.into(),
    }
}

/// Keys that belong to OpenID Connect kinds and mean nothing here.
fn oidc_keys(raw: &RawConnection) -> Vec<&'static str> {
    [
        ("tenant", raw.tenant.is_some()),
        ("allowed_tenants", raw.allowed_tenants.is_some()),
        ("authority_host", raw.authority_host.is_some()),
        ("graph_endpoint", raw.graph_endpoint.is_some()),
        ("issuer", raw.issuer.is_some()),
        (
            "authorization_endpoint",
            raw.authorization_endpoint.is_some(),
        ),
        ("token_endpoint", raw.token_endpoint.is_some()),
        ("jwks_uri", raw.jwks_uri.is_some()),
        ("userinfo_endpoint", raw.userinfo_endpoint.is_some()),
        ("end_session_endpoint", raw.end_session_endpoint.is_some()),
        ("client_id", raw.client_id.is_some()),
        ("client_secret", raw.client_secret.is_some()),
        ("client_secret_file", raw.client_secret_file.is_some()),
        ("scopes", raw.scopes.is_some()),
        ("upstream_params", raw.upstream_params.is_some()),
        ("forward_params", raw.forward_params.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect()
}

fn https_url(key: &'static str, text: &str, problems: &mut Vec<Problem>) -> Option<Url> {
    match Url::parse(text) {
        Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => Some(u),
        Ok(_) => {
            problems.push(problem(
                key,
                format!("{text:?} is not an https URL"),
                "an https:// URL (http:// only to a loopback address)",
            ));
            None
        }
        Err(_) => {
            problems.push(problem(
                key,
                format!("{text:?} is not a URL"),
                "an https:// URL",
            ));
            None
        }
    }
}

/// A URL to this machine (`localhost`, 127.0.0.0/8, `::1`): plain http is
/// allowed there (development, tests).
pub(crate) fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Validates the keys of a `saml` or `wsfed` connection.
pub fn from_raw(kind: &str, raw: &RawConnection) -> Result<SamlSettings, Vec<Problem>> {
    let protocol = match kind {
        "saml" => Protocol::Saml,
        "wsfed" => Protocol::WsFed,
        _ => {
            return Err(vec![problem(
                "type",
                format!("{kind:?} is not a SAML kind"),
                "\"saml\" or \"wsfed\"",
            )])
        }
    };
    let mut problems: Vec<Problem> = oidc_keys(raw)
        .into_iter()
        .map(|k| {
            problem(
                k,
                format!("is not a key of {kind} connections"),
                "no such key (it belongs to OpenID Connect connections)",
            )
        })
        .collect();

    // Where the IdP is described; the key names differ per protocol (SPEC §9).
    let (url_key, file_key, url, file, wrong) = match protocol {
        Protocol::Saml => (
            "idp_metadata_url",
            "idp_metadata_file",
            raw.idp_metadata_url.as_deref(),
            raw.idp_metadata_file.clone(),
            [
                ("metadata_url", raw.metadata_url.is_some()),
                ("metadata_file", raw.metadata_file.is_some()),
                ("realm", raw.realm.is_some()),
            ],
        ),
        Protocol::WsFed => (
            "metadata_url",
            "metadata_file",
            raw.metadata_url.as_deref(),
            raw.metadata_file.clone(),
            [
                ("idp_metadata_url", raw.idp_metadata_url.is_some()),
                ("idp_metadata_file", raw.idp_metadata_file.is_some()),
                // Said on its own below, with what to do instead.
                ("allow_idp_initiated", false),
            ],
        ),
    };
    // WS-Fed sign-in is always started here: the answer is bound to this
    // browser's sign-in by `wctx`, and an unsolicited token (no `wctx`)
    // has nothing to bind it to. Refused rather than ignored, so nobody
    // believes a portal tile works when it does not.
    if protocol == Protocol::WsFed && raw.allow_idp_initiated.is_some() {
        problems.push(problem(
            "allow_idp_initiated",
            "is not supported on wsfed connections: WS-Federation sign-in must start at realmgate (its answer is bound to the browser by wctx), so an unsolicited token from the IdP is always refused",
            "remove the key, and link the portal tile to /.auth/login/<name> (or to a protected page); for IdP-initiated sign-in use a type = \"saml\" connection",
        ));
    }
    for (k, set) in wrong {
        if set {
            problems.push(problem(
                k,
                format!("is not a key of {kind} connections"),
                format!("{url_key} or {file_key}"),
            ));
        }
    }
    let manual_set = raw.idp_entity_id.is_some()
        || raw.idp_sso_url.is_some()
        || raw.idp_certificate_file.is_some();
    let idp = match (url, file, manual_set) {
        (Some(u), None, false) => https_url(
            if protocol == Protocol::Saml {
                "idp_metadata_url"
            } else {
                "metadata_url"
            },
            u,
            &mut problems,
        )
        .map(IdpSource::MetadataUrl),
        (None, Some(f), false) => Some(IdpSource::MetadataFile(f)),
        (None, None, true) if protocol == Protocol::Saml => {
            let entity_id = raw.idp_entity_id.clone().unwrap_or_default();
            if entity_id.trim().is_empty() {
                problems.push(problem(
                    "idp_entity_id",
                    "is missing",
                    "the IdP's entity id (its metadata's entityID)",
                ));
            }
            let sso = match raw.idp_sso_url.as_deref() {
                Some(s) => https_url("idp_sso_url", s, &mut problems),
                None => {
                    problems.push(problem(
                        "idp_sso_url",
                        "is missing",
                        "the IdP's HTTP-Redirect SingleSignOnService URL",
                    ));
                    None
                }
            };
            let slo = raw
                .idp_slo_url
                .as_deref()
                .and_then(|s| https_url("idp_slo_url", s, &mut problems));
            let cert = raw.idp_certificate_file.clone();
            if cert.is_none() {
                problems.push(problem(
                    "idp_certificate_file",
                    "is missing",
                    "a PEM file with the IdP's signing certificate(s)",
                ));
            }
            match (sso, cert) {
                (Some(sso_url), Some(certificate_file)) => Some(IdpSource::Manual {
                    entity_id,
                    sso_url,
                    slo_url: slo,
                    certificate_file,
                }),
                _ => None,
            }
        }
        _ => {
            let choices = if protocol == Protocol::Saml {
                format!("exactly one of {url_key}, {file_key}, or idp_entity_id + idp_sso_url + idp_certificate_file")
            } else {
                format!("exactly one of {url_key} or {file_key}")
            };
            problems.push(problem(
                url_key,
                "the IdP is described by none or several sources",
                choices,
            ));
            None
        }
    };

    if let Some(e) = raw.sp_entity_id.as_deref() {
        if e.trim().is_empty() || e.chars().any(char::is_control) {
            problems.push(problem(
                "sp_entity_id",
                format!("{e:?} is not an entity id"),
                "a URI such as \"https://apps.contoso.com/.auth/saml/fabrikam\"",
            ));
        }
    }
    if raw.sp_key_file.is_some() != raw.sp_certificate_file.is_some() {
        problems.push(problem(
            "sp_key_file",
            "sp_key_file and sp_certificate_file go together",
            "both (to sign requests) or neither",
        ));
    }
    let attributes = match raw.attributes.as_ref() {
        Some(m) => AttributeMap::from_config(m).unwrap_or_else(|e| {
            problems.push(problem(
                "attributes",
                e,
                format!(
                    "a table with keys among {}",
                    super::attributes::FIELDS.join(", ")
                ),
            ));
            AttributeMap::default()
        }),
        None => AttributeMap::default(),
    };
    let require_signed = match raw.require_signed.as_deref().unwrap_or("either") {
        "either" => SignedPart::Either,
        "assertion" => SignedPart::Assertion,
        "response" => SignedPart::Response,
        other => {
            problems.push(problem(
                "require_signed",
                format!("{other:?} is not a choice"),
                "\"assertion\", \"response\" or \"either\"",
            ));
            SignedPart::Either
        }
    };
    let realm = match protocol {
        Protocol::WsFed => match raw.realm.as_deref() {
            Some(r) if !r.trim().is_empty() => Some(r.to_string()),
            _ => None,
        },
        Protocol::Saml => None,
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    match idp {
        Some(idp) => Ok(SamlSettings {
            protocol,
            idp,
            sp_entity_id: raw.sp_entity_id.clone(),
            sp_key_file: raw.sp_key_file.clone(),
            sp_certificate_file: raw.sp_certificate_file.clone(),
            attributes,
            allow_idp_initiated: raw.allow_idp_initiated.unwrap_or(false),
            require_signed,
            realm,
        }),
        None => Err(vec![problem(
            url_key,
            "the IdP is not described",
            "see the messages above",
        )]),
    }
}

impl SamlSettings {
    /// The SP entity id: `sp_entity_id`, else `<origin>/.auth/saml/<name>`
    /// (for WS-Fed, `realm` when set).
    pub fn entity_id(&self, name: &str, origin: &str) -> String {
        if let (Protocol::WsFed, Some(r)) = (self.protocol, &self.realm) {
            return r.clone();
        }
        self.sp_entity_id
            .clone()
            .unwrap_or_else(|| format!("{}/.auth/saml/{name}", origin.trim_end_matches('/')))
    }

    /// The Assertion Consumer Service (and WS-Fed reply) URL.
    pub fn acs_url(name: &str, origin: &str) -> String {
        format!(
            "{}/.auth/login/{name}/callback",
            origin.trim_end_matches('/')
        )
    }

    /// The IdP description from a file or the manual keys (a metadata URL
    /// is fetched by the caller, which then uses `source::parse_for`).
    pub fn load_local_idp(&self) -> Result<Option<IdpMetadata>, String> {
        match &self.idp {
            IdpSource::MetadataUrl(_) => Ok(None),
            IdpSource::MetadataFile(p) => {
                let raw = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                // WS-Fed's FederationMetadata (passive endpoint) or SAML's.
                super::source::parse_for(self.protocol, &raw)
                    .map(Some)
                    .map_err(|e| format!("{}: {e}", p.display()))
            }
            IdpSource::Manual {
                entity_id,
                sso_url,
                slo_url,
                certificate_file,
            } => {
                let pem = std::fs::read_to_string(certificate_file)
                    .map_err(|e| format!("{}: {e}", certificate_file.display()))?;
                let trust = IdpTrust::from_pem(&pem)
                    .map_err(|e| format!("{}: {e}", certificate_file.display()))?;
                Ok(Some(IdpMetadata {
                    entity_id: entity_id.clone(),
                    sso_url: sso_url.to_string(),
                    slo_url: slo_url.as_ref().map(Url::to_string),
                    trust,
                }))
            }
        }
    }

    /// Where the IdP is described, for `realmgate check`.
    pub fn idp_description(&self) -> String {
        match &self.idp {
            IdpSource::MetadataUrl(u) => format!("metadata {u}"),
            IdpSource::MetadataFile(p) => format!("metadata file {}", p.display()),
            IdpSource::Manual { entity_id, .. } => format!("{entity_id} (configured keys)"),
        }
    }

    /// What `realmgate check` prints for this connection: what to register
    /// at the IdP.
    pub fn summary(&self, name: &str, origin: &str) -> Vec<String> {
        let kind = match self.protocol {
            Protocol::Saml => "SAML",
            Protocol::WsFed => "WS-Fed",
        };
        let mut lines = vec![
            format!("{kind} connection {name:?}: register at the IdP"),
            format!(
                "  entity id (identifier, wtrealm): {}",
                self.entity_id(name, origin)
            ),
            format!(
                "  ACS / reply URL (HTTP-POST):     {}",
                Self::acs_url(name, origin)
            ),
        ];
        if self.protocol == Protocol::Saml {
            lines.push(format!(
                "  SP metadata:                     {}/.auth/saml/{name}/metadata",
                origin.trim_end_matches('/')
            ));
            lines.push(format!(
                "  single logout URL:               {}/.auth/saml/{name}/slo",
                origin.trim_end_matches('/')
            ));
        }
        lines
    }
}
