//! Session cookie parsing: Cookie header values, one per line (realmgate::fuzzing::cookie).
//! The properties checked are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| realmgate::fuzzing::cookie(data));
