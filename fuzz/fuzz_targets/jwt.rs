//! JOSE header, signature and ID-token claim checks (realmgate::fuzzing::jwt).
//! The properties checked are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| realmgate::fuzzing::jwt(data));
