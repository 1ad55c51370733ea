//! The house rules as a test: reads the workspace and fails once, listing every violation with
//! its rule, file:line and the offending line (the rules are in `polarbackup_tidy`).
//!
//! Decisions:
//! - Dev-dependencies are held to the same rules as normal ones. For layering, a crate's tests
//!   belong to its layer: a test that needs a higher crate is an integration test of that
//!   higher crate. For formats, a test that opens the SQLite file or speaks HTTP by itself pins
//!   the format outside its owner exactly as code would, so it goes through the owner instead.
//! - The testkit gets no exception: it drives the system from outside (the binary, the SDKs,
//!   `psql`, `initdb`), which needs none of the format crates, and it may only ever be a
//!   dev-dependency. Should a test helper need a format one day, the owner table in
//!   `formats::OWNERS` is the one place to say so.

use polarbackup_tidy::{formats, layering, tree};

#[test]
fn the_tree_keeps_the_house_rules() {
    let root = tree::workspace_root();
    let violations =
        tree::check(&root).unwrap_or_else(|e| panic!("tidy cannot read the tree: {e}"));
    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        list.is_empty(),
        "{} house rule violation(s):\n{}",
        list.len(),
        list.join("\n")
    );
}

/// The walk reads the code, scripts and documents, and skips build output and recorded data,
/// so a passing tree test means the rules saw the tree.
#[test]
fn the_walk_sees_the_tree() {
    let files = tree::files(&tree::workspace_root()).unwrap();
    for expected in [
        "ARCHITECTURE.md",
        ".ci/run",
        "scripts/test.sh",
        "tests/sdk/driver.py",
        "crates/polarbackup-api/Cargo.toml",
        "crates/polarbackup-model/src/clock.rs",
        "crates/polarbackup-tidy/tests/tidy.rs",
    ] {
        assert!(files.iter().any(|f| f == expected), "{expected} not read");
    }
    assert!(files.iter().filter(|f| f.ends_with(".rs")).count() > 100);
    for skipped in ["target/", "tests/fixtures/", "bench/results/", ".git/"] {
        assert!(
            !files.iter().any(|f| f.starts_with(skipped)),
            "{skipped} read"
        );
    }
}

/// The rules' inputs come from the tree: the crate table from ARCHITECTURE.md, the metadata
/// tables from the store's migrations.
#[test]
fn the_inputs_come_from_the_documents_and_the_schema() {
    let root = tree::workspace_root();
    let doc = std::fs::read_to_string(root.join(tree::ARCHITECTURE)).unwrap();
    let table = layering::crate_table(&doc).unwrap();
    assert_eq!(
        table["polarbackup-store"].allowed,
        layering::allowed("model, tls")
    );
    assert_eq!(table["polarbackup"].allowed, layering::Allowed::All);
    let schema = std::fs::read_to_string(root.join(tree::MIGRATIONS)).unwrap();
    let tables = formats::metadata_tables(&schema);
    for t in [
        "accounts",
        "clusters",
        "backup_jobs",
        "nonces",
        "backup_sets",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} not in {tables:?}");
    }
}

/// The api's real manifest with `rusqlite` added fails the format rule.
#[test]
fn rusqlite_in_the_api_manifest_fires() {
    let path = "crates/polarbackup-api/Cargo.toml";
    let real = std::fs::read_to_string(tree::workspace_root().join(path)).unwrap();
    assert!(formats::dependencies(path, &real).is_empty());
    let with = real.replacen(
        "[dependencies]\n",
        "[dependencies]\nrusqlite.workspace = true\n",
        1,
    );
    let v = formats::dependencies(path, &with);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].line_text, "rusqlite.workspace = true");
    assert!(v[0]
        .to_string()
        .starts_with("[format-owner] crates/polarbackup-api/Cargo.toml:"));
}
