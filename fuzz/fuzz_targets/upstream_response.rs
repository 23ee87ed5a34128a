//! The upstream response parser and body decoder (realmgate::fuzzing::upstream_response).
//! The properties checked are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| realmgate::fuzzing::upstream_response(data));
