//! Encrypted assertions: decrypted with the SP key, then exactly the checks
//! of a plain one; and the hostile cases (wrong key, algorithms off the
//! allow-list, plaintext that is not one Assertion, an encrypted and a plain
//! assertion together, a signature over the wrapper only).
//!
//! Fixtures are encrypted at test time with the signature library's own
//! RSA-OAEP and AES primitives (the same ones that decrypt).

use std::sync::OnceLock;

use base64::Engine as _;
use bergshamra::crypto::{cipher, keytransport};

use super::*;
use crate::saml::decrypt::SpDecrypter;

const GCM128: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
const GCM256: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
const CBC128: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
const CBC256: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
const TRIPLEDES: &str = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc";
const OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const OAEP11: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
const RSA15: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";

/// The SP's RSA key in PEM (made once: RSA key generation is slow).
fn sp_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(rsa_pem)
}

fn rsa_pem() -> String {
    use rsa::pkcs8::EncodePrivateKey as _;
    let sk = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa");
    sk.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .expect("pem")
        .to_string()
}

fn another_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(rsa_pem)
}

fn decrypter() -> SpDecrypter {
    SpDecrypter::from_pem(sp_pem()).expect("SP key")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// How a fixture is encrypted.
struct Enc<'a> {
    content: &'a str,
    transport: &'a str,
    /// The transport's algorithm as written (may differ, to lie about it).
    transport_label: &'a str,
    /// An OAEP DigestMethod inside the EncryptionMethod.
    oaep_digest: Option<&'a str>,
    /// The PEM whose public key the content key is encrypted to.
    to: &'a str,
    /// The EncryptedKey inside the EncryptedData's KeyInfo (else beside it).
    key_inside: bool,
}

impl Default for Enc<'_> {
    fn default() -> Self {
        Enc {
            content: GCM256,
            transport: OAEP,
            transport_label: OAEP,
            oaep_digest: None,
            to: sp_pem(),
            key_inside: true,
        }
    }
}

/// `<saml:EncryptedAssertion>` holding `plaintext`.
fn encrypt(plaintext: &str, e: &Enc<'_>) -> String {
    let content = cipher::from_uri(e.content).expect("content cipher");
    let mut session_key = vec![0u8; content.key_size()];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut session_key);
    let cipher_text = content
        .encrypt(&session_key, plaintext.as_bytes())
        .expect("encrypt");
    let public = bergshamra::keys::loader::load_rsa_private_pem(e.to.as_bytes())
        .expect("key")
        .software_key()
        .expect("software key")
        .expect("some key");
    let params = keytransport::OaepParams {
        digest_uri: e.oaep_digest.map(str::to_string),
        ..Default::default()
    };
    let wrapped = keytransport::from_uri_with_params(e.transport, params)
        .expect("transport")
        .encrypt(&public, &session_key)
        .expect("wrap");
    let digest = e
        .oaep_digest
        .map(|d| format!(r#"<ds:DigestMethod xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Algorithm="{d}"/>"#))
        .unwrap_or_default();
    let encrypted_key = format!(
        r#"<xenc:EncryptedKey xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"><xenc:EncryptionMethod Algorithm="{}">{digest}</xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey>"#,
        e.transport_label,
        b64(&wrapped)
    );
    let (inside, beside) = if e.key_inside {
        (encrypted_key, String::new())
    } else {
        (String::new(), encrypted_key)
    };
    format!(
        r#"<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="{}"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">{inside}</ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>{beside}</saml:EncryptedAssertion>"#,
        e.content,
        b64(&cipher_text)
    )
}

/// The assertion of `fx` (signed by the IdP when `fx.sign_assertion`),
/// standalone, as an IdP encrypts it.
fn assertion_of(fx: &Fx, k: &Key) -> String {
    if fx.sign_assertion {
        let doc = fx.response(
            &fx.assertion()
                .replace(SIG_MARK, &sig_template(&fx.assertion_id)),
        );
        extract_assertion(&sign_first(&doc.replacen(SIG_MARK, "", 1), k))
    } else {
        fx.assertion().replace(SIG_MARK, "")
    }
}

/// A response of `fx` whose assertion is replaced by `inner` (an
/// EncryptedAssertion, maybe with more), signed when `fx.sign_response`.
fn response_with(fx: &Fx, k: &Key, inner: &str) -> String {
    let doc = fx.response(inner);
    if fx.sign_response {
        sign_first(&doc.replace(SIG_MARK, &sig_template(&fx.response_id)), k)
    } else {
        doc.replace(SIG_MARK, "")
    }
}

fn check_enc(xml: &str, k: &Key, signed: SignedPart) -> Result<Assertion, SamlError> {
    let mut e = expect();
    e.signed = signed;
    validate_response_with(xml.as_bytes(), &trust(&[k]), &e, Some(&decrypter()))
}

fn is_decrypt(r: &Result<Assertion, SamlError>) -> bool {
    matches!(r, Err(SamlError::Decrypt(_)))
}

#[test]
fn encrypted_assertion_is_decrypted_then_checked_like_a_plain_one() {
    let k = key();
    let fx = Fx::default();
    let cases: [Enc<'_>; 6] = [
        Enc::default(),
        Enc {
            content: GCM128,
            ..Enc::default()
        },
        Enc {
            content: CBC128,
            ..Enc::default()
        },
        Enc {
            content: CBC256,
            key_inside: false,
            ..Enc::default()
        },
        Enc {
            transport: OAEP11,
            transport_label: OAEP11,
            oaep_digest: Some("http://www.w3.org/2001/04/xmlenc#sha256"),
            ..Enc::default()
        },
        Enc {
            oaep_digest: Some("http://www.w3.org/2001/04/xmlenc#sha256"),
            ..Enc::default()
        },
    ];
    for (i, enc) in cases.iter().enumerate() {
        let xml = response_with(&fx, &k, &encrypt(&assertion_of(&fx, &k), enc));
        let a =
            check_enc(&xml, &k, SignedPart::Assertion).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(a.name_id, "alice@fabrikam.test", "case {i}");
        assert_eq!(a.id, "_assert1");
        assert_eq!(a.session_index.as_deref(), Some("_sess1"));
    }
}

#[test]
fn the_decrypted_assertion_meets_every_condition_check() {
    let k = key();
    // Audience, InResponseTo, validity: the same refusals as in the clear.
    for (fx, want) in [
        (
            Fx {
                audience: "https://other.test/".into(),
                ..Fx::default()
            },
            SamlError::Audience,
        ),
        (
            Fx {
                in_response_to: Some("_other".into()),
                ..Fx::default()
            },
            SamlError::InResponseTo,
        ),
        (
            Fx {
                not_on_or_after: NOW - 600,
                ..Fx::default()
            },
            SamlError::Expired,
        ),
    ] {
        let xml = response_with(&fx, &k, &encrypt(&assertion_of(&fx, &k), &Enc::default()));
        assert_eq!(check_enc(&xml, &k, SignedPart::Either), Err(want));
    }
    // Signed by another IdP's key: refused after decryption.
    let other = key();
    let fx = Fx::default();
    let xml = response_with(
        &fx,
        &k,
        &encrypt(&assertion_of(&fx, &other), &Enc::default()),
    );
    assert!(matches!(
        check_enc(&xml, &k, SignedPart::Either),
        Err(SamlError::UnknownKey(_))
    ));
}

#[test]
fn without_sp_key_an_encrypted_assertion_is_refused_naming_sp_key_file() {
    let k = key();
    let fx = Fx::default();
    let xml = response_with(&fx, &k, &encrypt(&assertion_of(&fx, &k), &Enc::default()));
    let got = validate_response(xml.as_bytes(), &trust(&[&k]), &expect());
    assert_eq!(got, Err(SamlError::Encrypted));
    assert!(SamlError::Encrypted.to_string().contains("sp_key_file"));
}

#[test]
fn a_wrong_key_is_refused() {
    let k = key();
    let fx = Fx::default();
    let enc = Enc {
        to: another_pem(),
        ..Enc::default()
    };
    let xml = response_with(&fx, &k, &encrypt(&assertion_of(&fx, &k), &enc));
    assert!(is_decrypt(&check_enc(&xml, &k, SignedPart::Either)));
}

#[test]
fn algorithms_off_the_allow_list_are_refused_rsa_1_5_by_name() {
    let k = key();
    let fx = Fx::default();
    let plain = assertion_of(&fx, &k);
    // RSA PKCS#1 v1.5 key transport: refused before any decryption.
    let xml = response_with(
        &fx,
        &k,
        &encrypt(
            &plain,
            &Enc {
                transport_label: RSA15,
                ..Enc::default()
            },
        ),
    );
    match check_enc(&xml, &k, SignedPart::Either) {
        Err(SamlError::Decrypt(d)) => assert!(d.contains("rsa-1_5"), "{d}"),
        other => panic!("{other:?}"),
    }
    // An unknown content algorithm (and 3DES, which is not built).
    for alg in [TRIPLEDES, "urn:example:rot13"] {
        let xml = response_with(&fx, &k, &encrypt(&plain, &Enc::default())).replace(GCM256, alg);
        assert!(
            is_decrypt(&check_enc(&xml, &k, SignedPart::Either)),
            "{alg}"
        );
    }
    // An OAEP digest off the list (MD5).
    let xml = response_with(
        &fx,
        &k,
        &encrypt(
            &plain,
            &Enc {
                oaep_digest: Some("http://www.w3.org/2001/04/xmlenc#sha256"),
                ..Enc::default()
            },
        ),
    )
    .replace(
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#md5",
    );
    assert!(is_decrypt(&check_enc(&xml, &k, SignedPart::Either)));
    // A CipherReference (realmgate would fetch a URL) instead of a value.
    let xml = response_with(&fx, &k, &encrypt(&plain, &Enc::default()));
    let start = xml.rfind("<xenc:CipherValue>").expect("value");
    let end = xml.rfind("</xenc:CipherValue>").expect("end") + "</xenc:CipherValue>".len();
    let xml = format!(
        r#"{}<xenc:CipherReference URI="http://127.0.0.1:1/x"/>{}"#,
        &xml[..start],
        &xml[end..]
    );
    assert!(is_decrypt(&check_enc(&xml, &k, SignedPart::Either)));
}

#[test]
fn decrypted_content_that_is_not_one_assertion_is_refused() {
    let k = key();
    let fx = Fx::default();
    let a = assertion_of(&fx, &k);
    let two = format!("{a}{}", a.replace("_assert1", "_assert2"));
    let nested = a.replacen(
        "<saml:Subject>",
        &format!(
            "{}<saml:Subject>",
            Fx {
                assertion_id: "_evil".into(),
                ..Fx::default()
            }
            .assertion()
            .replace(SIG_MARK, "")
        ),
        1,
    );
    for (name, plaintext) in [
        ("two assertions", two.as_str()),
        ("not an assertion", "<foo xmlns=\"urn:x\"/>"),
        ("text", "hello"),
        (
            "a Response",
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r"/>"#,
        ),
    ] {
        let xml = response_with(&fx, &k, &encrypt(plaintext, &Enc::default()));
        assert!(
            is_decrypt(&check_enc(&xml, &k, SignedPart::Either)),
            "{name}"
        );
    }
    // An assertion inside the decrypted one (wrapping inside the cipher text).
    let xml = response_with(&fx, &k, &encrypt(&nested, &Enc::default()));
    assert!(matches!(
        check_enc(&xml, &k, SignedPart::Either),
        Err(SamlError::Shape(_))
    ));
}

#[test]
fn an_encrypted_and_a_plain_assertion_together_are_refused() {
    let k = key();
    let fx = Fx::default();
    let a = assertion_of(&fx, &k);
    let enc = encrypt(&a.replace("_assert1", "_assert9"), &Enc::default());
    for inner in [
        format!("{a}{enc}"),
        format!("{enc}{a}"),
        format!("{enc}{enc}"),
    ] {
        let xml = response_with(&fx, &k, &inner);
        assert!(matches!(
            check_enc(&xml, &k, SignedPart::Either),
            Err(SamlError::Shape(_))
        ));
    }
}

#[test]
fn a_signature_over_the_encrypted_wrapper_is_not_an_assertion_signature() {
    let k = key();
    // The IdP signs the Response (over the cipher text) but not the assertion.
    let fx = Fx {
        sign_assertion: false,
        sign_response: true,
        ..Fx::default()
    };
    let xml = response_with(&fx, &k, &encrypt(&assertion_of(&fx, &k), &Enc::default()));
    assert_eq!(
        check_enc(&xml, &k, SignedPart::Assertion),
        Err(SamlError::Unsigned("assertion")),
        "only the assertion's own signature counts when it is required"
    );
    // With "either", the Response signature covers the cipher text.
    let a = check_enc(&xml, &k, SignedPart::Either).expect("response signed");
    assert_eq!(a.name_id, "alice@fabrikam.test");
    // Changing the cipher text breaks the Response signature.
    let i = xml.rfind("</xenc:CipherValue>").expect("value") - 4;
    let mut tampered = xml.clone();
    let swap = if &xml[i..i + 1] == "A" { "B" } else { "A" };
    tampered.replace_range(i..i + 1, swap);
    assert!(matches!(
        check_enc(&tampered, &k, SignedPart::Either),
        Err(SamlError::Signature(_) | SamlError::UnknownKey(_))
    ));

    // A signature placed on the EncryptedAssertion (the wrapper itself).
    let unsigned = Fx {
        sign_assertion: false,
        ..Fx::default()
    };
    let enc = encrypt(&assertion_of(&unsigned, &k), &Enc::default()).replacen(
        "<saml:EncryptedAssertion>",
        r#"<saml:EncryptedAssertion ID="_wrap"><!--SIG-->"#,
        1,
    );
    let doc = unsigned
        .response(&enc)
        .replacen(SIG_MARK, "", 1)
        .replace(SIG_MARK, &sig_template("_wrap"));
    let xml = sign_first(&doc, &k);
    for signed in [SignedPart::Assertion, SignedPart::Either] {
        assert!(
            matches!(check_enc(&xml, &k, signed), Err(SamlError::Shape(_))),
            "{signed:?}"
        );
    }
}

#[test]
fn nothing_signed_is_refused_even_when_encrypted() {
    let k = key();
    let fx = Fx {
        sign_assertion: false,
        ..Fx::default()
    };
    let xml = response_with(&fx, &k, &encrypt(&assertion_of(&fx, &k), &Enc::default()));
    assert_eq!(
        check_enc(&xml, &k, SignedPart::Either),
        Err(SamlError::Unsigned("response or assertion"))
    );
}

#[test]
fn garbage_around_the_cipher_text_never_panics() {
    let k = key();
    let fx = Fx::default();
    let xml = response_with(&fx, &k, &encrypt(&assertion_of(&fx, &k), &Enc::default()));
    let value_at = xml.rfind("<xenc:CipherValue>").expect("value") + "<xenc:CipherValue>".len();
    for replacement in ["", "!!!", "AAAA", "AA==", &"QUFB".repeat(10)] {
        let end = value_at + xml[value_at..].find('<').expect("end");
        let bad = format!("{}{replacement}{}", &xml[..value_at], &xml[end..]);
        assert!(
            is_decrypt(&check_enc(&bad, &k, SignedPart::Either)),
            "{replacement}"
        );
    }
    for cut in [
        "<xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\"/>",
        "<ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">",
    ] {
        let bad = xml.replacen(cut, "", 1);
        assert!(check_enc(&bad, &k, SignedPart::Either).is_err(), "{cut}");
    }
}
