//! `shared::fuzzing::queue_message` under libFuzzer: a crash input found here goes to
//! `fuzz/regressions/queue_message/`, where `make test` runs it from then on.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::queue_message(data));
