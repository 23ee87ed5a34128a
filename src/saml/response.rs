//! `<samlp:Response>` validation: shape, signatures, then the protocol
//! checks on the signed content only (see the module doc of `saml`).

use std::collections::HashSet;

use roxmltree::Node;

use super::decrypt::SpDecrypter;
use super::verify::{self, IdpTrust};
use super::xml::{self, is, one_child, text_only, XmlError, NS_ASSERTION, NS_DSIG, NS_PROTOCOL};

/// Largest decoded response accepted (a response with a few hundred group
/// claims is ~60 KiB).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Which part of the response must carry the IdP's signature. Never
/// neither: an unsigned response with an unsigned assertion is refused
/// whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignedPart {
    /// The assertion must be signed (Entra, AD FS, Okta sign it by default).
    Assertion,
    /// The response must be signed (Shibboleth's default).
    Response,
    /// Either one; only what is signed is read.
    #[default]
    Either,
}

/// The requests this browser started (from its pending-login cookie).
#[derive(Debug, Clone, Copy)]
pub struct Requested<'a> {
    /// IDs of AuthnRequests this browser sent to this connection's IdP.
    pub ids: &'a [String],
    /// Accept a response answering no request (IdP-initiated).
    pub allow_idp_initiated: bool,
}

/// What this SP expects of a response.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub idp_entity_id: &'a str,
    /// Must be in every `AudienceRestriction`.
    pub sp_entity_id: &'a str,
    /// The ACS URL: `Recipient` and `Destination`.
    pub acs_url: &'a str,
    pub requested: Requested<'a>,
    /// SAML Web SSO: the bearer confirmation must name the ACS URL as
    /// `Recipient`. WS-Fed tokens may omit it (a present one must match).
    pub recipient_required: bool,
    pub signed: SignedPart,
    /// Unix seconds.
    pub now: u64,
    /// Allowed clock difference with the IdP, seconds.
    pub skew: u64,
}

/// A validated assertion, read only from signed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// The assertion `ID` (for the replay cache).
    pub id: String,
    pub issuer: String,
    /// Empty when the subject has no NameID.
    pub name_id: String,
    pub name_id_format: Option<String>,
    /// The NameID's `NameQualifier` and `SPNameQualifier` (repeated in a
    /// LogoutRequest).
    pub name_qualifier: Option<String>,
    pub sp_name_qualifier: Option<String>,
    /// `AuthnStatement/@SessionIndex`, for single logout.
    pub session_index: Option<String>,
    /// The request answered; None for IdP-initiated.
    pub in_response_to: Option<String>,
    /// Attribute name -> values, in document order.
    pub attributes: Vec<(String, Vec<String>)>,
    /// Until when the assertion ID must be remembered (Unix seconds).
    pub valid_until: u64,
    /// `SessionNotOnOrAfter`, when the IdP limits the session.
    pub session_not_on_or_after: Option<u64>,
}

/// Why a response was refused. Every variant is the IdP's or the user's
/// doing: a 4xx page, never a 5xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamlError {
    #[error("the SAML response is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("the SAML response is not acceptable XML: {0}")]
    Xml(#[from] XmlError),
    #[error("the SAML response has an unexpected shape: {0}")]
    Shape(String),
    #[error("the SAML response signature is not acceptable: {0}")]
    Signature(String),
    /// No pinned certificate verifies the signature, and it names none of
    /// them: maybe a key rollover the cached metadata does not list yet
    /// (the sign-in refetches the metadata, rate-limited, and checks once
    /// more). Logged and counted as `signature`, like [`SamlError::Signature`].
    #[error("the SAML response is not signed by a certificate the IdP metadata lists: {0}")]
    UnknownKey(String),
    #[error("the SAML {0} is not signed by the IdP (configure the IdP to sign it)")]
    Unsigned(&'static str),
    #[error("the IdP refused the sign-in (status {0})")]
    Status(String),
    #[error("the SAML assertion was issued by {0:?}, not by the configured IdP")]
    Issuer(String),
    #[error("the SAML response answers no sign-in this browser started")]
    InResponseTo,
    #[error("unsolicited (IdP-initiated) SAML responses are not accepted by this connection (allow_idp_initiated)")]
    IdpInitiated,
    #[error("the SAML assertion is not meant for this service (audience)")]
    Audience,
    #[error("the SAML assertion is not meant for this endpoint (recipient/destination)")]
    Recipient,
    #[error("the SAML assertion has expired or is not valid yet (check the clocks)")]
    Expired,
    #[error("the SAML assertion has already been used")]
    Replay,
    #[error(
        "the SAML assertion is encrypted but this connection has no sp_key_file to decrypt it (set sp_key_file and sp_certificate_file, or turn assertion encryption off at the IdP)"
    )]
    Encrypted,
    #[error("the encrypted SAML assertion is not acceptable: {0}")]
    Decrypt(String),
}

impl SamlError {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            SamlError::TooLarge => "too_large",
            SamlError::Xml(_) => "xml",
            SamlError::Shape(_) => "shape",
            SamlError::Signature(_) | SamlError::UnknownKey(_) => "signature",
            SamlError::Unsigned(_) => "unsigned",
            SamlError::Status(_) => "status",
            SamlError::Issuer(_) => "issuer",
            SamlError::InResponseTo => "in_response_to",
            SamlError::IdpInitiated => "idp_initiated",
            SamlError::Audience => "audience",
            SamlError::Recipient => "recipient",
            SamlError::Expired => "expired",
            SamlError::Replay => "replay",
            SamlError::Encrypted => "encrypted",
            SamlError::Decrypt(_) => "decrypt",
        }
    }
}

impl From<verify::VerifyError> for SamlError {
    fn from(e: verify::VerifyError) -> SamlError {
        match e {
            verify::VerifyError::Refused(m) => SamlError::Signature(m),
            verify::VerifyError::NoPinnedKey(m) => SamlError::UnknownKey(m),
        }
    }
}

fn shape(msg: impl Into<String>) -> SamlError {
    SamlError::Shape(msg.into())
}

/// Validates a decoded `<samlp:Response>`. The replay check is the
/// caller's (it may need Redis): remember [`Assertion::id`] until
/// [`Assertion::valid_until`] and refuse a second use. An encrypted
/// assertion is refused ([`SamlError::Encrypted`]); see
/// [`validate_response_with`].
pub fn validate_response(
    raw: &[u8],
    trust: &IdpTrust,
    expect: &Expect<'_>,
) -> Result<Assertion, SamlError> {
    validate_response_with(raw, trust, expect, None)
}

/// [`validate_response`], with an `EncryptedAssertion` decrypted by
/// `decrypter` (the SP key) when there is one: the decrypted assertion then
/// goes through exactly the same signature and condition checks.
pub fn validate_response_with(
    raw: &[u8],
    trust: &IdpTrust,
    expect: &Expect<'_>,
    decrypter: Option<&SpDecrypter>,
) -> Result<Assertion, SamlError> {
    if raw.len() > MAX_RESPONSE_BYTES {
        return Err(SamlError::TooLarge);
    }
    let text = std::str::from_utf8(raw).map_err(|_| XmlError::NotUtf8)?;
    let doc = xml::parse_strict(text)?;
    let root = doc.root_element();
    if !is(root, NS_PROTOCOL, "Response") {
        return Err(shape("the document is not a samlp:Response"));
    }
    let root_id = root.attribute("ID").unwrap_or("").to_string();
    if root_id.is_empty() {
        return Err(shape("the Response has no ID"));
    }

    // One pass over every element: assertions, IDs, signatures.
    let mut assertions = Vec::new();
    let mut encrypted = Vec::new();
    let mut ids = HashSet::new();
    let mut signatures = Vec::new();
    for node in root.descendants().filter(Node::is_element) {
        for attr in node.attributes() {
            let id_like = xml::is_id_attribute(attr.name())
                || (attr.name() == "id"
                    && attr.namespace() == Some("http://www.w3.org/XML/1998/namespace"));
            if id_like && !ids.insert(attr.value().to_string()) {
                return Err(shape("two elements share one ID"));
            }
        }
        if node.tag_name().name() == "Assertion" {
            assertions.push(node);
        }
        if node.tag_name().name() == "EncryptedAssertion" {
            encrypted.push(node);
        }
        if is(node, NS_DSIG, "Signature") {
            signatures.push(node);
        }
    }
    match (assertions.len(), encrypted.as_slice()) {
        (_, []) => {}
        (0, [one]) => {
            let decrypter = decrypter.ok_or(SamlError::Encrypted)?;
            return encrypted_response(
                text,
                root,
                &root_id,
                *one,
                &signatures,
                trust,
                expect,
                decrypter,
            );
        }
        (0, _) => {
            return Err(shape(format!(
                "{} encrypted assertions (exactly one is accepted)",
                encrypted.len()
            )))
        }
        _ => {
            return Err(shape(
                "both an encrypted and a plain assertion (exactly one is accepted)",
            ))
        }
    }
    // Any element named Assertion counts, whatever its namespace: a second
    // one in a foreign namespace is still a wrapping attempt.
    let [assertion] = assertions.as_slice() else {
        // An IdP that did not sign the user in (cancelled, denied, not
        // assigned) answers with a failed Status and no assertion: say so
        // instead of "cannot be verified". Read unsigned, this only picks
        // which refusal it is; nothing from it is ever accepted.
        if assertions.is_empty() {
            check_status(root)?;
        }
        return Err(shape(format!(
            "{} assertions (exactly one is accepted)",
            assertions.len()
        )));
    };
    let assertion = *assertion;
    if !is(assertion, NS_ASSERTION, "Assertion") || assertion.parent_element() != Some(root) {
        return Err(shape(
            "the assertion is not a SAML 2.0 Assertion directly in the Response",
        ));
    }
    let assertion_id = assertion.attribute("ID").unwrap_or("").to_string();
    if assertion_id.is_empty() {
        return Err(shape("the Assertion has no ID"));
    }

    // Signatures: each directly in the Response or the Assertion, one each.
    let mut expected = Vec::new();
    let mut seen_parents = HashSet::new();
    for sig in &signatures {
        let parent = sig
            .parent_element()
            .filter(|p| *p == root || *p == assertion)
            .ok_or_else(|| shape("a Signature is outside the Response and the Assertion"))?;
        if !seen_parents.insert(parent.id()) {
            return Err(shape("an element carries two signatures"));
        }
        let parent_id = parent.attribute("ID").unwrap_or("");
        let prefixes =
            verify::check_signature_shape(*sig, parent_id).map_err(SamlError::Signature)?;
        expected.push((parent_id.to_string(), prefixes));
    }
    let signed = if expected.is_empty() {
        Vec::new()
    } else {
        verify::verify_all(text, trust, &expected).map_err(SamlError::from)?
    };
    let response_signed = signed.iter().find(|s| s.id == root_id);
    let assertion_signed = signed.iter().find(|s| s.id == assertion_id);
    match expect.signed {
        SignedPart::Assertion if assertion_signed.is_none() => {
            return Err(SamlError::Unsigned("assertion"))
        }
        SignedPart::Response if response_signed.is_none() => {
            return Err(SamlError::Unsigned("response"))
        }
        _ if assertion_signed.is_none() && response_signed.is_none() => {
            return Err(SamlError::Unsigned("response or assertion"))
        }
        _ => {}
    }

    // From here on, only signed bytes: the canonical form of the signed
    // Response (which contains the assertion) or of the signed Assertion.
    let response_view;
    let response_doc = match response_signed {
        Some(s) => {
            response_view = xml::parse_strict(&s.canonical)?;
            Some(response_view.root_element())
        }
        None => None,
    };
    let assertion_view;
    let signed_assertion = match (assertion_signed, response_doc) {
        (Some(s), _) => {
            assertion_view = xml::parse_strict(&s.canonical)?;
            assertion_view.root_element()
        }
        (None, Some(resp)) => {
            let mut it = xml::children(resp, NS_ASSERTION, "Assertion");
            let a = it
                .next()
                .ok_or_else(|| shape("the signed Response holds no Assertion"))?;
            if it.next().is_some() {
                return Err(shape("the signed Response holds two assertions"));
            }
            a
        }
        (None, None) => return Err(SamlError::Unsigned("response or assertion")),
    };
    if !is(signed_assertion, NS_ASSERTION, "Assertion")
        || signed_assertion.attribute("ID") != Some(assertion_id.as_str())
    {
        return Err(shape("the signed element is not the assertion"));
    }

    // Response-level fields: from the signed Response when there is one,
    // else from the unsigned one (checked, never trusted alone: the signed
    // assertion carries the recipient and request binding).
    let resp = response_doc.unwrap_or(root);
    let response_irt = check_response(resp, expect)?;
    read_assertion(signed_assertion, assertion_id, response_irt, expect)
}

/// The Response-level checks (status, Destination, Issuer); answers the
/// Response's `InResponseTo`.
fn check_response<'a>(
    resp: Node<'a, '_>,
    expect: &Expect<'_>,
) -> Result<Option<&'a str>, SamlError> {
    check_status(resp)?;
    if let Some(dest) = resp.attribute("Destination") {
        if dest != expect.acs_url {
            return Err(SamlError::Recipient);
        }
    }
    if let Some(issuer) = one_child(resp, NS_ASSERTION, "Issuer").map_err(shape)? {
        let value = text_only(issuer).map_err(shape)?;
        if value != expect.idp_entity_id {
            return Err(SamlError::Issuer(value));
        }
    }
    Ok(resp.attribute("InResponseTo"))
}

/// A Response holding one `EncryptedAssertion` (and no plain one): the
/// Response's own signature (the only one allowed outside the cipher text)
/// is verified on the document as received; the assertion is decrypted
/// from the signed view when the Response is signed, and must be exactly
/// one `saml:Assertion`, whose own signature (when it has one) is verified
/// on the plaintext. Then the same checks as a plain response. A
/// signature over the encrypted wrapper is no signature of the assertion
/// (it is refused where it stands), so `require_signed = "assertion"`
/// needs the assertion's own.
#[allow(clippy::too_many_arguments)]
fn encrypted_response(
    text: &str,
    root: Node<'_, '_>,
    root_id: &str,
    encrypted: Node<'_, '_>,
    signatures: &[Node<'_, '_>],
    trust: &IdpTrust,
    expect: &Expect<'_>,
    decrypter: &SpDecrypter,
) -> Result<Assertion, SamlError> {
    if !is(encrypted, NS_ASSERTION, "EncryptedAssertion")
        || encrypted.parent_element() != Some(root)
    {
        return Err(shape(
            "the encrypted assertion is not a SAML 2.0 EncryptedAssertion directly in the Response",
        ));
    }
    let mut expected = Vec::new();
    for sig in signatures {
        if sig.parent_element() != Some(root) {
            return Err(shape(
                "a Signature is outside the Response (an encrypted assertion is signed inside its cipher text)",
            ));
        }
        if !expected.is_empty() {
            return Err(shape("an element carries two signatures"));
        }
        let prefixes =
            verify::check_signature_shape(*sig, root_id).map_err(SamlError::Signature)?;
        expected.push((root_id.to_string(), prefixes));
    }
    let response_signed = if expected.is_empty() {
        None
    } else {
        verify::verify_all(text, trust, &expected)
            .map_err(SamlError::from)?
            .into_iter()
            .next()
    };
    if expect.signed == SignedPart::Response && response_signed.is_none() {
        return Err(SamlError::Unsigned("response"));
    }
    let response_view;
    let resp = match &response_signed {
        Some(s) => {
            response_view = xml::parse_strict(&s.canonical)?;
            response_view.root_element()
        }
        None => root,
    };
    let enc = one_child(resp, NS_ASSERTION, "EncryptedAssertion")
        .map_err(shape)?
        .ok_or_else(|| shape("the signed Response holds no EncryptedAssertion"))?;
    let plaintext = decrypter
        .decrypt_assertion(enc)
        .map_err(|e| SamlError::Decrypt(e.0))?;
    let adoc = xml::parse_strict(&plaintext).map_err(|e| {
        SamlError::Decrypt(format!("the decrypted content is not one XML element: {e}"))
    })?;
    let a = adoc.root_element();
    if !is(a, NS_ASSERTION, "Assertion") {
        return Err(SamlError::Decrypt(
            "the decrypted content is not a saml:Assertion".into(),
        ));
    }
    let assertion_id = a.attribute("ID").unwrap_or("").to_string();
    if assertion_id.is_empty() {
        return Err(shape("the Assertion has no ID"));
    }
    // The same shape rules inside: no second assertion, unique IDs, at
    // most one signature, directly in the Assertion.
    let mut ids = HashSet::new();
    let mut sig = None;
    for node in a.descendants().filter(Node::is_element) {
        for attr in node.attributes() {
            if xml::is_id_attribute(attr.name()) && !ids.insert(attr.value()) {
                return Err(shape("two elements share one ID"));
            }
        }
        let local = node.tag_name().name();
        if node != a && (local == "Assertion" || local == "EncryptedAssertion") {
            return Err(shape("the decrypted assertion holds another assertion"));
        }
        if is(node, NS_DSIG, "Signature") {
            if node.parent_element() != Some(a) || sig.is_some() {
                return Err(shape(
                    "a misplaced or extra Signature in the decrypted assertion",
                ));
            }
            sig = Some(node);
        }
    }
    let assertion_signed = match sig {
        Some(sig) => {
            let prefixes =
                verify::check_signature_shape(sig, &assertion_id).map_err(SamlError::Signature)?;
            verify::verify_all(&plaintext, trust, &[(assertion_id.clone(), prefixes)])
                .map_err(SamlError::from)?
                .into_iter()
                .next()
        }
        None => None,
    };
    match expect.signed {
        SignedPart::Assertion if assertion_signed.is_none() => {
            return Err(SamlError::Unsigned("assertion"))
        }
        _ if assertion_signed.is_none() && response_signed.is_none() => {
            return Err(SamlError::Unsigned("response or assertion"))
        }
        _ => {}
    }
    // Only signed bytes: the assertion's canonical form, or (signed only
    // through the Response) the plaintext of the cipher text it signed.
    let assertion_view;
    let signed_assertion = match &assertion_signed {
        Some(s) => {
            assertion_view = xml::parse_strict(&s.canonical)?;
            assertion_view.root_element()
        }
        None => a,
    };
    if !is(signed_assertion, NS_ASSERTION, "Assertion")
        || signed_assertion.attribute("ID") != Some(assertion_id.as_str())
    {
        return Err(shape("the signed element is not the assertion"));
    }
    let response_irt = check_response(resp, expect)?;
    read_assertion(signed_assertion, assertion_id, response_irt, expect)
}

fn check_status(resp: Node<'_, '_>) -> Result<(), SamlError> {
    let status = one_child(resp, NS_PROTOCOL, "Status")
        .map_err(shape)?
        .ok_or_else(|| shape("the Response has no Status"))?;
    let code = one_child(status, NS_PROTOCOL, "StatusCode")
        .map_err(shape)?
        .ok_or_else(|| shape("the Status has no StatusCode"))?;
    let value = code.attribute("Value").unwrap_or("");
    if value != STATUS_SUCCESS {
        // The second-level code says why (e.g. RequestDenied, NoPassive).
        let sub = one_child(code, NS_PROTOCOL, "StatusCode")
            .ok()
            .flatten()
            .and_then(|c| c.attribute("Value"))
            .unwrap_or("");
        // Read unsigned (anyone can post it to a sign-in they started), and
        // logged with the refusal: only a status name's characters are
        // kept, at most 64, so no newline, control or markup of the sender
        // reaches a log line or a page.
        let short = |v: &str| {
            let name: String = v
                .rsplit(':')
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .take(64)
                .collect();
            if name.is_empty() {
                "unknown".to_string()
            } else {
                name
            }
        };
        return Err(SamlError::Status(if sub.is_empty() {
            short(value)
        } else {
            format!("{}/{}", short(value), short(sub))
        }));
    }
    Ok(())
}

fn time(node: Node<'_, '_>, attr: &str) -> Result<Option<u64>, SamlError> {
    match node.attribute(attr) {
        None => Ok(None),
        Some(v) => parse_time(v)
            .map(Some)
            .ok_or_else(|| shape(format!("{attr} is not a UTC xs:dateTime"))),
    }
}

/// An `xs:dateTime` in UTC (`Z`), as SAML requires, to Unix seconds.
pub(crate) fn parse_time(v: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(v).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Checks and reads the signed assertion.
pub(super) fn read_assertion(
    a: Node<'_, '_>,
    id: String,
    response_irt: Option<&str>,
    expect: &Expect<'_>,
) -> Result<Assertion, SamlError> {
    let now = expect.now;
    let skew = expect.skew;
    let issuer_node = one_child(a, NS_ASSERTION, "Issuer")
        .map_err(shape)?
        .ok_or_else(|| shape("the Assertion has no Issuer"))?;
    let issuer = text_only(issuer_node).map_err(shape)?;
    if issuer != expect.idp_entity_id {
        return Err(SamlError::Issuer(issuer));
    }

    // Validity window.
    let conditions = one_child(a, NS_ASSERTION, "Conditions")
        .map_err(shape)?
        .ok_or_else(|| shape("the Assertion has no Conditions"))?;
    // OneTimeUse: an assertion is taken once anyway (the replay cache);
    // ProxyRestriction limits assertions realmgate would issue, and it
    // issues none.
    xml::only_known_conditions(
        conditions,
        NS_ASSERTION,
        &["AudienceRestriction", "OneTimeUse", "ProxyRestriction"],
    )
    .map_err(shape)?;
    let not_before = time(conditions, "NotBefore")?;
    let not_on_or_after = time(conditions, "NotOnOrAfter")?
        .ok_or_else(|| shape("the Conditions have no NotOnOrAfter"))?;
    if not_before.is_some_and(|nb| nb > now.saturating_add(skew))
        || not_on_or_after.saturating_add(skew) <= now
    {
        return Err(SamlError::Expired);
    }
    // Audience: at least one restriction, and every one names this SP.
    let mut restrictions = 0usize;
    for r in xml::children(conditions, NS_ASSERTION, "AudienceRestriction") {
        restrictions = restrictions.saturating_add(1);
        let mut found = false;
        for aud in xml::children(r, NS_ASSERTION, "Audience") {
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

    // Subject: NameID and one usable bearer confirmation.
    let subject = one_child(a, NS_ASSERTION, "Subject")
        .map_err(shape)?
        .ok_or_else(|| shape("the Assertion has no Subject"))?;
    let (name_id, name_id_format, name_qualifier, sp_name_qualifier) =
        match one_child(subject, NS_ASSERTION, "NameID").map_err(shape)? {
            Some(n) => (
                text_only(n).map_err(shape)?,
                n.attribute("Format").map(str::to_string),
                n.attribute("NameQualifier").map(str::to_string),
                n.attribute("SPNameQualifier").map(str::to_string),
            ),
            None => (String::new(), None, None, None),
        };
    let mut confirmed: Option<(Option<String>, u64)> = None;
    let mut last_err = SamlError::Recipient;
    for sc in xml::children(subject, NS_ASSERTION, "SubjectConfirmation") {
        if sc.attribute("Method") != Some(BEARER) {
            continue;
        }
        let Some(data) = one_child(sc, NS_ASSERTION, "SubjectConfirmationData").map_err(shape)?
        else {
            continue;
        };
        let recipient_ok = match data.attribute("Recipient") {
            Some(r) => r == expect.acs_url,
            None => !expect.recipient_required,
        };
        if !recipient_ok {
            last_err = SamlError::Recipient;
            continue;
        }
        let Some(until) = time(data, "NotOnOrAfter")? else {
            last_err = shape("the bearer confirmation has no NotOnOrAfter");
            continue;
        };
        if until.saturating_add(skew) <= now
            || time(data, "NotBefore")?.is_some_and(|nb| nb > now.saturating_add(skew))
        {
            last_err = SamlError::Expired;
            continue;
        }
        confirmed = Some((data.attribute("InResponseTo").map(str::to_string), until));
        break;
    }
    let (irt, confirm_until) = confirmed.ok_or(last_err)?;

    // The request answered: the signed assertion's InResponseTo, and the
    // response's, when present, must agree with it.
    if response_irt.is_some() && response_irt != irt.as_deref() {
        return Err(SamlError::InResponseTo);
    }
    match irt.as_deref() {
        Some(r) if expect.requested.ids.iter().any(|p| p == r) => {}
        Some(_) => return Err(SamlError::InResponseTo),
        None if expect.requested.allow_idp_initiated => {}
        None => return Err(SamlError::IdpInitiated),
    }

    // AuthnStatement (required for a sign-in).
    let authn = one_child(a, NS_ASSERTION, "AuthnStatement")
        .map_err(shape)?
        .ok_or_else(|| shape("the Assertion has no AuthnStatement"))?;
    let session_index = authn.attribute("SessionIndex").map(str::to_string);
    let session_not_on_or_after = time(authn, "SessionNotOnOrAfter")?;

    let mut attributes: Vec<(String, Vec<String>)> = Vec::new();
    for stmt in xml::children(a, NS_ASSERTION, "AttributeStatement") {
        for attr in xml::children(stmt, NS_ASSERTION, "Attribute") {
            let name = attr.attribute("Name").unwrap_or("").to_string();
            if name.is_empty() {
                return Err(shape("an Attribute has no Name"));
            }
            let mut values = Vec::new();
            for v in xml::children(attr, NS_ASSERTION, "AttributeValue") {
                values.push(text_only(v).map_err(shape)?);
            }
            match attributes.iter_mut().find(|(n, _)| *n == name) {
                Some((_, existing)) => existing.extend(values),
                None => attributes.push((name, values)),
            }
        }
    }

    Ok(Assertion {
        id,
        issuer,
        name_id,
        name_id_format,
        name_qualifier,
        sp_name_qualifier,
        session_index,
        in_response_to: irt,
        attributes,
        valid_until: not_on_or_after.max(confirm_until).saturating_add(skew),
        session_not_on_or_after,
    })
}
