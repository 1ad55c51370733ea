//! cargo-fuzz target `manifest`: see `polarbackup_fuzz::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polarbackup_fuzz::manifest(data));
