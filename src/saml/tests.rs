//! The hostile suite for SAML response validation. Fixtures are signed at
//! test time by the signature library with a fresh P-256 key (rcgen makes
//! the certificate); the XSW variants are built by moving signed pieces.

use std::collections::BTreeMap;

use bergshamra::keys::{loader, KeysManager};
use bergshamra::DsigContext;

use super::*;

mod encrypted;
mod features;

const NOW: u64 = 1_800_000_000; // 2027-01-15T08:00:00Z
const IDP: &str = "https://idp.example.test/metadata";
const SP: &str = "https://apps.contoso.test/.auth/saml/fabrikam";
const ACS: &str = "https://apps.contoso.test/.auth/login/fabrikam/callback";
const REQ: &str = "_req_7f3a";

struct Key {
    pem: String,
    cert_der: Vec<u8>,
}

fn key() -> Key {
    let kp = rcgen::KeyPair::generate().expect("keypair");
    let params = rcgen::CertificateParams::new(vec!["idp.example.test".into()]).expect("params");
    let cert = params.self_signed(&kp).expect("cert");
    Key {
        pem: kp.serialize_pem(),
        cert_der: cert.der().to_vec(),
    }
}

fn trust(keys: &[&Key]) -> IdpTrust {
    IdpTrust::from_der(keys.iter().map(|k| k.cert_der.clone()).collect()).expect("trust")
}

fn iso(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
        .to_string()
}

fn sig_template(id: &str) -> String {
    format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>"##
    )
}

/// Signs the first (empty) `ds:Signature` of `xml` with `key`.
fn sign_first(xml: &str, key: &Key) -> String {
    let mut km = KeysManager::new();
    km.add_key(loader::load_ec_p256_private_pem(key.pem.as_bytes()).expect("key"));
    let ctx = DsigContext::new(km);
    let out = bergshamra::sign(&ctx, xml).expect("sign");
    // No XML declaration: the XSW variants embed signed documents in others.
    match out.strip_prefix("<?xml") {
        Some(rest) => rest[rest.find("?>").expect("decl end") + 2..]
            .trim_start()
            .to_string(),
        None => out,
    }
}

#[derive(Clone)]
struct Fx {
    response_id: String,
    assertion_id: String,
    issuer: String,
    audience: String,
    recipient: String,
    destination: String,
    in_response_to: Option<String>,
    not_before: u64,
    not_on_or_after: u64,
    name_id: String,
    name_id_format: String,
    attributes: Vec<(String, Vec<String>)>,
    status: String,
    sign_assertion: bool,
    sign_response: bool,
    /// Added inside `<Conditions>`, after the audience restriction.
    more_conditions: String,
}

impl Default for Fx {
    fn default() -> Self {
        Fx {
            response_id: "_resp1".into(),
            assertion_id: "_assert1".into(),
            issuer: IDP.into(),
            audience: SP.into(),
            recipient: ACS.into(),
            destination: ACS.into(),
            in_response_to: Some(REQ.into()),
            not_before: NOW - 60,
            not_on_or_after: NOW + 300,
            name_id: "alice@fabrikam.test".into(),
            name_id_format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into(),
            attributes: vec![
                (
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress".into(),
                    vec!["alice@fabrikam.test".into()],
                ),
                (
                    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups".into(),
                    vec!["g1".into(), "g2".into()],
                ),
            ],
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            sign_assertion: true,
            sign_response: false,
            more_conditions: String::new(),
        }
    }
}

const SIG_MARK: &str = "<!--SIG-->";

impl Fx {
    /// The assertion, with `SIG_MARK` where its signature goes.
    fn assertion(&self) -> String {
        let irt = self
            .in_response_to
            .as_ref()
            .map(|r| format!(r#" InResponseTo="{r}""#))
            .unwrap_or_default();
        let attrs: String = self
            .attributes
            .iter()
            .map(|(n, vs)| {
                let values: String = vs
                    .iter()
                    .map(|v| format!("<saml:AttributeValue>{v}</saml:AttributeValue>"))
                    .collect();
                format!(r#"<saml:Attribute Name="{n}">{values}</saml:Attribute>"#)
            })
            .collect();
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{aid}" Version="2.0" IssueInstant="{now}"><saml:Issuer>{iss}</saml:Issuer>{SIG_MARK}<saml:Subject><saml:NameID Format="{fmt}">{nid}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData{irt} NotOnOrAfter="{noa}" Recipient="{rcp}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{noa}"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction>{more}</saml:Conditions><saml:AuthnStatement AuthnInstant="{now}" SessionIndex="_sess1"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>{attrs}</saml:AttributeStatement></saml:Assertion>"#,
            aid = self.assertion_id,
            now = iso(NOW),
            iss = self.issuer,
            fmt = self.name_id_format,
            nid = self.name_id,
            noa = iso(self.not_on_or_after),
            rcp = self.recipient,
            nb = iso(self.not_before),
            aud = self.audience,
            more = self.more_conditions,
        )
    }

    /// The response around `assertion`, with `SIG_MARK` where its signature goes.
    fn response(&self, assertion: &str) -> String {
        let irt = self
            .in_response_to
            .as_ref()
            .map(|r| format!(r#" InResponseTo="{r}""#))
            .unwrap_or_default();
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{rid}" Version="2.0" IssueInstant="{now}" Destination="{dst}"{irt}><saml:Issuer>{iss}</saml:Issuer>{SIG_MARK}<samlp:Status><samlp:StatusCode Value="{st}"/></samlp:Status>{assertion}</samlp:Response>"#,
            rid = self.response_id,
            now = iso(NOW),
            dst = self.destination,
            iss = self.issuer,
            st = self.status,
        )
    }

    /// Builds and signs the response as configured.
    fn build(&self, key: &Key) -> String {
        let assertion = self.assertion();
        let assertion = if self.sign_assertion {
            let doc =
                self.response(&assertion.replace(SIG_MARK, &sig_template(&self.assertion_id)));
            let doc = doc.replacen(SIG_MARK, "", 1);
            let signed = sign_first(&doc, key);
            extract_assertion(&signed)
        } else {
            assertion.replace(SIG_MARK, "")
        };
        let doc = self.response(&assertion);
        if self.sign_response {
            sign_first(
                &doc.replace(SIG_MARK, &sig_template(&self.response_id)),
                key,
            )
        } else {
            doc.replace(SIG_MARK, "")
        }
    }
}

fn extract_assertion(doc: &str) -> String {
    let start = doc.find("<saml:Assertion").expect("assertion start");
    let end = doc.find("</saml:Assertion>").expect("assertion end") + "</saml:Assertion>".len();
    doc[start..end].to_string()
}

fn expect() -> Expect<'static> {
    static IDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    Expect {
        idp_entity_id: IDP,
        sp_entity_id: SP,
        acs_url: ACS,
        requested: Requested {
            ids: IDS.get_or_init(|| vec![REQ.to_string()]),
            allow_idp_initiated: false,
        },
        recipient_required: true,
        signed: SignedPart::Either,
        now: NOW,
        skew: 120,
    }
}

fn check(xml: &str, k: &Key) -> Result<Assertion, SamlError> {
    validate_response(xml.as_bytes(), &trust(&[k]), &expect())
}

#[test]
fn signed_assertion_is_accepted_and_read() {
    let k = key();
    let a = check(&Fx::default().build(&k), &k).expect("valid");
    assert_eq!(a.id, "_assert1");
    assert_eq!(a.issuer, IDP);
    assert_eq!(a.name_id, "alice@fabrikam.test");
    assert_eq!(a.session_index.as_deref(), Some("_sess1"));
    assert_eq!(a.in_response_to.as_deref(), Some(REQ));
    assert_eq!(a.attributes.len(), 2);
    assert_eq!(a.attributes[1].1, vec!["g1".to_string(), "g2".to_string()]);
}

#[test]
fn signed_response_only_is_accepted_with_either_and_refused_when_assertion_required() {
    let k = key();
    let xml = Fx {
        sign_assertion: false,
        sign_response: true,
        ..Fx::default()
    }
    .build(&k);
    check(&xml, &k).expect("either");
    let mut e = expect();
    e.signed = SignedPart::Assertion;
    assert_eq!(
        validate_response(xml.as_bytes(), &trust(&[&k]), &e),
        Err(SamlError::Unsigned("assertion"))
    );
}

#[test]
fn both_signed_is_accepted_and_response_required_needs_the_response_signed() {
    let k = key();
    let both = Fx {
        sign_response: true,
        ..Fx::default()
    }
    .build(&k);
    let mut e = expect();
    e.signed = SignedPart::Response;
    validate_response(both.as_bytes(), &trust(&[&k]), &e).expect("both signed");
    let only_assertion = Fx::default().build(&k);
    assert_eq!(
        validate_response(only_assertion.as_bytes(), &trust(&[&k]), &e),
        Err(SamlError::Unsigned("response"))
    );
}

#[test]
fn nothing_signed_is_refused() {
    let k = key();
    let xml = Fx {
        sign_assertion: false,
        ..Fx::default()
    }
    .build(&k);
    assert!(matches!(check(&xml, &k), Err(SamlError::Unsigned(_))));
}

#[test]
fn another_key_is_refused_and_rollover_accepts_either_pinned_cert() {
    let k = key();
    let other = key();
    let xml = Fx::default().build(&k);
    // Refused; named as a key the metadata may list only after a refetch.
    assert!(matches!(check(&xml, &other), Err(SamlError::UnknownKey(_))));
    let both = trust(&[&other, &k]);
    validate_response(xml.as_bytes(), &both, &expect()).expect("rollover");
}

#[test]
fn keyinfo_certificate_of_the_attacker_is_not_trusted() {
    let k = key();
    let attacker = key();
    // Signed by the attacker, with the attacker's certificate in KeyInfo.
    let xml = Fx::default().build(&attacker);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&attacker.cert_der);
    let xml = xml.replacen(
        "</ds:SignatureValue>",
        &format!("</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"),
        1,
    );
    assert!(matches!(check(&xml, &k), Err(SamlError::UnknownKey(_))));
}

/// `<ds:KeyInfo>` naming `k`'s certificate after the SignatureValue.
fn with_key_info(xml: &str, k: &Key) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&k.cert_der);
    xml.replacen(
        "</ds:SignatureValue>",
        &format!("</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"),
        1,
    )
}

#[test]
fn a_value_changed_after_signing_is_refused() {
    let k = key();
    let xml = Fx::default()
        .build(&k)
        .replace(">alice@fabrikam.test<", ">admin@fabrikam.test<");
    // Without a KeyInfo hint a forgery cannot be told from a new key.
    assert!(matches!(check(&xml, &k), Err(SamlError::UnknownKey(_))));
    // Naming the pinned certificate: a bad signature by a known key, which
    // new metadata would not change (no refetch).
    let named = with_key_info(&xml, &k);
    assert!(matches!(check(&named, &k), Err(SamlError::Signature(_))));
    // The hint never makes anything pass: a good signature naming another
    // certificate verifies with the pinned one; a bad one naming a pinned
    // certificate stays refused with every other key pinned beside it.
    let other = key();
    let good = with_key_info(&Fx::default().build(&k), &other);
    check(&good, &k).expect("verified by the pinned key whatever KeyInfo says");
    assert!(matches!(
        validate_response(named.as_bytes(), &trust(&[&other, &k]), &expect()),
        Err(SamlError::Signature(_))
    ));
}

#[test]
fn a_comment_inside_the_name_id_does_not_truncate_it() {
    let k = key();
    let xml = Fx {
        name_id: "user@user.com.evil.test".into(),
        ..Fx::default()
    }
    .build(&k)
    .replace("user@user.com.evil.test", "user@user.com<!---->.evil.test");
    let a = check(&xml, &k).expect("comments are outside the digest");
    assert_eq!(a.name_id, "user@user.com.evil.test");
}

#[test]
fn a_comment_inside_an_attribute_value_does_not_truncate_it() {
    let k = key();
    let xml = Fx::default().build(&k).replacen(
        ">alice@fabrikam.test</saml:AttributeValue>",
        ">alice@fabrikam<!-- x -->.test</saml:AttributeValue>",
        1,
    );
    let a = check(&xml, &k).expect("valid");
    assert_eq!(a.attributes[0].1, vec!["alice@fabrikam.test".to_string()]);
}

// --- The eight classic XML signature wrapping variants (Somorovsky et
// al., "On Breaking SAML", 2012; SAML Raider's XSW1-XSW8). Each keeps the
// genuine signature valid over the genuine element and puts an evil
// assertion where a careless consumer reads.

fn evil_assertion(fx: &Fx, id: &str) -> String {
    Fx {
        assertion_id: id.into(),
        name_id: "admin@fabrikam.test".into(),
        ..fx.clone()
    }
    .assertion()
    .replace(SIG_MARK, "")
}

fn xsw_refused(xml: &str, k: &Key, name: &str) {
    match check(xml, k) {
        Ok(a) => panic!("{name} accepted, read NameID {:?}", a.name_id),
        Err(e) => assert!(
            matches!(e, SamlError::Shape(_) | SamlError::Signature(_)),
            "{name}: {e:?}"
        ),
    }
}

fn response_signed(k: &Key) -> (Fx, String) {
    let fx = Fx {
        sign_assertion: false,
        sign_response: true,
        ..Fx::default()
    };
    let xml = fx.build(k);
    (fx, xml)
}

fn signature_of(xml: &str, from: usize) -> (usize, usize) {
    let s = from + xml[from..].find("<ds:Signature").expect("sig");
    let e = s + xml[s..].find("</ds:Signature>").expect("sig end") + "</ds:Signature>".len();
    (s, e)
}

#[test]
fn xsw1_original_response_inside_the_signature_is_refused() {
    let k = key();
    let (fx, orig) = response_signed(&k);
    let (s, e) = signature_of(&orig, 0);
    let sig = &orig[s..e];
    let sig_with_orig = sig.replace("</ds:Signature>", &format!("{orig}</ds:Signature>"));
    let evil = Fx {
        response_id: "_evil".into(),
        ..fx.clone()
    }
    .response(&evil_assertion(&fx, "_evil_a"))
    .replace(SIG_MARK, &sig_with_orig);
    xsw_refused(&evil, &k, "XSW1");
}

#[test]
fn xsw2_original_response_beside_the_signature_is_refused() {
    let k = key();
    let (fx, orig) = response_signed(&k);
    let (s, e) = signature_of(&orig, 0);
    let evil = Fx {
        response_id: "_evil".into(),
        ..fx.clone()
    }
    .response(&evil_assertion(&fx, "_evil_a"))
    .replace(SIG_MARK, &format!("{orig}{}", &orig[s..e]));
    xsw_refused(&evil, &k, "XSW2");
}

#[test]
fn xsw3_evil_assertion_before_the_signed_one_is_refused() {
    let k = key();
    let fx = Fx::default();
    let orig = fx.build(&k);
    let at = orig.find("<saml:Assertion").expect("a");
    let evil = format!(
        "{}{}{}",
        &orig[..at],
        evil_assertion(&fx, "_evil_a"),
        &orig[at..]
    );
    xsw_refused(&evil, &k, "XSW3");
}

#[test]
fn xsw4_evil_assertion_wrapping_the_signed_one_is_refused() {
    let k = key();
    let fx = Fx::default();
    let orig = fx.build(&k);
    let signed = extract_assertion(&orig);
    let wrapper = evil_assertion(&fx, "_evil_a")
        .replace("</saml:Assertion>", &format!("{signed}</saml:Assertion>"));
    xsw_refused(&orig.replace(&signed, &wrapper), &k, "XSW4");
}

#[test]
fn xsw5_signature_moved_to_evil_assertion_original_appended_is_refused() {
    let k = key();
    let fx = Fx::default();
    let orig = fx.build(&k);
    let signed = extract_assertion(&orig);
    let (s, e) = signature_of(&signed, 0);
    let sig = &signed[s..e];
    let bare = format!("{}{}", &signed[..s], &signed[e..]);
    let evil = evil_assertion(&fx, "_evil_a").replacen(
        "</saml:Issuer>",
        &format!("</saml:Issuer>{sig}"),
        1,
    );
    let doc = orig
        .replace(&signed, &evil)
        .replace("</samlp:Response>", &format!("{bare}</samlp:Response>"));
    xsw_refused(&doc, &k, "XSW5");
}

#[test]
fn xsw6_original_assertion_inside_the_moved_signature_is_refused() {
    let k = key();
    let fx = Fx::default();
    let orig = fx.build(&k);
    let signed = extract_assertion(&orig);
    let (s, e) = signature_of(&signed, 0);
    let sig = &signed[s..e];
    let bare = format!("{}{}", &signed[..s], &signed[e..]);
    let sig_holding = sig.replace("</ds:Signature>", &format!("{bare}</ds:Signature>"));
    let evil = evil_assertion(&fx, "_evil_a").replacen(
        "</saml:Issuer>",
        &format!("</saml:Issuer>{sig_holding}"),
        1,
    );
    xsw_refused(&orig.replace(&signed, &evil), &k, "XSW6");
}

#[test]
fn xsw7_signed_assertion_hidden_in_extensions_is_refused() {
    let k = key();
    let fx = Fx::default();
    let orig = fx.build(&k);
    let signed = extract_assertion(&orig);
    let doc = orig
        .replace(&signed, &evil_assertion(&fx, "_evil_a"))
        .replacen(
            "</saml:Issuer>",
            &format!("</saml:Issuer><samlp:Extensions>{signed}</samlp:Extensions>"),
            1,
        );
    xsw_refused(&doc, &k, "XSW7");
}

#[test]
fn xsw8_original_assertion_in_a_signature_object_is_refused() {
    let k = key();
    let fx = Fx::default();
    let orig = fx.build(&k);
    let signed = extract_assertion(&orig);
    let (s, e) = signature_of(&signed, 0);
    let sig = &signed[s..e];
    let bare = format!("{}{}", &signed[..s], &signed[e..]);
    let sig_obj = sig.replace(
        "</ds:Signature>",
        &format!("<ds:Object>{bare}</ds:Object></ds:Signature>"),
    );
    let evil = evil_assertion(&fx, "_evil_a").replacen(
        "</saml:Issuer>",
        &format!("</saml:Issuer>{sig_obj}"),
        1,
    );
    xsw_refused(&orig.replace(&signed, &evil), &k, "XSW8");
}

#[test]
fn xsw_same_id_twice_is_refused() {
    let k = key();
    let fx = Fx::default();
    let orig = fx.build(&k);
    let at = orig.find("<saml:Assertion").expect("a");
    let evil = format!(
        "{}{}{}",
        &orig[..at],
        evil_assertion(&fx, "_assert1"),
        &orig[at..]
    );
    xsw_refused(&evil, &k, "same ID");
}

// --- Parser hardening.

#[test]
fn dtds_and_entities_are_refused() {
    let k = key();
    let xml = Fx::default().build(&k);
    let with_dtd = format!("<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{xml}");
    assert_eq!(
        check(&with_dtd, &k),
        Err(SamlError::Xml(xml::XmlError::Dtd))
    );
    let laughs =
        format!("<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>{xml}");
    assert_eq!(check(&laughs, &k), Err(SamlError::Xml(xml::XmlError::Dtd)));
}

#[test]
fn too_large_too_deep_and_not_utf8_are_refused() {
    let k = key();
    let big = "x".repeat(MAX_RESPONSE_BYTES + 1);
    assert_eq!(check(&big, &k), Err(SamlError::TooLarge));
    let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
    assert_eq!(
        check(&deep, &k),
        Err(SamlError::Xml(xml::XmlError::TooDeep))
    );
    assert_eq!(
        validate_response(&[0xff, 0xfe, b'<'], &trust(&[&k]), &expect()),
        Err(SamlError::Xml(xml::XmlError::NotUtf8))
    );
}

#[test]
fn sha1_is_refused_before_any_crypto() {
    let k = key();
    let xml = Fx::default().build(&k).replace(
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2000/09/xmldsig#sha1",
    );
    match check(&xml, &k) {
        Err(SamlError::Signature(m)) => assert!(m.contains("digest algorithm"), "{m}"),
        other => panic!("{other:?}"),
    }
}

// --- Protocol checks.

fn refused_with(fx: Fx, want: SamlError) {
    let k = key();
    assert_eq!(check(&fx.build(&k), &k), Err(want));
}

#[test]
fn unknown_in_response_to_is_refused() {
    refused_with(
        Fx {
            in_response_to: Some("_other".into()),
            ..Fx::default()
        },
        SamlError::InResponseTo,
    );
}

#[test]
fn idp_initiated_is_refused_unless_allowed() {
    let k = key();
    let xml = Fx {
        in_response_to: None,
        ..Fx::default()
    }
    .build(&k);
    assert_eq!(check(&xml, &k), Err(SamlError::IdpInitiated));
    let mut e = expect();
    e.requested.allow_idp_initiated = true;
    let a = validate_response(xml.as_bytes(), &trust(&[&k]), &e).expect("allowed");
    assert_eq!(a.in_response_to, None);
}

#[test]
fn response_in_response_to_must_agree_with_the_assertion() {
    let k = key();
    let xml = Fx::default().build(&k).replacen(
        &format!(r#"Destination="{ACS}" InResponseTo="{REQ}""#),
        &format!(r#"Destination="{ACS}" InResponseTo="_other""#),
        1,
    );
    assert_eq!(check(&xml, &k), Err(SamlError::InResponseTo));
}

#[test]
fn wrong_audience_recipient_destination_issuer_are_refused() {
    refused_with(
        Fx {
            audience: "https://other.test/sp".into(),
            ..Fx::default()
        },
        SamlError::Audience,
    );
    refused_with(
        Fx {
            recipient: "https://other.test/acs".into(),
            ..Fx::default()
        },
        SamlError::Recipient,
    );
    refused_with(
        Fx {
            destination: "https://other.test/acs".into(),
            ..Fx::default()
        },
        SamlError::Recipient,
    );
    refused_with(
        Fx {
            issuer: "https://evil.test/".into(),
            ..Fx::default()
        },
        SamlError::Issuer("https://evil.test/".into()),
    );
}

#[test]
fn a_condition_realmgate_does_not_understand_is_refused() {
    // SAML core 2.5.1.1: a condition not understood makes the assertion
    // Indeterminate, never valid. Each is signed by the IdP's own key.
    let k = key();
    for more in [
        r#"<saml:Condition xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ext="urn:example:ext" xsi:type="ext:OnlyFromTheOfficeNetwork"/>"#,
        r#"<ext:DeviceCompliant xmlns:ext="urn:example:ext"/>"#,
        "<saml:AudienceRestrictionX/>",
    ] {
        let xml = Fx {
            more_conditions: more.into(),
            ..Fx::default()
        }
        .build(&k);
        match check(&xml, &k) {
            Err(SamlError::Shape(m)) => assert!(m.contains("not understood"), "{more}: {m}"),
            other => panic!("{more}: {other:?}"),
        }
    }
    // An attribute the schema does not have is not understood either.
    let doc = format!(
        r#"<saml:Conditions xmlns:saml="{}" NotOnOrAfter="x" Extra="1"/>"#,
        super::xml::NS_ASSERTION
    );
    let doc = roxmltree::Document::parse(&doc).expect("xml");
    let err = super::xml::only_known_conditions(doc.root_element(), super::xml::NS_ASSERTION, &[])
        .expect_err("unknown attribute");
    assert!(err.contains("Extra"), "{err}");
    // What realmgate understands still signs in.
    for more in [
        "<saml:OneTimeUse/>",
        "<saml:ProxyRestriction Count=\"0\"/>",
        "<saml:AudienceRestriction><saml:Audience>https://sp.test/other</saml:Audience><saml:Audience>SP</saml:Audience></saml:AudienceRestriction>",
    ] {
        let more = more.replace(">SP<", &format!(">{SP}<"));
        let xml = Fx {
            more_conditions: more.clone(),
            ..Fx::default()
        }
        .build(&k);
        check(&xml, &k).unwrap_or_else(|e| panic!("{more}: {e:?}"));
    }
}

#[test]
fn validity_window_with_skew() {
    refused_with(
        Fx {
            not_on_or_after: NOW - 121,
            ..Fx::default()
        },
        SamlError::Expired,
    );
    refused_with(
        Fx {
            not_before: NOW + 121,
            ..Fx::default()
        },
        SamlError::Expired,
    );
    let k = key();
    let within = Fx {
        not_before: NOW + 100,
        not_on_or_after: NOW - 100,
        ..Fx::default()
    }
    .build(&k);
    check(&within, &k).expect("within skew");
}

#[test]
fn idp_error_status_is_refused_with_its_code() {
    refused_with(
        Fx {
            status: "urn:oasis:names:tc:SAML:2.0:status:Responder".into(),
            ..Fx::default()
        },
        SamlError::Status("Responder".into()),
    );
}

/// What an IdP sends when the user cancels or is denied: a failed Status
/// and no assertion. The refusal names the status (the page says the IdP
/// did not complete the sign-in); with Success and no assertion it is a
/// shape error as before.
#[test]
fn idp_error_status_without_an_assertion_is_refused_with_its_code() {
    let response = |status: &str| {
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="{}" InResponseTo="_req1"><saml:Issuer>{IDP}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{status}"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:RequestDenied"/></samlp:StatusCode></samlp:Status></samlp:Response>"#,
            iso(NOW)
        )
    };
    let k = key();
    assert_eq!(
        check(&response("Responder"), &k),
        Err(SamlError::Status("Responder/RequestDenied".into()))
    );
    assert!(matches!(
        check(&response("Success"), &k),
        Err(SamlError::Shape(_))
    ));
}

/// The Status of a response without an assertion is read unsigned: anyone
/// can post one to the ACS of a sign-in they started. Its code goes into
/// the refusal's detail, which is logged, so it keeps only the characters
/// of a status name: a character reference for a newline (`&#10;`), which
/// XML allows in an attribute, would otherwise start a forged log line.
#[test]
fn an_unsigned_status_code_is_cut_to_the_characters_of_a_status_name() {
    let response = |value: &str, sub: &str| {
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="{}" InResponseTo="_req1"><saml:Issuer>{IDP}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{value}"><samlp:StatusCode Value="{sub}"/></samlp:StatusCode></samlp:Status></samlp:Response>"#,
            iso(NOW)
        )
    };
    let k = key();
    let forged = "Responder&#10;2026-12-06T16:00:00Z  INFO realmgate: sign-in of admin&#13;&#x85;&#x9B;&#x2028;&gt;&quot;";
    for (value, sub) in [
        (forged.to_string(), "x".to_string()),
        (
            "urn:oasis:names:tc:SAML:2.0:status:Responder".into(),
            forged.to_string(),
        ),
        ("&#10;".into(), "&#10;".into()),
        ("a".repeat(5000), "b".repeat(5000)),
    ] {
        let Err(SamlError::Status(code)) = check(&response(&value, &sub), &k) else {
            panic!("a failed status: {value}");
        };
        assert!(
            !code.is_empty()
                && code.len() <= 129
                && code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')),
            "{code:?}"
        );
    }
}

#[test]
fn replay_cache_accepts_an_id_once_until_it_expires() {
    let c = ReplayCache::new();
    assert!(c.first_use("_a", NOW + 10, NOW));
    assert!(!c.first_use("_a", NOW + 10, NOW + 5));
    assert!(c.first_use("_a", NOW + 30, NOW + 11));
}

// --- Attribute mapping.

#[test]
fn identity_defaults_and_user_id_rules() {
    let k = key();
    let a = check(&Fx::default().build(&k), &k).expect("valid");
    let id = AttributeMap::default()
        .identity(&a)
        .expect("persistent NameID");
    assert_eq!(id.subject, "alice@fabrikam.test");
    assert_eq!(id.email.as_deref(), Some("alice@fabrikam.test"));
    assert_eq!(id.groups, vec!["g1".to_string(), "g2".to_string()]);

    let transient = Fx {
        name_id_format: "urn:oasis:names:tc:SAML:2.0:nameid-format:transient".into(),
        ..Fx::default()
    };
    let a = check(&transient.build(&k), &k).expect("valid");
    assert_eq!(
        AttributeMap::default().identity(&a),
        Err(IdentityError::NoUserId)
    );

    let mut with_oid = transient.clone();
    with_oid.attributes.push((
        "http://schemas.microsoft.com/identity/claims/objectidentifier".into(),
        vec!["0f9c-oid".into()],
    ));
    let a = check(&with_oid.build(&k), &k).expect("valid");
    assert_eq!(
        AttributeMap::default().identity(&a).expect("oid").subject,
        "0f9c-oid"
    );

    let mut cfg = BTreeMap::new();
    cfg.insert("nickname".to_string(), "x".to_string());
    assert!(AttributeMap::from_config(&cfg).is_err());
}

// --- Differential: the library's verdict against Debian's `xmlsec1
// --verify` (libxmlsec1, the reference implementation) on a corpus of
// single-signature documents that differ in exactly the places where
// canonicalization and digest code go wrong. scripts/test.sh installs
// xmlsec1; without it this test fails saying so.

/// The library's verdict on the one signature of `xml` (no SAML checks).
fn library_verdict(xml: &str, k: &Key) -> bool {
    let mut km = KeysManager::new();
    km.add_key(loader::load_x509_cert_der(&k.cert_der).expect("cert"));
    let ctx = DsigContext::new(km);
    matches!(
        bergshamra::verify(&ctx, xml),
        Ok(bergshamra::VerifyResult::Valid { .. })
    )
}

fn xmlsec1_verdict(xml: &str, k: &Key, dir: &std::path::Path, n: usize) -> bool {
    let cert = dir.join("cert.pem");
    if !cert.exists() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&k.cert_der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        std::fs::write(
            &cert,
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            ),
        )
        .expect("write cert");
    }
    let file = dir.join(format!("doc{n}.xml"));
    std::fs::write(&file, xml).expect("write doc");
    let out = std::process::Command::new("xmlsec1")
        .arg("--verify")
        .arg("--pubkey-cert-pem")
        .arg(&cert)
        .arg("--id-attr:ID")
        .arg("urn:oasis:names:tc:SAML:2.0:assertion:Assertion")
        .arg("--id-attr:ID")
        .arg("urn:oasis:names:tc:SAML:2.0:protocol:Response")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "xmlsec1 cannot run ({e}): install Debian's xmlsec1 package (scripts/test.sh does)"
            )
        });
    out.status.success()
}

#[test]
fn differential_against_xmlsec1() {
    let k = key();
    let other = key();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = Fx::default().build(&k);
    let resp = Fx {
        sign_assertion: false,
        sign_response: true,
        ..Fx::default()
    }
    .build(&k);
    let corpus: Vec<(&str, String)> = vec![
        ("signed assertion", base.clone()),
        ("signed response", resp.clone()),
        ("wrong key", Fx::default().build(&other)),
        ("value changed", base.replace(">alice@fabrikam.test<", ">alicf@fabrikam.test<")),
        ("comment added", base.replace(">alice@fabrikam.test</saml:NameID>", ">alice@<!--c-->fabrikam.test</saml:NameID>")),
        ("whitespace in signed text", base.replace("<saml:Audience>", "<saml:Audience> ")),
        ("whitespace between signed elements", base.replace("</saml:Issuer><ds:Signature", "</saml:Issuer>\n<ds:Signature")),
        ("attribute order swapped", base.replace(r#"Version="2.0" IssueInstant="#, r#"IssueInstant="#).replace(r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_assert1""#, r#"<saml:Assertion Version="2.0" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_assert1""#)),
        ("character reference for a letter", base.replace(">alice@fabrikam.test</saml:NameID>", ">&#97;lice@fabrikam.test</saml:NameID>")),
        ("CDATA section", base.replace(">alice@fabrikam.test</saml:NameID>", "><![CDATA[alice@fabrikam.test]]></saml:NameID>")),
        ("prefix renamed", base.replace("saml:Audience>", "saml2:Audience xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\">").replace("saml2:Audience xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"></saml:AudienceRestriction>", "saml2:Audience></saml:AudienceRestriction>")),
        ("namespace declaration outside the assertion", base.replace(r#"<samlp:Response "#, r#"<samlp:Response xmlns:x="urn:x" "#)),
        ("signature value flipped", {
            let s = base.find("<ds:SignatureValue>").expect("sv") + "<ds:SignatureValue>".len();
            let mut b = base.clone().into_bytes();
            b[s + 3] = if b[s + 3] == b'A' { b'B' } else { b'A' };
            String::from_utf8(b).expect("utf8")
        }),
        ("digest value flipped", {
            let s = base.find("<ds:DigestValue>").expect("dv") + "<ds:DigestValue>".len();
            let mut b = base.clone().into_bytes();
            b[s + 3] = if b[s + 3] == b'A' { b'B' } else { b'A' };
            String::from_utf8(b).expect("utf8")
        }),
    ];
    let mut disagreements = Vec::new();
    for (n, (name, xml)) in corpus.iter().enumerate() {
        let lib = library_verdict(xml, &k);
        let reference = xmlsec1_verdict(xml, &k, dir.path(), n);
        if lib != reference {
            disagreements.push(format!("{name}: bergshamra {lib}, xmlsec1 {reference}"));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    // And the corpus is not trivially one-sided.
    assert!(library_verdict(&corpus[0].1, &k) && !library_verdict(&corpus[2].1, &k));
}

// --- Flow: begin -> IdP -> finish -> session.

fn connection(k: &Key) -> flow::SamlConnection {
    flow::SamlConnection {
        name: "fabrikam".into(),
        sp_entity_id: SP.into(),
        acs_url: ACS.into(),
        idp: metadata::IdpMetadata {
            entity_id: IDP.into(),
            sso_url: "https://idp.example.test/sso".into(),
            slo_url: None,
            trust: trust(&[k]),
        },
        signer: None,
        attributes: AttributeMap::default(),
        allow_idp_initiated: false,
        require_signed: SignedPart::Either,
        trusted_email: true,
    }
}

fn post(xml: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(xml)
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[test]
fn begin_then_finish_makes_a_session_once() {
    let k = key();
    let conn = connection(&k);
    let (url, pending) = flow::begin(&conn, "/app?x=1", NOW).expect("begin");
    assert!(url.starts_with("https://idp.example.test/sso?SAMLRequest="));
    let request = binding::decode_redirect(&query_param(&url, "SAMLRequest").expect("param"))
        .expect("inflate");
    let request = String::from_utf8(request).expect("utf8");
    assert!(
        request.contains(&format!(r#"ID="{}""#, pending.nonce)),
        "{request}"
    );
    assert_ne!(pending.state, pending.nonce);
    assert!(request.contains(&format!(r#"AssertionConsumerServiceURL="{ACS}""#)));
    assert_eq!(
        query_param(&url, "RelayState").as_deref(),
        Some(pending.state.as_str())
    );
    assert_eq!(pending.target, "/app?x=1");

    let xml = Fx {
        in_response_to: Some(pending.nonce.clone()),
        ..Fx::default()
    }
    .build(&k);
    let replay = ReplayCache::new();
    let list = vec![pending.clone()];
    let (identity, assertion, answered) =
        flow::finish(&conn, &post(&xml), &list, &replay, NOW).expect("finish");
    assert_eq!(answered, Some(&pending));
    let s = flow::session_for(&conn, &identity, &assertion, NOW, 3600);
    assert_eq!(s.user_id, "fabrikam:alice@fabrikam.test");
    assert_eq!(s.verified_email(), Some("alice@fabrikam.test"));
    assert_eq!(s.sid.as_deref(), Some("_sess1"));
    assert_eq!(s.expires_at, NOW + 3600);
    assert_eq!(
        flow::finish(&conn, &post(&xml), &list, &replay, NOW + 1).map(|_| ()),
        Err(flow::FlowError::Response(SamlError::Replay))
    );
}

#[test]
fn a_request_of_another_connection_is_no_answer() {
    let k = key();
    let conn = connection(&k);
    let (_, mut pending) = flow::begin(&conn, "/", NOW).expect("begin");
    pending.connection = "other".into();
    let xml = Fx {
        in_response_to: Some(pending.nonce.clone()),
        ..Fx::default()
    }
    .build(&k);
    assert_eq!(
        flow::finish(&conn, &post(&xml), &[pending], &ReplayCache::new(), NOW).map(|_| ()),
        Err(flow::FlowError::Response(SamlError::InResponseTo))
    );
}

#[test]
fn signed_redirect_verifies_with_the_sp_key() {
    use rsa::pkcs8::EncodePrivateKey as _;
    use sha2::{Digest, Sha256};
    let sk = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa");
    let pem = sk.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("pem");
    let signer = binding::SpSigner::from_pem(&pem).expect("signer");
    let url = binding::redirect_url(
        "https://idp.test/sso?a=b",
        "SAMLRequest",
        "<x/>",
        Some("rs"),
        Some(&signer),
    )
    .expect("url");
    assert!(url.starts_with("https://idp.test/sso?a=b&SAMLRequest="));
    let query = url.split_once("?a=b&").expect("q").1;
    let (signed_part, sig) = query.split_once("&Signature=").expect("sig");
    assert!(signed_part
        .ends_with("&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256"));
    let sig: String = url::form_urlencoded::parse(format!("s={sig}").as_bytes())
        .next()
        .expect("s")
        .1
        .into_owned();
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .expect("b64");
    let digest = Sha256::digest(signed_part.as_bytes());
    rsa::RsaPublicKey::from(&sk)
        .verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .expect("signature verifies");
}

#[test]
fn redirect_decoding_is_bounded() {
    use std::io::Write;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b'a'; MAX_RESPONSE_BYTES * 4])
        .expect("write");
    use base64::Engine;
    let bomb = base64::engine::general_purpose::STANDARD.encode(enc.finish().expect("finish"));
    assert_eq!(
        binding::decode_redirect(&bomb),
        Err(binding::BindingError::TooLarge)
    );
    assert_eq!(
        binding::decode_post("!!!"),
        Err(binding::BindingError::Base64)
    );
    assert_eq!(
        binding::decode_post(" \r\n"),
        Err(binding::BindingError::Missing)
    );
}

// --- Metadata.

fn idp_metadata_xml(certs: &[&Key], sso: bool) -> String {
    use base64::Engine;
    let kds: String = certs
        .iter()
        .map(|k| {
            format!(
                r#"<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
                base64::engine::general_purpose::STANDARD.encode(&k.cert_der)
            )
        })
        .collect();
    let sso = if sso {
        r#"<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.test/post"/><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/sso"/>"#
    } else {
        ""
    };
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{IDP}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{kds}<md:KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>AAAA</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>{sso}</md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
}

#[test]
fn idp_metadata_pins_every_signing_certificate() {
    let k1 = key();
    let k2 = key();
    let md = metadata::parse_idp_metadata(idp_metadata_xml(&[&k1, &k2], true).as_bytes())
        .expect("metadata");
    assert_eq!(md.entity_id, IDP);
    assert_eq!(md.sso_url, "https://idp.example.test/sso");
    // Rollover: a response signed with either certificate verifies.
    for k in [&k1, &k2] {
        let xml = Fx::default().build(k);
        validate_response(xml.as_bytes(), &md.trust, &expect()).expect("pinned");
    }
    let err = metadata::parse_idp_metadata(idp_metadata_xml(&[&k1], false).as_bytes())
        .expect_err("no SSO");
    assert!(err.contains("SingleSignOnService"), "{err}");
    let err = metadata::parse_idp_metadata(idp_metadata_xml(&[], true).as_bytes())
        .expect_err("no certificate");
    assert!(err.contains("signing certificate"), "{err}");
    let dtd = format!("<!DOCTYPE x>{}", idp_metadata_xml(&[&k1], true));
    assert!(metadata::parse_idp_metadata(dtd.as_bytes()).is_err());
}

#[test]
fn sp_metadata_names_entity_acs_and_escapes() {
    let xml = metadata::sp_metadata(
        "https://a.test/?x=1&y=\"2\"",
        ACS,
        "https://a.test/slo",
        None,
    );
    let doc = roxmltree::Document::parse(&xml).expect("well-formed");
    let root = doc.root_element();
    assert_eq!(
        root.attribute("entityID"),
        Some("https://a.test/?x=1&y=\"2\"")
    );
    let acs = root
        .descendants()
        .find(|n| n.tag_name().name() == "AssertionConsumerService")
        .expect("acs");
    assert_eq!(acs.attribute("Location"), Some(ACS));
}

// --- Configuration keys.

fn raw(toml_text: &str) -> crate::config::raw::RawConnection {
    toml::from_str(toml_text).expect("raw connection")
}

#[test]
fn config_keys_are_checked_by_name() {
    let ok = config::from_raw(
        "saml",
        &raw(r#"idp_metadata_url = "https://idp.test/md.xml""#),
    )
    .expect("valid");
    assert_eq!(
        ok.entity_id("fabrikam", "https://apps.test/"),
        "https://apps.test/.auth/saml/fabrikam"
    );
    let lines = ok.summary("fabrikam", "https://apps.test");
    assert!(lines
        .iter()
        .any(|l| l.contains("https://apps.test/.auth/login/fabrikam/callback")));

    let keys = |r: Result<config::SamlSettings, Vec<config::Problem>>| -> Vec<&'static str> {
        r.expect_err("invalid").into_iter().map(|p| p.key).collect()
    };
    assert_eq!(
        keys(config::from_raw("saml", &raw(""))),
        vec!["idp_metadata_url"]
    );
    assert_eq!(
        keys(config::from_raw(
            "saml",
            &raw("idp_metadata_url = \"http://idp.test/md\"")
        )),
        vec!["idp_metadata_url"]
    );
    assert!(keys(config::from_raw(
        "saml",
        &raw("idp_metadata_url = \"https://idp.test/md\"\nclient_id = \"x\"\nrequire_signed = \"none\"")
    ))
    .ends_with(&["require_signed"]));
    assert_eq!(
        keys(config::from_raw(
            "saml",
            &raw("idp_entity_id = \"x\"\nidp_sso_url = \"https://idp.test/sso\"")
        )),
        vec!["idp_certificate_file"]
    );
    assert_eq!(
        keys(config::from_raw(
            "wsfed",
            &raw("idp_metadata_url = \"https://idp.test/md\"")
        )),
        vec!["idp_metadata_url", "metadata_url"]
    );
    let wsfed = config::from_raw(
        "wsfed",
        &raw("metadata_file = \"/etc/md.xml\"\nrealm = \"urn:realmgate:apps\""),
    )
    .expect("wsfed");
    assert_eq!(
        wsfed.entity_id("x", "https://apps.test"),
        "urn:realmgate:apps"
    );
    assert_eq!(
        keys(config::from_raw(
            "saml",
            &raw("idp_metadata_file = \"/m\"\nattributes = { nickname = \"x\" }")
        )),
        vec!["attributes"]
    );
}

// --- WS-Federation tokens.

const REALM: &str = "urn:realmgate:apps";

fn rstr(token: &str) -> String {
    format!(
        r#"<t:RequestSecurityTokenResponse xmlns:t="http://schemas.xmlsoap.org/ws/2005/02/trust"><t:Lifetime/><wsp:AppliesTo xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy"><wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>{REALM}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo><t:RequestedSecurityToken>{token}</t:RequestedSecurityToken><t:TokenType>urn:oasis:names:tc:SAML:2.0:assertion</t:TokenType></t:RequestSecurityTokenResponse>"#
    )
}

fn saml11_token(k: &Key, audience: &str, name: &str) -> String {
    saml11_token_with(k, audience, name, "")
}

/// A signed SAML 1.1 token with `more` inside its `<Conditions>`.
fn saml11_token_with(k: &Key, audience: &str, name: &str, more: &str) -> String {
    let a = format!(
        r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" MajorVersion="1" MinorVersion="1" AssertionID="_s11" Issuer="{IDP}" IssueInstant="{now}"><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{noa}"><saml:AudienceRestrictionCondition><saml:Audience>{audience}</saml:Audience></saml:AudienceRestrictionCondition>{more}</saml:Conditions><saml:AttributeStatement><saml:Subject><saml:NameIdentifier>{name}</saml:NameIdentifier><saml:SubjectConfirmation><saml:ConfirmationMethod>urn:oasis:names:tc:SAML:1.0:cm:bearer</saml:ConfirmationMethod></saml:SubjectConfirmation></saml:Subject><saml:Attribute AttributeName="objectidentifier" AttributeNamespace="http://schemas.microsoft.com/identity/claims"><saml:AttributeValue>oid-11</saml:AttributeValue></saml:Attribute><saml:Attribute AttributeName="emailaddress" AttributeNamespace="http://schemas.xmlsoap.org/ws/2005/05/identity/claims"><saml:AttributeValue>{name}</saml:AttributeValue></saml:Attribute></saml:AttributeStatement><saml:AuthenticationStatement AuthenticationMethod="urn:oasis:names:tc:SAML:1.0:am:password" AuthenticationInstant="{now}"><saml:Subject><saml:NameIdentifier>{name}</saml:NameIdentifier><saml:SubjectConfirmation><saml:ConfirmationMethod>urn:oasis:names:tc:SAML:1.0:cm:bearer</saml:ConfirmationMethod></saml:SubjectConfirmation></saml:Subject></saml:AuthenticationStatement>{sig}</saml:Assertion>"#,
        now = iso(NOW),
        nb = iso(NOW - 60),
        noa = iso(NOW + 300),
        sig = sig_template("_s11"),
    );
    sign_first(&rstr(&a), k)
}

fn wsfed_expect(ids: &[String]) -> Expect<'_> {
    Expect {
        idp_entity_id: IDP,
        sp_entity_id: REALM,
        acs_url: ACS,
        requested: Requested {
            ids,
            allow_idp_initiated: true,
        },
        recipient_required: false,
        signed: SignedPart::Assertion,
        now: NOW,
        skew: 120,
    }
}

#[test]
fn wsfed_saml11_token_is_read_with_adfs_claim_names() {
    let k = key();
    let wresult = saml11_token(&k, REALM, "bob@northwind.test");
    let a = wsfed::validate_wresult(&wresult, &trust(&[&k]), &wsfed_expect(&[])).expect("valid");
    assert_eq!(a.issuer, IDP);
    assert_eq!(a.name_id, "bob@northwind.test");
    let id = AttributeMap::default().identity(&a).expect("identity");
    assert_eq!(id.subject, "oid-11");
    assert_eq!(id.email.as_deref(), Some("bob@northwind.test"));
}

#[test]
fn wsfed_saml11_condition_not_understood_is_refused() {
    let k = key();
    let e = wsfed_expect(&[]);
    let odd = saml11_token_with(
        &k,
        REALM,
        "bob@northwind.test",
        r#"<ext:OnlyOnTuesdays xmlns:ext="urn:example:ext"/>"#,
    );
    match wsfed::validate_wresult(&odd, &trust(&[&k]), &e) {
        Err(SamlError::Shape(m)) => assert!(m.contains("not understood"), "{m}"),
        other => panic!("{other:?}"),
    }
    let no_cache = saml11_token_with(
        &k,
        REALM,
        "bob@northwind.test",
        "<saml:DoNotCacheCondition/>",
    );
    wsfed::validate_wresult(&no_cache, &trust(&[&k]), &e).expect("DoNotCache is understood");
}

#[test]
fn wsfed_saml11_wrong_realm_tamper_and_wrapping_are_refused() {
    let k = key();
    let e = wsfed_expect(&[]);
    let other_realm = saml11_token(&k, "urn:other", "bob@northwind.test");
    assert_eq!(
        wsfed::validate_wresult(&other_realm, &trust(&[&k]), &e),
        Err(SamlError::Audience)
    );
    let good = saml11_token(&k, REALM, "bob@northwind.test");
    let tampered = good.replace(">oid-11<", ">oid-12<");
    assert!(matches!(
        wsfed::validate_wresult(&tampered, &trust(&[&k]), &e),
        Err(SamlError::Signature(_) | SamlError::UnknownKey(_))
    ));
    // XSW: an evil unsigned assertion next to the signed one.
    let start = good.find("<saml:Assertion").expect("a");
    let end = good.find("</saml:Assertion>").expect("e") + "</saml:Assertion>".len();
    let evil = good[start..end]
        .replace("_s11", "_evil")
        .replace(">oid-11<", ">oid-admin<");
    let wrapped = good.replace(
        "</t:RequestedSecurityToken>",
        &format!("{evil}</t:RequestedSecurityToken>"),
    );
    assert!(matches!(
        wsfed::validate_wresult(&wrapped, &trust(&[&k]), &e),
        Err(SamlError::Shape(_))
    ));
    let other = key();
    assert!(matches!(
        wsfed::validate_wresult(&good, &trust(&[&other]), &e),
        Err(SamlError::UnknownKey(_))
    ));
}

#[test]
fn wsfed_saml2_token_is_accepted_without_recipient_binding() {
    let k = key();
    let fx = Fx {
        audience: REALM.into(),
        in_response_to: None,
        ..Fx::default()
    };
    let assertion = fx.assertion().replace(SIG_MARK, &sig_template("_assert1"));
    let wresult = sign_first(&rstr(&assertion), &k);
    let a = wsfed::validate_wresult(&wresult, &trust(&[&k]), &wsfed_expect(&[])).expect("valid");
    assert_eq!(a.name_id, "alice@fabrikam.test");
    assert_eq!(a.in_response_to, None);
}

#[test]
fn wsfed_redirects_carry_realm_reply_and_context() {
    let url = wsfed::signin_url("https://adfs.test/adfs/ls/", REALM, ACS, "_ctx1");
    assert_eq!(query_param(&url, "wa").as_deref(), Some("wsignin1.0"));
    assert_eq!(query_param(&url, "wtrealm").as_deref(), Some(REALM));
    assert_eq!(query_param(&url, "wreply").as_deref(), Some(ACS));
    assert_eq!(query_param(&url, "wctx").as_deref(), Some("_ctx1"));
    let out = wsfed::signout_url(
        "https://adfs.test/adfs/ls/?x=1",
        REALM,
        "https://apps.test/",
    );
    assert!(out.starts_with("https://adfs.test/adfs/ls/?x=1&wa=wsignout1.0"));
}

#[test]
fn wsfed_metadata_gives_passive_endpoint_and_certs() {
    use base64::Engine;
    let k = key();
    let md = format!(
        r#"<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{IDP}"><RoleDescriptor xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:fed="http://docs.oasis-open.org/wsfed/federation/200706" xsi:type="fed:SecurityTokenServiceType" protocolSupportEnumeration="http://docs.oasis-open.org/wsfed/federation/200706"><KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>{}</X509Certificate></X509Data></KeyInfo></KeyDescriptor><fed:PassiveRequestorEndpoint><wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>https://adfs.test/adfs/ls/</wsa:Address></wsa:EndpointReference></fed:PassiveRequestorEndpoint></RoleDescriptor></EntityDescriptor>"#,
        base64::engine::general_purpose::STANDARD.encode(&k.cert_der)
    );
    let (entity, passive, trust) = wsfed::parse_wsfed_metadata(md.as_bytes()).expect("metadata");
    assert_eq!(entity, IDP);
    assert_eq!(passive, "https://adfs.test/adfs/ls/");
    let wresult = saml11_token(&k, REALM, "bob@northwind.test");
    wsfed::validate_wresult(&wresult, &trust, &wsfed_expect(&[])).expect("pinned from metadata");
}

// --- Single logout.

/// An RSA IdP key (the redirect binding's query signatures are RSA).
fn rsa_idp() -> (binding::SpSigner, Vec<u8>) {
    use rsa::pkcs8::EncodePrivateKey as _;
    let sk = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa");
    let pem = sk.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("pem");
    let kp = rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).expect("kp");
    let cert = rcgen::CertificateParams::new(vec!["idp.example.test".into()])
        .expect("params")
        .self_signed(&kp)
        .expect("cert");
    (
        binding::SpSigner::from_pem(&pem).expect("signer"),
        cert.der().to_vec(),
    )
}

const SLO: &str = "https://apps.contoso.test/.auth/saml/fabrikam/slo";

fn logout_request_xml(issuer: &str) -> String {
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr1" Version="2.0" IssueInstant="{now}" Destination="{SLO}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID>alice@fabrikam.test</saml:NameID><samlp:SessionIndex>_sess1</samlp:SessionIndex></samlp:LogoutRequest>"#,
        now = iso(NOW)
    )
}

#[test]
fn idp_logout_request_over_signed_redirect_is_verified_and_read() {
    let (idp_key, cert) = rsa_idp();
    let t = IdpTrust::from_der(vec![cert]).expect("trust");
    let url = binding::redirect_url(
        SLO,
        "SAMLRequest",
        &logout_request_xml(IDP),
        Some("rs"),
        Some(&idp_key),
    )
    .expect("url");
    let query = url.split_once('?').expect("q").1;
    let raw = slo::verify_redirect(query, &t).expect("signature");
    let lr = slo::parse_logout_request(&raw, &t, true, IDP, SLO, NOW).expect("request");
    assert_eq!(lr.name_id, "alice@fabrikam.test");
    assert_eq!(lr.session_indexes, vec!["_sess1".to_string()]);

    // The signature covers RelayState and the message.
    let tampered = query.replace("RelayState=rs", "RelayState=rt");
    assert!(matches!(
        slo::verify_redirect(&tampered, &t),
        Err(SamlError::Signature(_))
    ));
    let unsigned = query.split("&SigAlg=").next().expect("part");
    assert_eq!(
        slo::verify_redirect(unsigned, &t),
        Err(SamlError::Unsigned("logout message"))
    );
    // Another IdP's issuer is refused even when signed.
    let url = binding::redirect_url(
        SLO,
        "SAMLRequest",
        &logout_request_xml("https://evil.test/"),
        None,
        Some(&idp_key),
    )
    .expect("url");
    let raw = slo::verify_redirect(url.split_once('?').expect("q").1, &t).expect("sig");
    assert_eq!(
        slo::parse_logout_request(&raw, &t, true, IDP, SLO, NOW),
        Err(SamlError::Issuer("https://evil.test/".into()))
    );
}

#[test]
fn unsigned_logout_request_over_post_is_refused() {
    let k = key();
    assert_eq!(
        slo::parse_logout_request(
            logout_request_xml(IDP).as_bytes(),
            &trust(&[&k]),
            false,
            IDP,
            SLO,
            NOW
        ),
        Err(SamlError::Unsigned("logout message"))
    );
}

#[test]
fn logout_request_with_enveloped_signature_is_read_from_signed_bytes() {
    let k = key();
    let xml = logout_request_xml(IDP).replace(
        "</saml:Issuer>",
        &format!("</saml:Issuer>{}", sig_template("_lr1")),
    );
    let signed = sign_first(&xml, &k);
    let lr = slo::parse_logout_request(signed.as_bytes(), &trust(&[&k]), false, IDP, SLO, NOW)
        .expect("signed");
    assert_eq!(lr.session_indexes, vec!["_sess1".to_string()]);
    let tampered = signed.replace("_sess1", "_sess2");
    assert!(matches!(
        slo::parse_logout_request(tampered.as_bytes(), &trust(&[&k]), false, IDP, SLO, NOW),
        Err(SamlError::Signature(_) | SamlError::UnknownKey(_))
    ));
}

#[test]
fn only_a_configured_user_id_attribute_counts_as_mapping_user_id() {
    assert!(!AttributeMap::default().maps_user_id());
    let mut cfg = BTreeMap::new();
    cfg.insert("email".to_string(), "mail".to_string());
    assert!(!AttributeMap::from_config(&cfg).expect("map").maps_user_id());
    cfg.insert("user_id".to_string(), "employeeNumber".to_string());
    assert!(AttributeMap::from_config(&cfg).expect("map").maps_user_id());
}

#[test]
fn logout_response_says_success_or_a_partial_logout_under_a_top_level_code() {
    let status = |partial| {
        let xml = slo::logout_response("_r1", NOW, SLO, "_lr1", "urn:sp", partial);
        let doc = crate::saml::xml::parse_strict(&xml).expect("well-formed");
        doc.descendants()
            .filter(|n| n.tag_name().name() == "StatusCode")
            .map(|n| n.attribute("Value").unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        status(false),
        ["urn:oasis:names:tc:SAML:2.0:status:Success"]
    );
    // SAML 2.0 core 3.2.2.2: PartialLogout is a second-level code, under
    // one of the top-level ones.
    assert_eq!(
        status(true),
        [
            "urn:oasis:names:tc:SAML:2.0:status:Responder",
            "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
        ]
    );
}
