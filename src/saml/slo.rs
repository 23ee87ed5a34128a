//! Single logout (SPEC §9: `GET/POST /.auth/saml/{connection}/slo`): the
//! IdP's LogoutRequest ends the sessions it names (by `SessionIndex`, which
//! sessions keep as `sid`, within this connection only); the IdP's
//! LogoutResponse completes an SP-initiated logout.
//!
//! A LogoutRequest is authenticated either by the HTTP-Redirect binding's
//! query signature ([`verify_redirect`]) or by an enveloped XML signature
//! on the message (HTTP-POST), checked like a response's; unsigned ones are
//! refused (anyone could otherwise sign users out).

use roxmltree::Node;

use super::binding::{self, BindingError};
use super::response::{parse_time, SamlError};
use super::verify::{self, IdpTrust};
use super::xml::{self, is, one_child, text_only, NS_ASSERTION, NS_DSIG, NS_PROTOCOL};

/// A verified LogoutRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id: String,
    pub name_id: String,
    /// Sessions to end; empty means every session of `name_id`.
    pub session_indexes: Vec<String>,
    /// Until when the request ID must be remembered (replay), Unix seconds.
    pub valid_until: u64,
}

/// How long after its `IssueInstant` a LogoutRequest without
/// `NotOnOrAfter` is accepted (plus the clock skew): a browser redirect
/// takes seconds, so a few minutes bounds how long its ID is remembered.
pub const LOGOUT_REQUEST_MAX_AGE: u64 = 300;

/// A verified LogoutResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    pub in_response_to: Option<String>,
    pub success: bool,
}

fn shape(msg: impl Into<String>) -> SamlError {
    SamlError::Shape(msg.into())
}

/// The raw (still percent-encoded) value of `name` in `query`, refusing
/// repeats. A name is compared decoded, as the form reader that later
/// takes `RelayState` (and tells a request from a response) decodes it:
/// `Relay%53tate` is `RelayState`, so it is signed octets too (and fails
/// the signature), never an unsigned value beside a signed message that
/// realmgate would echo under its own signature (review 13).
fn raw_param<'q>(query: &'q str, name: &str) -> Result<Option<&'q str>, SamlError> {
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name || decode(k) == name {
            if found.is_some() {
                return Err(shape(format!("{name} is repeated")));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

fn decode(v: &str) -> String {
    url::form_urlencoded::parse(format!("v={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Checks the HTTP-Redirect signature of a raw query carrying
/// `SAMLRequest` or `SAMLResponse`, and returns the inflated message.
pub fn verify_redirect(raw_query: &str, trust: &IdpTrust) -> Result<Vec<u8>, SamlError> {
    let (param, message) = match (
        raw_param(raw_query, "SAMLRequest")?,
        raw_param(raw_query, "SAMLResponse")?,
    ) {
        (Some(m), None) => ("SAMLRequest", m),
        (None, Some(m)) => ("SAMLResponse", m),
        _ => {
            return Err(shape(
                "exactly one of SAMLRequest and SAMLResponse is expected",
            ))
        }
    };
    let sig_alg = raw_param(raw_query, "SigAlg")?.ok_or(SamlError::Unsigned("logout message"))?;
    let signature =
        raw_param(raw_query, "Signature")?.ok_or(SamlError::Unsigned("logout message"))?;
    // The signed octets, in the order the binding fixes, as received.
    let mut octets = format!("{param}={message}");
    if let Some(rs) = raw_param(raw_query, "RelayState")? {
        octets.push_str(&format!("&RelayState={rs}"));
    }
    octets.push_str(&format!("&SigAlg={sig_alg}"));
    let sig = binding::decode_post(&decode(signature))
        .map_err(|e| SamlError::Signature(e.to_string()))?;
    verify::verify_query_signature(trust, &decode(sig_alg), octets.as_bytes(), &sig)
        .map_err(SamlError::Signature)?;
    binding::decode_redirect(&decode(message)).map_err(|e: BindingError| shape(e.to_string()))
}

/// The signed view of a logout message: when it carries an enveloped
/// signature it is verified and the canonical bytes returned; without one,
/// `binding_verified` must say the redirect signature was checked.
fn signed_text(
    text: &str,
    root: Node<'_, '_>,
    trust: &IdpTrust,
    binding_verified: bool,
) -> Result<Option<String>, SamlError> {
    let sigs: Vec<Node<'_, '_>> = root
        .descendants()
        .filter(|n| is(*n, NS_DSIG, "Signature"))
        .collect();
    match sigs.as_slice() {
        [] if binding_verified => Ok(None),
        [] => Err(SamlError::Unsigned("logout message")),
        [sig] if sig.parent_element() == Some(root) => {
            let id = root.attribute("ID").unwrap_or("");
            let prefixes = verify::check_signature_shape(*sig, id).map_err(SamlError::Signature)?;
            let signed = verify::verify_all(text, trust, &[(id.to_string(), prefixes)])
                .map_err(SamlError::from)?;
            Ok(signed.into_iter().next().map(|s| s.canonical))
        }
        _ => Err(shape(
            "the logout message has a misplaced or extra signature",
        )),
    }
}

/// Parses and checks a LogoutRequest from `idp_entity_id`, signed either
/// by the binding (`binding_verified`) or in the XML.
pub fn parse_logout_request(
    raw: &[u8],
    trust: &IdpTrust,
    binding_verified: bool,
    idp_entity_id: &str,
    slo_url: &str,
    now: u64,
) -> Result<LogoutRequest, SamlError> {
    let text = std::str::from_utf8(raw).map_err(|_| xml::XmlError::NotUtf8)?;
    let doc = xml::parse_strict(text)?;
    let signed = signed_text(text, doc.root_element(), trust, binding_verified)?;
    let view;
    let root = match &signed {
        Some(c) => {
            view = xml::parse_strict(c)?;
            view.root_element()
        }
        None => doc.root_element(),
    };
    if !is(root, NS_PROTOCOL, "LogoutRequest") {
        return Err(shape("not a LogoutRequest"));
    }
    check_common(root, idp_entity_id, slo_url)?;
    let skew = super::flow::SKEW_SECS;
    // IssueInstant (required): not from the future, not older than
    // LOGOUT_REQUEST_MAX_AGE; NotOnOrAfter, when present, not past. Both
    // with the clock skew. The ID is then remembered until the later of
    // the two ends, so a captured request cannot be sent again.
    let issued = root
        .attribute("IssueInstant")
        .ok_or_else(|| shape("the LogoutRequest has no IssueInstant"))
        .and_then(|t| {
            parse_time(t).ok_or_else(|| shape("IssueInstant is not a UTC xs:dateTime"))
        })?;
    let issued_until = issued
        .saturating_add(LOGOUT_REQUEST_MAX_AGE)
        .saturating_add(skew);
    if issued > now.saturating_add(skew) || issued_until <= now {
        return Err(SamlError::Expired);
    }
    let mut valid_until = issued_until;
    if let Some(t) = root.attribute("NotOnOrAfter") {
        let t = parse_time(t).ok_or_else(|| shape("NotOnOrAfter is not a UTC xs:dateTime"))?;
        if t.saturating_add(skew) <= now {
            return Err(SamlError::Expired);
        }
        valid_until = valid_until.max(t.saturating_add(skew));
    }
    let id = root.attribute("ID").unwrap_or("");
    if id.is_empty() {
        return Err(shape("the LogoutRequest has no ID"));
    }
    let name_id = one_child(root, NS_ASSERTION, "NameID")
        .map_err(shape)?
        .map(text_only)
        .transpose()
        .map_err(shape)?
        .ok_or_else(|| {
            shape("the LogoutRequest has no NameID (encrypted NameIDs are not supported)")
        })?;
    let mut session_indexes = Vec::new();
    for si in xml::children(root, NS_PROTOCOL, "SessionIndex") {
        session_indexes.push(text_only(si).map_err(shape)?);
    }
    Ok(LogoutRequest {
        id: id.to_string(),
        name_id,
        session_indexes,
        valid_until,
    })
}

/// Parses and checks the IdP's LogoutResponse.
pub fn parse_logout_response(
    raw: &[u8],
    trust: &IdpTrust,
    binding_verified: bool,
    idp_entity_id: &str,
    slo_url: &str,
) -> Result<LogoutResponse, SamlError> {
    let text = std::str::from_utf8(raw).map_err(|_| xml::XmlError::NotUtf8)?;
    let doc = xml::parse_strict(text)?;
    let signed = signed_text(text, doc.root_element(), trust, binding_verified)?;
    let view;
    let root = match &signed {
        Some(c) => {
            view = xml::parse_strict(c)?;
            view.root_element()
        }
        None => doc.root_element(),
    };
    if !is(root, NS_PROTOCOL, "LogoutResponse") {
        return Err(shape("not a LogoutResponse"));
    }
    check_common(root, idp_entity_id, slo_url)?;
    let success = one_child(root, NS_PROTOCOL, "Status")
        .map_err(shape)?
        .and_then(|s| one_child(s, NS_PROTOCOL, "StatusCode").ok().flatten())
        .and_then(|c| c.attribute("Value"))
        == Some("urn:oasis:names:tc:SAML:2.0:status:Success");
    Ok(LogoutResponse {
        in_response_to: root.attribute("InResponseTo").map(str::to_string),
        success,
    })
}

fn check_common(root: Node<'_, '_>, idp_entity_id: &str, slo_url: &str) -> Result<(), SamlError> {
    let issuer = one_child(root, NS_ASSERTION, "Issuer")
        .map_err(shape)?
        .map(text_only)
        .transpose()
        .map_err(shape)?
        .unwrap_or_default();
    if issuer != idp_entity_id {
        return Err(SamlError::Issuer(issuer));
    }
    // Required: every logout message here is signed, and a signed one
    // must name where it was sent (SAML bindings 3.4.5.2, 3.5.5.2), so one
    // meant for another SP cannot be replayed here.
    if root.attribute("Destination") != Some(slo_url) {
        return Err(SamlError::Recipient);
    }
    Ok(())
}

/// The LogoutResponse sent back to the IdP after its LogoutRequest:
/// `Success`, or with `partial` (some of the user's sessions may live on,
/// SAML 2.0 core 3.7.3.2) the top-level `Responder` with the second-level
/// `PartialLogout` (core 3.2.2.2: the top-level code is one of the four;
/// Shibboleth's SP answers a partial logout so too).
pub fn logout_response(
    id: &str,
    now: u64,
    destination: &str,
    in_response_to: &str,
    sp_entity_id: &str,
    partial: bool,
) -> String {
    use super::metadata::escape;
    let status = if partial {
        r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:PartialLogout"/></samlp:StatusCode>"#
    } else {
        r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>"#
    };
    format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dst}" InResponseTo="{irt}"><saml:Issuer>{iss}</saml:Issuer><samlp:Status>{status}</samlp:Status></samlp:LogoutResponse>"#,
        id = escape(id),
        now = binding::instant(now),
        dst = escape(destination),
        irt = escape(in_response_to),
        iss = escape(sp_entity_id),
    )
}
