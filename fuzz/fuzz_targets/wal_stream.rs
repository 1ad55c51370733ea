//! cargo-fuzz target `wal_stream`: see `polarbackup_fuzz::wal_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| polarbackup_fuzz::wal_stream(data));
