//! cargo-fuzz target `params`: see `polarbackup_fuzz::params`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polarbackup_fuzz::params(data));
