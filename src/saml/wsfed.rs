//! WS-Federation passive requestor profile (SPEC §9, `type = "wsfed"`):
//! `wa=wsignin1.0` out, `wresult` (a WS-Trust RequestSecurityTokenResponse
//! holding one SAML 2.0 or SAML 1.1 assertion) back to the callback,
//! `wa=wsignout1.0` / `wsignoutcleanup1.0` for sign-out.
//!
//! The assertion goes through the same steps as a SAML response: strict
//! parse, shape (exactly one assertion, directly in `RequestedSecurityToken`;
//! one signature, directly in the assertion), the library's verification
//! against pinned certificates, and fields read only from the canonical
//! bytes of the signed assertion. WS-Fed has no `InResponseTo`: the caller
//! binds the answer to the browser through `wctx` (the pending login's
//! state), like OIDC `state`.

use std::collections::HashSet;

use roxmltree::Node;

use super::response::{read_assertion, Assertion, Expect, SamlError};
use super::verify::{self, IdpTrust};
use super::xml::{self, is, one_child, text_only, XmlError, NS_ASSERTION, NS_DSIG};

const NS_TRUST_2005: &str = "http://schemas.xmlsoap.org/ws/2005/02/trust";
const NS_TRUST_13: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512";
const NS_SAML11: &str = "urn:oasis:names:tc:SAML:1.0:assertion";
const BEARER11: &str = "urn:oasis:names:tc:SAML:1.0:cm:bearer";

fn shape(msg: impl Into<String>) -> SamlError {
    SamlError::Shape(msg.into())
}

fn is_trust(node: Node<'_, '_>, local: &str) -> bool {
    is(node, NS_TRUST_2005, local) || is(node, NS_TRUST_13, local)
}

/// The sign-in redirect (`wa=wsignin1.0`).
pub fn signin_url(passive_endpoint: &str, realm: &str, reply: &str, wctx: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("wa", "wsignin1.0")
        .append_pair("wtrealm", realm)
        .append_pair("wreply", reply)
        .append_pair("wctx", wctx)
        .finish();
    let sep = if passive_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{passive_endpoint}{sep}{q}")
}

/// The sign-out redirect (`wa=wsignout1.0`).
pub fn signout_url(passive_endpoint: &str, realm: &str, reply: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("wa", "wsignout1.0")
        .append_pair("wtrealm", realm)
        .append_pair("wreply", reply)
        .finish();
    let sep = if passive_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{passive_endpoint}{sep}{q}")
}

/// Validates a `wresult`. `expect.sp_entity_id` is the realm (audience);
/// `expect.requested` should allow no `InResponseTo` (WS-Fed binds through
/// `wctx`, which the caller checks).
pub fn validate_wresult(
    wresult: &str,
    trust: &IdpTrust,
    expect: &Expect<'_>,
) -> Result<Assertion, SamlError> {
    if wresult.len() > super::MAX_RESPONSE_BYTES {
        return Err(SamlError::TooLarge);
    }
    let doc = xml::parse_strict(wresult)?;
    let mut root = doc.root_element();
    if is_trust(root, "RequestSecurityTokenResponseCollection") {
        let mut it = root
            .children()
            .filter(|n| is_trust(*n, "RequestSecurityTokenResponse"));
        root = match (it.next(), it.next()) {
            (Some(r), None) => r,
            _ => return Err(shape("the collection does not hold exactly one response")),
        };
    }
    if !is_trust(root, "RequestSecurityTokenResponse") {
        return Err(shape("wresult is not a RequestSecurityTokenResponse"));
    }

    let mut assertions = Vec::new();
    let mut signatures = Vec::new();
    let mut ids = HashSet::new();
    for node in doc.root_element().descendants().filter(Node::is_element) {
        for attr in node.attributes() {
            if xml::is_id_attribute(attr.name()) && !ids.insert(attr.value().to_string()) {
                return Err(shape("two elements share one ID"));
            }
        }
        match node.tag_name().name() {
            "Assertion" => assertions.push(node),
            "EncryptedAssertion" | "EncryptedData" => return Err(SamlError::Encrypted),
            _ => {}
        }
        if is(node, NS_DSIG, "Signature") {
            signatures.push(node);
        }
    }
    let [assertion] = assertions.as_slice() else {
        return Err(shape(format!(
            "{} assertions (exactly one is accepted)",
            assertions.len()
        )));
    };
    let assertion = *assertion;
    let holder = assertion
        .parent_element()
        .filter(|p| is_trust(*p, "RequestedSecurityToken"))
        .filter(|p| p.parent_element() == Some(root))
        .ok_or_else(|| shape("the assertion is not in the response's RequestedSecurityToken"))?;
    if holder.children().filter(Node::is_element).count() != 1 {
        return Err(shape(
            "RequestedSecurityToken holds more than the assertion",
        ));
    }
    let saml2 = is(assertion, NS_ASSERTION, "Assertion");
    if !saml2 && !is(assertion, NS_SAML11, "Assertion") {
        return Err(shape(
            "the token is neither a SAML 2.0 nor a SAML 1.1 assertion",
        ));
    }
    let id_attr = if saml2 { "ID" } else { "AssertionID" };
    let id = assertion.attribute(id_attr).unwrap_or("").to_string();
    if id.is_empty() {
        return Err(shape("the assertion has no ID"));
    }
    let [sig] = signatures.as_slice() else {
        return Err(SamlError::Unsigned("assertion"));
    };
    if sig.parent_element() != Some(assertion) {
        return Err(shape("the signature is not directly in the assertion"));
    }
    let prefixes = verify::check_signature_shape(*sig, &id).map_err(SamlError::Signature)?;
    let signed =
        verify::verify_all(wresult, trust, &[(id.clone(), prefixes)]).map_err(SamlError::from)?;
    let [signed] = signed.as_slice() else {
        return Err(SamlError::Unsigned("assertion"));
    };
    let view = xml::parse_strict(&signed.canonical)?;
    let a = view.root_element();
    if a.attribute(id_attr) != Some(id.as_str()) {
        return Err(shape("the signed element is not the assertion"));
    }
    if saml2 {
        read_assertion(a, id, None, expect)
    } else {
        read_saml11(a, id, expect)
    }
}

fn time(node: Node<'_, '_>, attr: &str) -> Result<Option<u64>, SamlError> {
    match node.attribute(attr) {
        None => Ok(None),
        Some(v) => super::response::parse_time(v)
            .map(Some)
            .ok_or_else(|| shape(format!("{attr} is not a UTC xs:dateTime"))),
    }
}

/// The SAML 1.1 assertion of a WS-Fed token (AD FS), read from signed bytes.
fn read_saml11(a: Node<'_, '_>, id: String, expect: &Expect<'_>) -> Result<Assertion, SamlError> {
    if a.attribute("MajorVersion") != Some("1") || a.attribute("MinorVersion") != Some("1") {
        return Err(shape("the SAML 1.x assertion is not version 1.1"));
    }
    let issuer = a.attribute("Issuer").unwrap_or("").to_string();
    if issuer != expect.idp_entity_id {
        return Err(SamlError::Issuer(issuer));
    }
    let (now, skew) = (expect.now, expect.skew);
    let conditions = one_child(a, NS_SAML11, "Conditions")
        .map_err(shape)?
        .ok_or_else(|| shape("the assertion has no Conditions"))?;
    // DoNotCacheCondition: realmgate keeps no assertion for reuse.
    xml::only_known_conditions(
        conditions,
        NS_SAML11,
        &["AudienceRestrictionCondition", "DoNotCacheCondition"],
    )
    .map_err(shape)?;
    let not_on_or_after = time(conditions, "NotOnOrAfter")?
        .ok_or_else(|| shape("the Conditions have no NotOnOrAfter"))?;
    if time(conditions, "NotBefore")?.is_some_and(|nb| nb > now.saturating_add(skew))
        || not_on_or_after.saturating_add(skew) <= now
    {
        return Err(SamlError::Expired);
    }
    let mut restrictions = 0usize;
    for r in xml::children(conditions, NS_SAML11, "AudienceRestrictionCondition") {
        restrictions = restrictions.saturating_add(1);
        let mut found = false;
        for aud in xml::children(r, NS_SAML11, "Audience") {
            if text_only(aud).map_err(shape)? == expect.sp_entity_id {
                found = true;
            }
        }
        if !found {
            return Err(SamlError::Audience);
        }
    }
    if restrictions == 0 {
        return Err(SamlError::Audience);
    }

    // Every statement names the same bearer subject.
    let mut subject: Option<(String, Option<String>)> = None;
    let mut authenticated = false;
    let mut attributes: Vec<(String, Vec<String>)> = Vec::new();
    for stmt in a.children().filter(Node::is_element) {
        let name = stmt.tag_name().name();
        if stmt.tag_name().namespace() != Some(NS_SAML11)
            || !matches!(name, "AttributeStatement" | "AuthenticationStatement")
        {
            continue;
        }
        let subj = one_child(stmt, NS_SAML11, "Subject")
            .map_err(shape)?
            .ok_or_else(|| shape("a statement has no Subject"))?;
        let nid = match one_child(subj, NS_SAML11, "NameIdentifier").map_err(shape)? {
            Some(n) => (
                text_only(n).map_err(shape)?,
                n.attribute("Format").map(str::to_string),
            ),
            None => (String::new(), None),
        };
        let bearer = one_child(subj, NS_SAML11, "SubjectConfirmation")
            .map_err(shape)?
            .map(|sc| {
                xml::children(sc, NS_SAML11, "ConfirmationMethod")
                    .any(|m| text_only(m).as_deref() == Ok(BEARER11))
            })
            .unwrap_or(false);
        if !bearer {
            return Err(shape("a statement's subject is not confirmed as bearer"));
        }
        match &subject {
            Some(s) if *s != nid => return Err(shape("the statements name different subjects")),
            Some(_) => {}
            None => subject = Some(nid),
        }
        if name == "AuthenticationStatement" {
            authenticated = true;
        } else {
            for attr in xml::children(stmt, NS_SAML11, "Attribute") {
                let local = attr.attribute("AttributeName").unwrap_or("");
                if local.is_empty() {
                    return Err(shape("an Attribute has no AttributeName"));
                }
                // AD FS: the claim type is AttributeNamespace/AttributeName.
                let full = match attr.attribute("AttributeNamespace") {
                    Some(ns) if !ns.is_empty() => format!("{}/{local}", ns.trim_end_matches('/')),
                    _ => local.to_string(),
                };
                let mut values = Vec::new();
                for v in xml::children(attr, NS_SAML11, "AttributeValue") {
                    values.push(text_only(v).map_err(shape)?);
                }
                match attributes.iter_mut().find(|(n, _)| *n == full) {
                    Some((_, existing)) => existing.extend(values),
                    None => attributes.push((full, values)),
                }
            }
        }
    }
    if !authenticated {
        return Err(shape("the assertion has no AuthenticationStatement"));
    }
    let (name_id, name_id_format) = subject.unwrap_or_default();
    Ok(Assertion {
        id,
        issuer,
        name_id,
        name_id_format,
        name_qualifier: None,
        sp_name_qualifier: None,
        session_index: None,
        in_response_to: None,
        attributes,
        valid_until: not_on_or_after.saturating_add(skew),
        session_not_on_or_after: None,
    })
}

/// Reads the passive endpoint and signing certificates of WS-Fed metadata
/// (`FederationMetadata.xml`: a `RoleDescriptor` of type
/// `fed:SecurityTokenServiceType`).
pub fn parse_wsfed_metadata(raw: &[u8]) -> Result<(String, String, IdpTrust), String> {
    const NS_FED: &str = "http://docs.oasis-open.org/wsfed/federation/200706";
    if raw.len() > super::metadata::MAX_METADATA_BYTES {
        return Err("the metadata is too large".into());
    }
    let text = std::str::from_utf8(raw).map_err(|_| XmlError::NotUtf8.to_string())?;
    let doc = xml::parse_strict(text).map_err(|e| e.to_string())?;
    let entity = doc.root_element();
    if !is(entity, super::metadata::NS_METADATA, "EntityDescriptor") {
        return Err("the metadata is not an EntityDescriptor".into());
    }
    let entity_id = entity.attribute("entityID").unwrap_or("").to_string();
    if entity_id.is_empty() {
        return Err("the EntityDescriptor has no entityID".into());
    }
    let sts = xml::children(entity, super::metadata::NS_METADATA, "RoleDescriptor")
        .find(|r| {
            r.attributes()
                .any(|a| a.name() == "type" && a.value().ends_with(":SecurityTokenServiceType"))
        })
        .ok_or(
            "the metadata has no SecurityTokenServiceType RoleDescriptor (is it WS-Fed metadata?)",
        )?;
    let passive = sts
        .descendants()
        .find(|n| is(*n, NS_FED, "PassiveRequestorEndpoint"))
        .and_then(|p| p.descendants().find(|n| n.tag_name().name() == "Address"))
        .map(text_only)
        .transpose()?
        .filter(|s| !s.is_empty())
        .ok_or("the metadata has no PassiveRequestorEndpoint address")?;
    let mut certs = Vec::new();
    for kd in xml::children(sts, super::metadata::NS_METADATA, "KeyDescriptor") {
        if !matches!(kd.attribute("use"), None | Some("signing")) {
            continue;
        }
        for c in kd
            .descendants()
            .filter(|n| is(*n, NS_DSIG, "X509Certificate"))
        {
            use base64::Engine;
            let b64: String = text_only(c)?
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| "an X509Certificate is not base64".to_string())?;
            if !certs.contains(&der) {
                certs.push(der);
            }
        }
    }
    Ok((entity_id, passive, IdpTrust::from_der(certs)?))
}
