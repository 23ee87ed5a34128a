//! SAML interop with a third-party IdP implementation: npm samlp (Auth0's
//! IdP library, xml-crypto signatures; tests/node/saml-idp.mjs) signs
//! responses, realmgate's validator must accept what is meant for it and
//! refuse what is not. `scripts/test.sh` installs the npm packages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use realmgate::saml::{
    validate_response, AttributeMap, Expect, IdpTrust, Requested, SamlError, SignedPart,
};
use serde_json::json;

use crate::node::{node_dir, run_script};

const IDP: &str = "https://idp.samlp.test/";
const SP: &str = "https://apps.contoso.test/.auth/saml/fabrikam";
const ACS: &str = "https://apps.contoso.test/.auth/login/fabrikam/callback";

struct IdpKey {
    dir: tempfile::TempDir,
    cert_der: Vec<u8>,
}

fn idp_key() -> IdpKey {
    use rsa::pkcs8::EncodePrivateKey as _;
    let sk = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa");
    let pem = sk.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("pem");
    let kp = rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).expect("kp");
    let cert = rcgen::CertificateParams::new(vec!["idp.samlp.test".into()])
        .expect("params")
        .self_signed(&kp)
        .expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("key.pem"), pem.as_bytes()).expect("key");
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("cert");
    IdpKey {
        dir,
        cert_der: cert.der().to_vec(),
    }
}

/// A response samlp signs for `audience`, answering `_req1`.
async fn samlp_response(key: &IdpKey, audience: &str, sign_response: bool) -> String {
    assert!(
        node_dir().join("node_modules/samlp").is_dir(),
        "npm package samlp is missing: run `npm ci` in {} (scripts/test.sh does it)",
        node_dir().display()
    );
    let config = key.dir.path().join(format!("config-{sign_response}.json"));
    let cfg = json!({
        "issuer": IDP,
        "certFile": key.dir.path().join("cert.pem"),
        "keyFile": key.dir.path().join("key.pem"),
        "audience": audience,
        "recipient": ACS,
        "destination": ACS,
        "inResponseTo": "_req1",
        "sessionIndex": "_idp_session_7",
        "signResponse": sign_response,
        "signAssertion": true,
        "user": { "id": "u-123", "email": "carol@fabrikam.test", "displayName": "Carol Ng", "givenName": "Carol", "familyName": "Ng" }
    });
    std::fs::write(&config, cfg.to_string()).expect("config");
    let (ok, stdout, stderr) = run_script(
        "saml-idp.mjs",
        &[config.display().to_string()],
        Duration::from_secs(60),
    )
    .await;
    assert!(ok, "saml-idp.mjs failed: {stderr}");
    stdout
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn expect<'a>(ids: &'a [String], signed: SignedPart) -> Expect<'a> {
    Expect {
        idp_entity_id: IDP,
        sp_entity_id: SP,
        acs_url: ACS,
        requested: Requested {
            ids,
            allow_idp_initiated: false,
        },
        recipient_required: true,
        signed,
        now: now(),
        skew: 120,
    }
}

#[tokio::test]
async fn a_samlp_signed_response_is_accepted_and_mapped() {
    let key = idp_key();
    let trust = IdpTrust::from_der(vec![key.cert_der.clone()]).expect("trust");
    let ids = vec!["_req1".to_string()];
    for sign_response in [false, true] {
        let xml = samlp_response(&key, SP, sign_response).await;
        let a = validate_response(xml.as_bytes(), &trust, &expect(&ids, SignedPart::Assertion))
            .unwrap_or_else(|e| {
                panic!("samlp response (signResponse {sign_response}) refused: {e}")
            });
        assert_eq!(a.issuer, IDP);
        assert_eq!(a.session_index.as_deref(), Some("_idp_session_7"));
        let id = AttributeMap::default().identity(&a).expect("identity");
        assert_eq!(id.subject, "u-123", "persistent NameID");
        assert_eq!(id.email.as_deref(), Some("carol@fabrikam.test"));
    }
}

#[tokio::test]
async fn a_samlp_response_for_another_sp_or_key_or_request_is_refused() {
    let key = idp_key();
    let trust = IdpTrust::from_der(vec![key.cert_der.clone()]).expect("trust");
    let ids = vec!["_req1".to_string()];
    let other_sp = samlp_response(&key, "https://other.test/sp", false).await;
    assert_eq!(
        validate_response(
            other_sp.as_bytes(),
            &trust,
            &expect(&ids, SignedPart::Either)
        ),
        Err(SamlError::Audience)
    );
    let good = samlp_response(&key, SP, false).await;
    let other_key = IdpTrust::from_der(vec![idp_key().cert_der]).expect("trust");
    assert!(matches!(
        validate_response(
            good.as_bytes(),
            &other_key,
            &expect(&ids, SignedPart::Either)
        ),
        Err(SamlError::Signature(_))
    ));
    let other_request = vec!["_req2".to_string()];
    assert_eq!(
        validate_response(
            good.as_bytes(),
            &trust,
            &expect(&other_request, SignedPart::Either)
        ),
        Err(SamlError::InResponseTo)
    );
    // The assertion is signed, not the response: requiring the response
    // signed refuses it.
    assert_eq!(
        validate_response(good.as_bytes(), &trust, &expect(&ids, SignedPart::Response)),
        Err(SamlError::Unsigned("response"))
    );
}

/// The three implementations agree: what samlp (xml-crypto) signed, Debian's
/// `xmlsec1 --verify` and realmgate both accept, and both refuse after a
/// signed value is changed. scripts/test.sh installs xmlsec1.
#[tokio::test]
async fn xmlsec1_agrees_on_samlp_responses() {
    let key = idp_key();
    let trust = IdpTrust::from_der(vec![key.cert_der.clone()]).expect("trust");
    let ids = vec!["_req1".to_string()];
    let good = samlp_response(&key, SP, false).await;
    let changed = good.replace("carol@fabrikam.test", "carl@fabrikam.test");
    assert_ne!(good, changed);
    for (name, xml, valid) in [
        ("as signed", &good, true),
        ("value changed", &changed, false),
    ] {
        let file = key.dir.path().join("response.xml");
        std::fs::write(&file, xml).expect("write");
        let out = std::process::Command::new("xmlsec1")
            .arg("--verify")
            .arg("--pubkey-cert-pem")
            .arg(key.dir.path().join("cert.pem"))
            .arg("--id-attr:ID")
            .arg("urn:oasis:names:tc:SAML:2.0:assertion:Assertion")
            .arg(&file)
            .output()
            .unwrap_or_else(|e| {
                panic!("xmlsec1 cannot run ({e}): install Debian's xmlsec1 (scripts/test.sh does)")
            });
        assert_eq!(out.status.success(), valid, "xmlsec1 on {name}");
        let ours = validate_response(xml.as_bytes(), &trust, &expect(&ids, SignedPart::Assertion));
        assert_eq!(ours.is_ok(), valid, "realmgate on {name}: {ours:?}");
    }
}
