use std::time::{Duration, SystemTime};

use jsonwebtoken::{DecodingKey, Validation};
use rsa::pkcs8::EncodePrivateKey as _;
use x509_cert::der::{Decode as _, Encode as _};

use super::*;

/// A self-signed certificate (PEM) and its key (PKCS#8 PEM), valid from
/// yesterday for `days`; RSA when `rsa`, else P-256.
pub(crate) fn certificate(rsa: bool, days: i64) -> (String, String) {
    let key = if rsa {
        let k = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = k.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap()
    } else {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
    };
    let mut params = rcgen::CertificateParams::new(vec!["realmgate-test".to_string()]).unwrap();
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(86_400)).into();
    params.not_after = if days >= 0 {
        now + Duration::from_secs(days.unsigned_abs() * 86_400)
    } else {
        now - Duration::from_secs(days.unsigned_abs() * 86_400)
    }
    .into();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The certificate's public key, as a verifier of the assertion would take it.
fn verifier(cert_pem: &str) -> (DecodingKey, Vec<u8>) {
    let block = pem_block(cert_pem, "CERTIFICATE").unwrap();
    let cert = x509_cert::Certificate::load_pem_chain(block.as_bytes())
        .unwrap()
        .remove(0);
    let der = cert.to_der().unwrap();
    let bits = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec();
    let rsa = cert.tbs_certificate.subject_public_key_info.algorithm.oid
        == x509_cert::der::oid::db::rfc5912::RSA_ENCRYPTION;
    let key = if rsa {
        DecodingKey::from_rsa_der(&bits)
    } else {
        DecodingKey::from_ec_der(&bits)
    };
    (key, der)
}

#[test]
fn a_certificate_signs_an_rfc7523_assertion_naming_it_by_x5t_s256() {
    for rsa in [true, false] {
        let (cert, key) = certificate(rsa, 90);
        let c = CertificateCredential::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let t = now();
        let jwt = c
            .assertion("client-1", "https://login.example/t/oauth2/v2.0/token", t)
            .unwrap();
        let (decoding, der) = verifier(&cert);
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        let want_alg = if rsa {
            Algorithm::RS256
        } else {
            Algorithm::ES256
        };
        assert_eq!(header.alg, want_alg);
        assert_eq!(
            header.x5t_s256.as_deref(),
            Some(URL_SAFE_NO_PAD.encode(Sha256::digest(&der)).as_str())
        );
        let mut v = Validation::new(want_alg);
        v.set_audience(&["https://login.example/t/oauth2/v2.0/token"]);
        v.set_issuer(&["client-1"]);
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub", "nbf"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&jwt, &decoding, &v).unwrap();
        let claims = data.claims;
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["iat"], t);
        assert_eq!(claims["nbf"], t);
        assert_eq!(claims["exp"], t + ASSERTION_LIFETIME_SECS);
        // A fresh jti each time.
        let again = c.assertion("client-1", "aud", t).unwrap();
        let jti = |j: &str| {
            let payload = j.split('.').nth(1).unwrap();
            let v: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
            v["jti"].as_str().unwrap().to_string()
        };
        assert_ne!(jti(&jwt), jti(&again));
        assert!(jti(&jwt).len() >= 16);
    }
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let (cert, _) = certificate(true, 90);
    let (_, other_key) = certificate(true, 90);
    let e = CertificateCredential::from_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
    assert!(e.contains("does not belong to the certificate"), "{e}");
    let (_, ec_key) = certificate(false, 90);
    let e = CertificateCredential::from_pem(cert.as_bytes(), ec_key.as_bytes()).unwrap_err();
    assert!(e.contains("does not belong to the certificate"), "{e}");
}

#[test]
fn files_in_the_wrong_places_or_formats_say_what_is_expected() {
    let (cert, key) = certificate(false, 90);
    // Swapped files.
    let e = CertificateCredential::from_pem(key.as_bytes(), cert.as_bytes()).unwrap_err();
    assert!(e.contains("no -----BEGIN CERTIFICATE-----"), "{e}");
    let e = CertificateCredential::from_pem(cert.as_bytes(), cert.as_bytes()).unwrap_err();
    assert!(e.contains("no PEM private key"), "{e}");
    let e = CertificateCredential::from_pem(
        cert.as_bytes(),
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(e.contains("encrypted"), "{e}");
    let e = CertificateCredential::from_pem(
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        key.as_bytes(),
    )
    .unwrap_err();
    assert!(e.contains("not a readable X.509 certificate"), "{e}");
    assert!(CertificateCredential::from_pem(&[0xff, 0xfe], key.as_bytes()).is_err());
    // Certificate and key in one file work for both.
    let both = format!("{key}{cert}");
    assert!(CertificateCredential::from_pem(both.as_bytes(), both.as_bytes()).is_ok());
}

#[test]
fn validity_is_read_from_the_certificate() {
    let (cert, key) = certificate(true, 10);
    let c = CertificateCredential::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let left = c.not_after() - now();
    assert!((9 * 86_400..=10 * 86_400 + 60).contains(&left), "{left}");
    assert!(c.not_before() < now());
    // Reloading the same files gives an equal credential; another certificate does not.
    let same = CertificateCredential::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    assert_eq!(c, same);
    let (cert2, key2) = certificate(true, 10);
    assert_ne!(
        c,
        CertificateCredential::from_pem(cert2.as_bytes(), key2.as_bytes()).unwrap()
    );
    // The DER kept is the certificate's.
    assert!(x509_cert::Certificate::from_der(c.certificate_der()).is_ok());
}

#[test]
fn only_a_jwt_is_taken_from_an_assertion_file() {
    assert_eq!(assertion_of(b"aaa.bbb.ccc\n"), Some("aaa.bbb.ccc"));
    assert_eq!(assertion_of(b"  a-_.b.c  "), Some("a-_.b.c"));
    for bad in [
        &b""[..],
        b"aaa.bbb",
        b"aaa.bbb.",
        b"a.b.c.d.e",
        b"a b.c.d",
        b"a.b.c\nx.y.z",
        b"a+b.c.d",
        b"\xff.a.b",
    ] {
        assert_eq!(assertion_of(bad), None, "{}", String::from_utf8_lossy(bad));
    }
}

#[tokio::test]
async fn an_assertion_file_is_read_at_each_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "one.two.three\n").unwrap();
    let cred = ClientCredential::AssertionFile(path.clone());
    let first = match cred.authenticate("c", "aud", now()).await.unwrap() {
        ClientAuthentication::Assertion(a) => a,
        ClientAuthentication::Secret(_) => panic!("a secret"),
    };
    assert_eq!(first.expose_str(), "one.two.three");
    std::fs::write(&path, "four.five.six").unwrap();
    let second = match cred.authenticate("c", "aud", now()).await.unwrap() {
        ClientAuthentication::Assertion(a) => a,
        ClientAuthentication::Secret(_) => panic!("a secret"),
    };
    assert_eq!(second.expose_str(), "four.five.six");
    std::fs::write(&path, "not a token").unwrap();
    let e = cred.authenticate("c", "aud", now()).await.err().unwrap();
    assert!(e.contains("does not hold a JWT"), "{e}");
    std::fs::write(&path, vec![b'a'; (MAX_ASSERTION_FILE_BYTES + 1) as usize]).unwrap();
    let e = cred.authenticate("c", "aud", now()).await.err().unwrap();
    assert!(e.contains("larger than 64 KiB"), "{e}");
    std::fs::remove_file(&path).unwrap();
    let e = cred.authenticate("c", "aud", now()).await.err().unwrap();
    assert!(e.contains("cannot be read"), "{e}");
    // The error never shows the file's content.
    assert!(!e.contains("four"));
}

#[test]
fn debug_output_names_the_kind_only() {
    let s = format!(
        "{:?}",
        ClientCredential::Secret(crate::config::Secret::new("hunter2"))
    );
    assert_eq!(s, "client secret");
}
