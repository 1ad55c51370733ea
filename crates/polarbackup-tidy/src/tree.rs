//! Applies every rule to the workspace's files.

use crate::{crate_of, formats, hygiene, layering, manifest, Violation};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Directories never read: build output and local environments or data (all git-ignored).
const SKIP_DIRS: &[&str] = &["target", "polarbackup-data", "__pycache__", "node_modules"];

/// Recorded data rather than code or documents: captured requests, benchmark results, fuzz
/// corpora and findings.
const SKIP_PATHS: &[&str] = &[
    "tests/fixtures",
    "bench/results",
    "fuzz/corpus",
    "fuzz/artifacts",
];

/// Hidden files and directories (git's, editors') are skipped, except CI's.
const HIDDEN_KEPT: &[&str] = &[".ci"];

pub const ARCHITECTURE: &str = "ARCHITECTURE.md";
pub const MIGRATIONS: &str = "crates/polarbackup-store/src/migrations.rs";

/// The workspace root: two levels above this crate.
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    root.canonicalize().unwrap_or(root)
}

/// Every file the rules read, relative to `root` with `/`, sorted.
pub fn files(root: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(dir) = stack.pop() {
        let abs = root.join(&dir);
        let entries = fs::read_dir(&abs).map_err(|e| format!("{}: {e}", abs.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", abs.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let kind = entry.file_type().map_err(|e| format!("{rel}: {e}"))?;
            if name.starts_with('.') && !HIDDEN_KEPT.contains(&name.as_str()) {
                continue;
            }
            if kind.is_dir() {
                if !SKIP_DIRS.contains(&name.as_str()) && !SKIP_PATHS.contains(&rel.as_str()) {
                    stack.push(rel);
                }
            } else if kind.is_file() {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read(root: &Path, rel: &str) -> Result<String, String> {
    fs::read_to_string(root.join(rel)).map_err(|e| format!("{rel}: {e}"))
}

/// `crates/<dir>/Cargo.toml` → `<dir>`.
fn crate_manifest(path: &str) -> Option<&str> {
    let dir = crate_of(path)?;
    (path == format!("crates/{dir}/Cargo.toml")).then_some(dir)
}

/// Every violation in the workspace at `root`. `Err` when the inputs the rules need (the crate
/// table, the store's migrations, the tree) cannot be read.
pub fn check(root: &Path) -> Result<Vec<Violation>, String> {
    let architecture = read(root, ARCHITECTURE)?;
    let table = layering::crate_table(&architecture)?;
    let tables = formats::metadata_tables(&read(root, MIGRATIONS)?);
    if tables.is_empty() {
        return Err(format!("{MIGRATIONS} creates no table"));
    }
    let mut out = Vec::new();
    let mut crates = BTreeSet::new();
    for path in files(root)? {
        let Ok(text) = fs::read_to_string(root.join(&path)) else {
            continue; // not UTF-8: no code, script or document
        };
        out.extend(hygiene::outside_repo(&path, &text));
        if path.ends_with(".rs") {
            out.extend(hygiene::module_doc(&path, &text));
            out.extend(hygiene::unfinished(&path, &text));
            out.extend(hygiene::wall_clock(&path, &text));
            out.extend(formats::code(&path, &text));
            out.extend(formats::metadata_sql(&path, &text, &tables));
        }
        if let Some(dir) = crate_manifest(&path) {
            let name = manifest::package_name(&text).unwrap_or_default();
            if name != dir {
                out.push(Violation::new(
                    "layering",
                    &path,
                    &text,
                    1,
                    format!(
                        "the crate in crates/{dir} is named {name:?}: name its directory like it"
                    ),
                ));
            }
            crates.insert(name);
            out.extend(layering::check(&path, &text, &table));
            out.extend(formats::dependencies(&path, &text));
        }
    }
    for (name, row) in &table {
        if !crates.contains(name) {
            out.push(Violation::new(
                "layering",
                ARCHITECTURE,
                &architecture,
                row.line,
                format!("the crate table has a row for {name}, which is not a crate in crates/"),
            ));
        }
    }
    Ok(out)
}
