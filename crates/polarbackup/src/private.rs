//! Keeping the server's files to their owner: the process umask, and tightening directories
//! made by an earlier version or by hand (the repository's chunks hold `pg_authid` password
//! hashes; the data directory, keys and metadata).

use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Makes every file and directory this process creates private (0600/0700), whatever the
/// umask it was started with. opendal's fs backend, SQLite's WAL files and tar unpacking
/// create files with the umask's modes and offer no mode of their own, so the mask is the one
/// place that covers them all. Call it first in `main`, before any thread starts.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Takes the group's and others' permissions off `root` and everything under it (symbolic
/// links are neither followed nor changed). A missing `root` is fine: it is made private.
pub fn tighten(root: &Path) -> Result<()> {
    let meta = match std::fs::metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    restrict(root, &meta)?;
    if !meta.is_dir() {
        return Ok(());
    }
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let path = entry.path();
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Removed meanwhile (another process's temporary file).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            if meta.file_type().is_symlink() {
                continue;
            }
            restrict(&path, &meta)?;
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    Ok(())
}

fn restrict(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let mode = meta.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.with_context(|| {
            format!(
                "making {} private (mode {:o} to {:o})",
                path.display(),
                mode & 0o7777,
                mode & 0o7700
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tighten_takes_group_and_other_bits_off_a_whole_tree_but_not_links() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("a/b")).expect("dirs");
        std::fs::write(root.join("a/b/chunk"), b"x").expect("file");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"y").expect("file");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("link");
        for (p, m) in [
            (root.clone(), 0o755),
            (root.join("a"), 0o775),
            (root.join("a/b"), 0o755),
            (root.join("a/b/chunk"), 0o644),
            (outside.clone(), 0o644),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).expect("chmod");
        }
        tighten(&root).expect("tighten");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("a")), 0o700);
        assert_eq!(mode(&root.join("a/b")), 0o700);
        assert_eq!(mode(&root.join("a/b/chunk")), 0o600);
        assert_eq!(
            mode(&outside),
            0o644,
            "a link's target is not ours to change"
        );
        tighten(&dir.path().join("missing")).expect("a missing root is fine");
    }
}
