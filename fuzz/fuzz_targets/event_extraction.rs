//! `shared::fuzzing::event_extraction` under libFuzzer: a crash input found here goes to
//! `fuzz/regressions/event_extraction/`, where `make test` runs it from then on.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::event_extraction(data));
