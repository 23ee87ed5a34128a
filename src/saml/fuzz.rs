//! The fuzz entry point for the SAML response parser (called by
//! `crate::fuzzing::saml_response`, target `fuzz/fuzz_targets/saml_response.rs`).
//!
//! The pinned certificate's private key was discarded when it was made, so
//! no input can carry a valid signature: the property is that every input
//! is refused (and nothing panics, hangs or allocates without bound), both
//! as a POST-bound response and as metadata and redirect-bound messages.

use std::sync::OnceLock;

use super::response::{validate_response, Expect, Requested, SignedPart};
use super::verify::IdpTrust;

fn trust() -> &'static IdpTrust {
    static TRUST: OnceLock<IdpTrust> = OnceLock::new();
    TRUST.get_or_init(|| {
        IdpTrust::from_pem(include_str!("fuzzing-idp.pem")).expect("the fuzzing certificate loads")
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
    let _ = super::metadata::parse_idp_metadata(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = super::binding::decode_redirect(text);
    }
}
