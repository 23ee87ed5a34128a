//! IdP metadata (`EntityDescriptor`) and the SP metadata realmgate serves.
//!
//! IdP metadata comes from a file or a URL the operator configured, so it
//! is trusted like the config file; it is still parsed strictly (no DTD,
//! bounded) because a URL's answer can be anything. What is kept: the
//! entity id, the HTTP-Redirect SSO and SLO endpoints, and the signing
//! certificates (all of them: two during a rollover).

use base64::Engine;
use roxmltree::Node;

use super::verify::IdpTrust;
use super::xml::{self, is, text_only, NS_DSIG};

pub const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// Largest metadata document accepted (Entra's federation metadata is ~25
/// KiB; InCommon-style aggregates are refused: configure one entity).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;

/// What realmgate needs of an IdP.
#[derive(Debug, Clone)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// `SingleSignOnService` with the HTTP-Redirect binding.
    pub sso_url: String,
    /// `SingleLogoutService` with the HTTP-Redirect binding, if any.
    pub slo_url: Option<String>,
    pub trust: IdpTrust,
}

/// Parses an IdP `EntityDescriptor` (or an `EntitiesDescriptor` holding
/// exactly one). Errors say what is missing.
pub fn parse_idp_metadata(raw: &[u8]) -> Result<IdpMetadata, String> {
    if raw.len() > MAX_METADATA_BYTES {
        return Err(format!(
            "the metadata is larger than {MAX_METADATA_BYTES} bytes"
        ));
    }
    let text = std::str::from_utf8(raw).map_err(|_| "the metadata is not UTF-8".to_string())?;
    let doc = xml::parse_strict(text).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    let entity = if is(root, NS_METADATA, "EntityDescriptor") {
        root
    } else if is(root, NS_METADATA, "EntitiesDescriptor") {
        let mut it = xml::children(root, NS_METADATA, "EntityDescriptor");
        match (it.next(), it.next()) {
            (Some(e), None) => e,
            _ => {
                return Err(
                    "the metadata lists several entities; use the IdP's own metadata".into(),
                )
            }
        }
    } else {
        return Err("the metadata is not a SAML EntityDescriptor".into());
    };
    let entity_id = entity
        .attribute("entityID")
        .filter(|s| !s.is_empty())
        .ok_or("the EntityDescriptor has no entityID")?
        .to_string();
    let idp = xml::one_child(entity, NS_METADATA, "IDPSSODescriptor")?
        .ok_or("the metadata has no IDPSSODescriptor (is it the IdP's metadata?)")?;
    let endpoint = |name: &str| {
        xml::children(idp, NS_METADATA, name)
            .find(|s| s.attribute("Binding") == Some(BINDING_REDIRECT))
            .and_then(|s| s.attribute("Location"))
            .map(str::to_string)
    };
    let sso_url = endpoint("SingleSignOnService")
        .ok_or("the IdP has no SingleSignOnService with the HTTP-Redirect binding")?;
    let slo_url = endpoint("SingleLogoutService");
    let trust = IdpTrust::from_der(signing_certs(idp)?)?;
    Ok(IdpMetadata {
        entity_id,
        sso_url,
        slo_url,
        trust,
    })
}

/// The certificates of `KeyDescriptor`s whose `use` is signing or unset.
fn signing_certs(idp: Node<'_, '_>) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for kd in xml::children(idp, NS_METADATA, "KeyDescriptor") {
        if !matches!(kd.attribute("use"), None | Some("signing")) {
            continue;
        }
        for cert in kd
            .descendants()
            .filter(|n| is(*n, NS_DSIG, "X509Certificate"))
        {
            let b64: String = text_only(cert)?
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| "an X509Certificate in the metadata is not base64".to_string())?;
            if !out.contains(&der) {
                out.push(der);
            }
        }
    }
    if out.is_empty() {
        return Err("the IdP metadata has no signing certificate".into());
    }
    Ok(out)
}

/// Escapes text for an XML attribute value or text node.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The SP metadata to give the IdP admin (`GET /.auth/saml/{name}/metadata`).
/// `cert_der`: the SP certificate (`sp_certificate_file`), when requests
/// are signed.
pub fn sp_metadata(
    entity_id: &str,
    acs_url: &str,
    slo_url: &str,
    cert_der: Option<&[u8]>,
) -> String {
    // The same key signs requests and decrypts assertions; the encryption
    // descriptor lists the algorithms accepted (`decrypt`), strongest
    // first, so an IdP that reads them (Shibboleth) picks one of them.
    let key = cert_der
        .map(|der| {
            let info = format!(
                r#"<ds:KeyInfo xmlns:ds="{NS_DSIG}"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"#,
                base64::engine::general_purpose::STANDARD.encode(der)
            );
            let methods: String = super::decrypt::ADVERTISED_CONTENT_ALGORITHMS
                .iter()
                .chain(super::decrypt::KEY_TRANSPORT_ALGORITHMS)
                .map(|a| format!(r#"<md:EncryptionMethod Algorithm="{a}"/>"#))
                .collect();
            format!(
                r#"<md:KeyDescriptor use="signing">{info}</md:KeyDescriptor><md:KeyDescriptor use="encryption">{info}{methods}</md:KeyDescriptor>"#
            )
        })
        .unwrap_or_default();
    let signed = if cert_der.is_some() { "true" } else { "false" };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="{NS_METADATA}" entityID="{eid}"><md:SPSSODescriptor AuthnRequestsSigned="{signed}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{key}<md:SingleLogoutService Binding="{BINDING_REDIRECT}" Location="{slo}"/><md:AssertionConsumerService Binding="{BINDING_POST}" Location="{acs}" index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>
"#,
        eid = escape(entity_id),
        slo = escape(slo_url),
        acs = escape(acs_url),
    )
}
