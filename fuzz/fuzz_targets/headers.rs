//! Hop-by-hop, identity and forwarding header stripping (realmgate::fuzzing::headers).
//! The properties checked are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| realmgate::fuzzing::headers(data));
