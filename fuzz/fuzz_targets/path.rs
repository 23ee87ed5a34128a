//! Path normalization, public prefixes and routing (realmgate::fuzzing::path).
//! The properties checked are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| realmgate::fuzzing::path(data));
