//! cargo-fuzz target `pg_startup`: see `polarbackup_fuzz::pg_startup`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polarbackup_fuzz::pg_startup(data));
