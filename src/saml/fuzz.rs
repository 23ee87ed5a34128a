//! The fuzz entry point for the SAML response parser (called by
//! `crate::fuzzing::saml_response`, target `fuzz/fuzz_targets/saml_response.rs`).
//!
//! The pinned certificate's private key was discarded when it was made, so
//! no input can carry a valid signature: the property is that every input
//! is refused (and nothing panics, hangs or allocates without bound), as a
//! POST-bound response (also with an SP decryption key, so encrypted
//! assertions are parsed and decrypted), as an unsigned single logout
//! message, and as metadata and redirect-bound messages.

use std::sync::OnceLock;

use super::decrypt::SpDecrypter;
use super::response::{validate_response, validate_response_with, Expect, Requested, SignedPart};
use super::verify::IdpTrust;

fn trust() -> &'static IdpTrust {
    static TRUST: OnceLock<IdpTrust> = OnceLock::new();
    TRUST.get_or_init(|| {
        IdpTrust::from_pem(include_str!("fuzzing-idp.pem")).expect("the fuzzing certificate loads")
    })
}

/// An SP key made at start (any key: nothing can be encrypted to it by
/// the fuzzer except by chance, which still meets the signature check).
fn decrypter() -> &'static SpDecrypter {
    static KEY: OnceLock<SpDecrypter> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey as _;
        let sk = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa");
        let pem = sk.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("pem");
        SpDecrypter::from_pem(&pem).expect("the fuzzing SP key loads")
    })
}

pub fn saml_response(data: &[u8]) {
    let ids = ["_req".to_string()];
    let expect = Expect {
        idp_entity_id: "https://idp.test/",
        sp_entity_id: "https://sp.test/",
        acs_url: "https://sp.test/.auth/login/x/callback",
        requested: Requested {
            ids: &ids,
            allow_idp_initiated: true,
        },
        recipient_required: true,
        signed: SignedPart::Either,
        now: 1_800_000_000,
        skew: 120,
    };
    let accepted = validate_response(data, trust(), &expect);
    assert!(
        accepted.is_err(),
        "a response was accepted without the signing key: {accepted:?}"
    );
    let accepted = validate_response_with(data, trust(), &expect, Some(decrypter()));
    assert!(
        accepted.is_err(),
        "an encrypted response was accepted without the signing key: {accepted:?}"
    );
    let slo = "https://sp.test/.auth/saml/x/slo";
    let request = super::slo::parse_logout_request(
        data,
        trust(),
        false,
        "https://idp.test/",
        slo,
        1_800_000_000,
    );
    assert!(
        request.is_err(),
        "a logout request was accepted without the signing key: {request:?}"
    );
    let answer = super::slo::parse_logout_response(data, trust(), false, "https://idp.test/", slo);
    assert!(
        answer.is_err(),
        "a logout response was accepted without the signing key: {answer:?}"
    );
    let _ = super::metadata::parse_idp_metadata(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = super::binding::decode_redirect(text);
    }
}
