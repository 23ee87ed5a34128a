//! Single logout messages: the IdP's LogoutRequest is bounded in time and
//! names where it was sent; realmgate's LogoutRequest repeats the NameID
//! exactly; the LogoutResponse must name where it was sent.

use super::*;
use crate::session::model::SamlNameId;

fn lr(
    issue_instant: Option<u64>,
    not_on_or_after: Option<u64>,
    destination: Option<&str>,
) -> String {
    let ii = issue_instant
        .map(|t| format!(r#" IssueInstant="{}""#, iso(t)))
        .unwrap_or_default();
    let noa = not_on_or_after
        .map(|t| format!(r#" NotOnOrAfter="{}""#, iso(t)))
        .unwrap_or_default();
    let dst = destination
        .map(|d| format!(r#" Destination="{d}""#))
        .unwrap_or_default();
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr9" Version="2.0"{ii}{noa}{dst}><saml:Issuer>{IDP}</saml:Issuer><saml:NameID>alice@fabrikam.test</saml:NameID></samlp:LogoutRequest>"#
    )
}

/// Parses as if the redirect signature had been verified (the binding's
/// check is tested beside `verify_redirect`).
fn parse(xml: &str) -> Result<slo::LogoutRequest, SamlError> {
    let k = key();
    slo::parse_logout_request(xml.as_bytes(), &trust(&[&k]), true, IDP, SLO, NOW)
}

#[test]
fn a_logout_request_is_bounded_by_its_issue_instant_and_not_on_or_after() {
    let skew = crate::saml::flow::SKEW_SECS;
    let max_age = slo::LOGOUT_REQUEST_MAX_AGE;
    // Fresh: remembered until IssueInstant + max age + skew.
    let ok = parse(&lr(Some(NOW - 10), None, Some(SLO))).expect("fresh");
    assert_eq!(ok.id, "_lr9");
    assert_eq!(ok.valid_until, NOW - 10 + max_age + skew);
    // A later NotOnOrAfter extends how long the ID is remembered.
    let ok = parse(&lr(Some(NOW), Some(NOW + 3600), Some(SLO))).expect("fresh");
    assert_eq!(ok.valid_until, NOW + 3600 + skew);
    // Within the skew both ways.
    parse(&lr(Some(NOW + skew), None, Some(SLO))).expect("a fast IdP clock");
    parse(&lr(Some(NOW - max_age - skew + 1), None, Some(SLO))).expect("just in time");
    // Too old, from the future, past its NotOnOrAfter.
    for (name, xml) in [
        ("old", lr(Some(NOW - max_age - skew), None, Some(SLO))),
        ("future", lr(Some(NOW + skew + 1), None, Some(SLO))),
        ("expired", lr(Some(NOW), Some(NOW - skew), Some(SLO))),
    ] {
        assert_eq!(parse(&xml), Err(SamlError::Expired), "{name}");
    }
    // No IssueInstant, or a bad one: refused.
    assert!(matches!(
        parse(&lr(None, None, Some(SLO))),
        Err(SamlError::Shape(_))
    ));
    assert!(matches!(
        parse(&lr(Some(NOW), None, Some(SLO)).replace("Z\"", "+01:00\"")),
        Err(SamlError::Shape(_)) | Err(SamlError::Expired)
    ));
}

#[test]
fn a_logout_message_must_name_this_slo_endpoint() {
    assert_eq!(
        parse(&lr(Some(NOW), None, None)),
        Err(SamlError::Recipient),
        "no Destination"
    );
    assert_eq!(
        parse(&lr(Some(NOW), None, Some("https://other.test/slo"))),
        Err(SamlError::Recipient)
    );
    let k = key();
    let response = |dst: &str| {
        format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" Version="2.0" IssueInstant="{}"{dst} InResponseTo="_lq"><saml:Issuer>{IDP}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
            iso(NOW)
        )
    };
    let ok = slo::parse_logout_response(
        response(&format!(r#" Destination="{SLO}""#)).as_bytes(),
        &trust(&[&k]),
        true,
        IDP,
        SLO,
    )
    .expect("answer");
    assert_eq!(ok.in_response_to.as_deref(), Some("_lq"));
    assert!(ok.success);
    assert_eq!(
        slo::parse_logout_response(response("").as_bytes(), &trust(&[&k]), true, IDP, SLO),
        Err(SamlError::Recipient)
    );
}

#[test]
fn the_sp_logout_request_repeats_the_name_id_exactly_and_escapes_it() {
    let name_id = SamlNameId {
        value: "a<b>&\"c".into(),
        format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
        name_qualifier: Some("https://idp.example.test/".into()),
        sp_name_qualifier: Some(SP.into()),
    };
    let xml = binding::logout_request(
        "_lq1",
        NOW,
        "https://idp.example.test/slo",
        SP,
        &name_id,
        Some("_sess1"),
    );
    let doc = roxmltree::Document::parse(&xml).expect("well-formed");
    let root = doc.root_element();
    assert_eq!(root.attribute("ID"), Some("_lq1"));
    assert_eq!(
        root.attribute("Destination"),
        Some("https://idp.example.test/slo")
    );
    let nid = root
        .children()
        .find(|n| n.tag_name().name() == "NameID")
        .expect("NameID");
    assert_eq!(nid.text(), Some("a<b>&\"c"));
    assert_eq!(nid.attribute("Format"), name_id.format.as_deref());
    assert_eq!(
        nid.attribute("NameQualifier"),
        Some("https://idp.example.test/")
    );
    assert_eq!(nid.attribute("SPNameQualifier"), Some(SP));
    let si = root
        .children()
        .find(|n| n.tag_name().name() == "SessionIndex")
        .expect("SessionIndex");
    assert_eq!(si.text(), Some("_sess1"));
    // Without qualifiers or a SessionIndex, none are written.
    let bare = binding::logout_request(
        "_lq2",
        NOW,
        "https://idp.example.test/slo",
        SP,
        &SamlNameId {
            value: "u".into(),
            format: None,
            name_qualifier: None,
            sp_name_qualifier: None,
        },
        None,
    );
    assert!(
        !bare.contains("Qualifier") && !bare.contains("SessionIndex") && !bare.contains("Format")
    );
}

#[test]
fn the_assertion_keeps_the_name_id_qualifiers_for_logout() {
    let k = key();
    let xml = Fx::default().build(&k);
    let a = check(&xml, &k).expect("valid");
    assert_eq!(a.name_qualifier, None);
    // Qualifiers are read from the signed assertion.
    let fx = Fx {
        name_id_format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\" NameQualifier=\"https://idp.example.test/\" SPNameQualifier=\"https://apps.contoso.test/.auth/saml/fabrikam".into(),
        ..Fx::default()
    };
    let a = check(&fx.build(&k), &k).expect("valid");
    assert_eq!(
        a.name_qualifier.as_deref(),
        Some("https://idp.example.test/")
    );
    assert_eq!(a.sp_name_qualifier.as_deref(), Some(SP));
}

#[test]
fn sp_metadata_offers_the_key_for_encryption_with_the_accepted_algorithms() {
    let xml = metadata::sp_metadata(SP, ACS, SLO, Some(&[1, 2, 3]));
    assert!(xml.contains(r#"use="encryption""#), "{xml}");
    assert!(xml.contains("aes256-gcm") && xml.contains("rsa-oaep-mgf1p"));
    assert!(!xml.contains("rsa-1_5") && !xml.contains("tripledes"));
    assert!(!metadata::sp_metadata(SP, ACS, SLO, None).contains("KeyDescriptor"));
}

#[test]
fn the_name_id_survives_the_stored_json_and_old_records_read_without_it() {
    use crate::session::model::{Session, SessionTerms};
    let settings = crate::config::load_str(&format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef0123"
[[connection]]
name = "fabrikam"
type = "saml"
idp_entity_id = "{IDP}"
idp_sso_url = "https://idp.example.test/sso"
idp_certificate_file = "/nonexistent.pem"
[[route]]
name = "apps"
hosts = ["apps.contoso.test"]
upstream = "http://127.0.0.1:9000"
"#
    ))
    .expect("config");
    let conn = &settings.connections[0];
    let name_id = SamlNameId {
        value: "u-1".into(),
        format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
        name_qualifier: None,
        sp_name_qualifier: Some(SP.into()),
    };
    let identity = crate::connection::VerifiedIdentity::builder(conn, "u-1", None, IDP)
        .expect("subject")
        .sid(Some("_sess1"))
        .saml_name_id(Some(name_id.clone()))
        .build();
    let session = Session::new(
        identity,
        SessionTerms {
            created_at: NOW,
            expires_at: NOW + 3600,
            keep_access_token: false,
            keep_refresh_token: false,
        },
    );
    assert_eq!(session.saml_name_id.as_deref(), Some(&name_id));
    let json = serde_json::to_string(&session).expect("json");
    assert!(
        !json.contains("\"name_qualifier\""),
        "absent qualifiers are not written: {json}"
    );
    let back: Session = serde_json::from_str(&json).expect("back");
    assert_eq!(back, session);
    // A record written before the field existed reads as no NameID.
    let mut old: serde_json::Value = serde_json::from_str(&json).expect("value");
    old.as_object_mut().expect("object").remove("saml_name_id");
    let old: Session = serde_json::from_value(old).expect("old record");
    assert_eq!(old.saml_name_id, None);
}
