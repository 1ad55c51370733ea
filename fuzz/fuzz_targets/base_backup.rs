//! cargo-fuzz target `base_backup`: see `polarbackup_fuzz::base_backup`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polarbackup_fuzz::base_backup(data));
