//! cargo-fuzz target `verify_v3`: see `polarbackup_fuzz::verify_v3`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polarbackup_fuzz::verify_v3(data));
