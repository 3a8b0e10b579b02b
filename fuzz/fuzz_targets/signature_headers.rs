//! `shared::fuzzing::signature_headers` under libFuzzer: a crash input found here goes to
//! `fuzz/regressions/signature_headers/`, where `make test` runs it from then on.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::signature_headers(data));
