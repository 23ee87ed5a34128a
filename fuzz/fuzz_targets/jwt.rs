//! JOSE header, signature and ID-token claim checks (realmgate::fuzzing::jwt),
//! and claim sets with arbitrary values behind a valid signature
//! (realmgate::fuzzing::jwt_claims). The properties checked are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    realmgate::fuzzing::jwt(data);
    realmgate::fuzzing::jwt_claims(data);
});
