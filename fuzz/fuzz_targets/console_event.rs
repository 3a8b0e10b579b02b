//! `shared::fuzzing::console_event` under libFuzzer: a crash input found here goes to
//! `fuzz/regressions/console_event/`, where `make test` runs it from then on.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::console_event(data));
