//! Rebuilding a chain in place: each `INCREMENTAL.<file>` entry of a later set is applied to
//! the file the earlier sets left, and whatever a set does not list is removed, so the
//! directory ends as the newest set's server had it.
//!
//! Applying an entry cuts the file to the entry's truncation length, extends it (with zeros)
//! to cover the listed blocks, and writes those blocks: what `pg_combinebackup` computes when
//! it reads the chain newest-first, done oldest-first on one directory.

use super::{Header, BLCKSZ};
use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Applies one incremental entry (its contents in `data`) to the file at `path`, which an
/// earlier set of the chain must have left.
pub(crate) fn apply_entry(path: &Path, size: u64, data: &mut impl Read) -> Result<(), String> {
    let header = Header::read(data)?;
    let expected = header.len() as u64 + header.blocks.len() as u64 * BLCKSZ as u64;
    if size != expected {
        return Err(format!(
            "incremental entry for {} holds {size} bytes, its header describes {expected}",
            path.display()
        ));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| {
            format!(
                "{}: the earlier backups of the chain do not hold the file this incremental \
                 entry changes ({e})",
                path.display()
            )
        })?;
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let current = file.metadata().map_err(io)?.len();
    let truncation = u64::from(header.truncation_block_length) * BLCKSZ as u64;
    if current > truncation {
        file.set_len(truncation).map_err(io)?;
    }
    let rebuilt = u64::from(header.rebuilt_blocks()) * BLCKSZ as u64;
    if current.min(truncation) != rebuilt {
        file.set_len(rebuilt).map_err(io)?;
    }
    let mut block = vec![0u8; BLCKSZ];
    for b in &header.blocks {
        data.read_exact(&mut block)
            .map_err(|e| format!("{}: short incremental entry: {e}", path.display()))?;
        file.write_all_at(&block, u64::from(*b) * BLCKSZ as u64)
            .map_err(io)?;
    }
    Ok(())
}

/// Removes what an earlier set of the chain unpacked under `root` (`before`, relative paths)
/// and the set now applied no longer lists (`listed`): files dropped on the server since.
/// Nothing else under `root` is touched (a point-in-time restore writes its WAL there at the
/// same time), symlinks are removed, never followed, and a directory still holding a listed
/// path stays.
pub(crate) fn remove_stale(
    root: &Path,
    before: &HashSet<PathBuf>,
    listed: &HashSet<PathBuf>,
) -> Result<(), String> {
    let listed_dirs: HashSet<&Path> = listed.iter().flat_map(|p| p.ancestors().skip(1)).collect();
    let mut stale: Vec<&PathBuf> = before
        .iter()
        .filter(|p| !listed.contains(*p) && !listed_dirs.contains(p.as_path()))
        .collect();
    // Deepest first, so a directory is emptied of its stale entries before it goes.
    stale.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for rel in stale {
        let path = root.join(rel);
        let removed = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        removed.map_err(|e| format!("removing {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(fill: u8) -> Vec<u8> {
        vec![fill; BLCKSZ]
    }

    fn entry(blocks: &[(u32, u8)], truncation: u32) -> Vec<u8> {
        let header = Header {
            blocks: blocks.iter().map(|(b, _)| *b).collect(),
            truncation_block_length: truncation,
        };
        let mut out = header.encode();
        for (_, fill) in blocks {
            out.extend(block(*fill));
        }
        out
    }

    fn apply(path: &Path, e: &[u8]) -> Result<(), String> {
        apply_entry(path, e.len() as u64, &mut &e[..])
    }

    #[test]
    fn blocks_are_replaced_and_the_file_cut_and_extended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("16384");
        std::fs::write(&path, [block(1), block(2), block(3), block(4)].concat()).unwrap();

        // Cut to 2 blocks, block 1 replaced, block 4 added (block 3 becomes zeros).
        apply(&path, &entry(&[(1, 7), (4, 8)], 2)).unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(
            got,
            [block(1), block(7), block(0), block(0), block(8)].concat()
        );

        // Nothing changed, same length: untouched.
        apply(&path, &entry(&[], 5)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), got);

        // Grown with nothing logged: zero blocks at the end.
        apply(&path, &entry(&[], 6)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 6 * BLCKSZ);
    }

    #[test]
    fn an_entry_without_its_base_or_of_the_wrong_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = apply(&dir.path().join("nope"), &entry(&[(0, 1)], 1)).unwrap_err();
        assert!(missing.contains("do not hold"), "{missing}");

        let path = dir.path().join("f");
        std::fs::write(&path, block(1)).unwrap();
        let e = entry(&[(0, 1)], 1);
        let short = apply_entry(&path, e.len() as u64 - 1, &mut &e[..]).unwrap_err();
        assert!(short.contains("describes"), "{short}");
    }

    #[test]
    fn stale_entries_go_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), b"x").unwrap();
        let root = dir.path();
        for d in ["base/1", "base/2", "pg_tblspc", "polarbackup_wal"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "base/1/100",
            "base/1/101",
            "base/2/200",
            "PG_VERSION",
            "polarbackup_wal/x",
        ] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        std::os::unix::fs::symlink(outside.path(), root.join("pg_tblspc/16400")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("pg_tblspc/16401")).unwrap();
        let set = |paths: &[&str]| paths.iter().map(PathBuf::from).collect::<HashSet<_>>();
        let before = set(&[
            "base",
            "base/1",
            "base/1/100",
            "base/1/101",
            "base/2",
            "base/2/200",
            "PG_VERSION",
            "pg_tblspc",
            "pg_tblspc/16400",
            "pg_tblspc/16401",
        ]);
        let listed = set(&["base/1/100", "PG_VERSION", "pg_tblspc/16400", "pg_tblspc"]);
        remove_stale(root, &before, &listed).unwrap();
        assert!(root.join("base/1/100").exists());
        assert!(!root.join("base/1/101").exists());
        assert!(!root.join("base/2").exists());
        assert!(root.join("pg_tblspc/16400").exists());
        assert!(std::fs::symlink_metadata(root.join("pg_tblspc/16401")).is_err());
        assert!(outside.path().join("precious").exists());
        assert!(
            root.join("polarbackup_wal/x").exists(),
            "not the restore's: kept"
        );
    }
}
