//! cargo-fuzz target `percent`: see `polarbackup_fuzz::percent`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polarbackup_fuzz::percent(data));
