//! cargo-fuzz target `ram_policy`: see `polarbackup_fuzz::ram_policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polarbackup_fuzz::ram_policy(data));
