//! Login and logout target validation (realmgate::fuzzing::login_target).
//! The properties checked are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| realmgate::fuzzing::login_target(data));
