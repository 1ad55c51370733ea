//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) through its target's
//! entry point (`fuzz_entries`, the code the cargo-fuzz targets run), so the stable test suite
//! keeps exercising the corpus between fuzzing runs (`bench/fuzz.sh`).

mod fuzz_entries;

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_committed_corpus_file_replays_without_a_panic() {
    for (target, run) in fuzz_entries::TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "the corpus of {target} is empty");
        for file in &files {
            let data = std::fs::read(file).expect("read a corpus file");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} panics on {}", file.display());
        }
        eprintln!("{target}: {} inputs replayed", files.len());
    }
}
