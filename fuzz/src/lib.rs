//! The fuzz targets' entry points: the same file the corpus replay test in the normal suite
//! (`crates/polarbackup/tests/fuzz_corpus.rs`) runs every committed corpus file through.

#[path = "../../crates/polarbackup/tests/fuzz_entries/mod.rs"]
mod entries;

pub use entries::*;
