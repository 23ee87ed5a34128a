//! SAML responses, IdP metadata and redirect-bound messages
//! (realmgate::fuzzing::saml_response): nothing is accepted without the
//! pinned key, nothing panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    realmgate::fuzzing::saml_response(data);
});
