//! The binary's allocator (mimalloc) runs with the arena setting `.cargo/config.toml` compiles
//! in, which keeps `serve`'s peak memory during backups under the memory goal (BENCHMARKS.md).

use std::process::Command;

/// mimalloc lists its options on stderr when `MIMALLOC_VERBOSE` is set; the arenas must be
/// committed on demand (0), not whole at once (its default, 2 on Linux). A `CFLAGS` of the
/// caller's environment replaces the config's, and this fails then.
#[test]
fn arenas_are_committed_on_demand() {
    let out = Command::new(env!("CARGO_BIN_EXE_polarbackup"))
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .output()
        .expect("run polarbackup --version");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("option 'arena_eager_commit': 0"),
        "mimalloc's options:\n{stderr}"
    );
}
