//! The own upstream response reader against hyper's HTTP/1 client on the
//! same bytes (realmgate::fuzzing::upstream_differential). The properties
//! checked are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| realmgate::fuzzing::upstream_differential(data));
