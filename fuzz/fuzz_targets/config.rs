//! Config parsing and validation of arbitrary TOML text (realmgate::fuzzing::config).
//! The properties checked are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| realmgate::fuzzing::config(data));
