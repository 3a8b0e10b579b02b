//! `shared::fuzzing::google_oidc_token` under libFuzzer: a crash input found here goes to
//! `fuzz/regressions/google_oidc_token/`, where `make test` runs it from then on.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::google_oidc_token(data));
