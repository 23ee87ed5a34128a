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

pub const IDP: &str = "https://idp.samlp.test/";
const SP: &str = "https://apps.contoso.test/.auth/saml/fabrikam";
const ACS: &str = "https://apps.contoso.test/.auth/login/fabrikam/callback";

pub struct IdpKey {
    pub dir: tempfile::TempDir,
    pub cert_der: Vec<u8>,
}

pub fn idp_key() -> IdpKey {
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
    samlp_sign(
        key,
        &Signed {
            issuer: IDP,
            audience,
            acs: ACS,
            in_response_to: Some("_req1"),
            sign_response,
        },
    )
    .await
}

/// What samlp is asked to sign (tests/node/saml-idp.mjs).
pub struct Signed<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Recipient and Destination.
    pub acs: &'a str,
    /// None: unsolicited (WS-Fed has no InResponseTo).
    pub in_response_to: Option<&'a str>,
    pub sign_response: bool,
}

/// A `<samlp:Response>` signed by samlp with `key` (the assertion always,
/// the response too when asked), for carol (persistent NameID `u-123`).
pub async fn samlp_sign(key: &IdpKey, what: &Signed<'_>) -> String {
    assert!(
        node_dir().join("node_modules/samlp").is_dir(),
        "npm package samlp is missing: run `npm ci` in {} (scripts/test.sh does it)",
        node_dir().display()
    );
    let config = key.dir.path().join(format!(
        "config-{}.json",
        realmgate::saml::binding::new_request_id()
    ));
    let cfg = json!({
        "issuer": what.issuer,
        "certFile": key.dir.path().join("cert.pem"),
        "keyFile": key.dir.path().join("key.pem"),
        "audience": what.audience,
        "recipient": what.acs,
        "destination": what.acs,
        "inResponseTo": what.in_response_to,
        "sessionIndex": "_idp_session_7",
        "signResponse": what.sign_response,
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
        // samlp's KeyInfo names its certificate, which is not pinned: the
        // kind of failure that makes a sign-in refetch the metadata once.
        Err(SamlError::UnknownKey(_))
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

/// A metadata server on 127.0.0.1 whose answer the test switches: Some(body)
/// is served with 200, None answers 503.
pub async fn metadata_server(
    body: std::sync::Arc<std::sync::Mutex<Option<String>>>,
) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/FederationMetadata.xml",
        listener.local_addr().expect("addr")
    );
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut read = 0;
                while read < buf.len() {
                    match sock.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                    if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let current = body.lock().expect("lock").clone();
                let response = match current {
                    Some(b) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/samlmetadata+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                        b.len()
                    ),
                    None => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                };
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, task)
}

pub fn metadata_xml(cert_der: &[u8]) -> String {
    use base64::Engine;
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{IDP}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.samlp.test/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
        base64::engine::general_purpose::STANDARD.encode(cert_der)
    )
}

#[tokio::test]
async fn metadata_url_is_fetched_kept_when_the_idp_is_down_and_503_without_a_copy() {
    use realmgate::saml::config::Protocol;
    use realmgate::saml::source::{MetadataCache, SourceError};
    let key = idp_key();
    let body = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let (url, server) = metadata_server(body.clone()).await;
    let client = realmgate::http_client::HttpClient::new().expect("client");

    // Never fetched and the IdP down: unavailable (a 503 for new sign-ins).
    let cache = MetadataCache::with_timings(&url, Protocol::Saml, Duration::ZERO, Duration::ZERO);
    assert!(matches!(
        cache.get(&client).await,
        Err(SourceError::Unavailable(_))
    ));

    // Up: fetched and pinned; a samlp response verifies with it.
    *body.lock().expect("lock") = Some(metadata_xml(&key.cert_der));
    let md = cache.get(&client).await.expect("fetched");
    assert_eq!(md.entity_id, IDP);
    let ids = vec!["_req1".to_string()];
    let xml = samlp_response(&key, SP, false).await;
    validate_response(
        xml.as_bytes(),
        &md.trust,
        &expect(&ids, SignedPart::Assertion),
    )
    .expect("pinned from the URL");

    // Down again: the refresh fails and the last good copy is kept.
    *body.lock().expect("lock") = None;
    let kept = cache.get(&client).await.expect("kept");
    assert_eq!(kept.entity_id, IDP);

    // Garbage from the IdP: refused with what is wrong, the good copy kept.
    *body.lock().expect("lock") = Some("<html>maintenance</html>".into());
    assert_eq!(cache.get(&client).await.expect("kept").entity_id, IDP);
    let fresh = MetadataCache::with_timings(&url, Protocol::Saml, Duration::ZERO, Duration::ZERO);
    assert!(matches!(
        fresh.get(&client).await,
        Err(SourceError::Invalid(_))
    ));
    server.abort();
}
