//! Callback query/form and the pending-login (state) cookie (realmgate::fuzzing::callback).
//! The properties checked are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| realmgate::fuzzing::callback(data));
