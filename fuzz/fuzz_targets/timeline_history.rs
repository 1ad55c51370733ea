//! cargo-fuzz target `timeline_history`: see `polarbackup_fuzz::timeline_history`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polarbackup_fuzz::timeline_history(data));
