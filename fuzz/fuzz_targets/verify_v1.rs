//! cargo-fuzz target `verify_v1`: see `polarbackup_fuzz::verify_v1`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polarbackup_fuzz::verify_v1(data));
