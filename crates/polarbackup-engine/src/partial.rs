//! A restore in progress is never startable, and a failed one leaves nothing behind: the
//! directories it made (or filled, when they were empty) are removed on failure, and
//! `global/pg_control`, without which PostgreSQL refuses to start, is held back until every
//! object was read and checked.

use crate::EngineError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The file PostgreSQL cannot start without; written last.
pub(crate) const PG_CONTROL: &str = "global/pg_control";

/// Where a restore wrote: what to remove if it fails.
#[derive(Debug, Clone, Default)]
pub(crate) struct Written {
    roots: Vec<Root>,
}

#[derive(Debug, Clone)]
enum Root {
    /// The topmost directory this restore created: it and everything under it are ours.
    Created(PathBuf),
    /// A directory that existed and was empty: everything in it is ours, it stays.
    Filled(PathBuf),
}

impl Written {
    /// Creates `dir` (and missing parents) with `create`, recording what is new. `dir` must
    /// be absent or empty (checked before).
    pub(crate) fn create(
        &mut self,
        dir: &Path,
        create: impl FnOnce(&Path) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let missing = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists());
        let root = match missing.last() {
            Some(top) => Root::Created(top.to_path_buf()),
            None => Root::Filled(dir.to_path_buf()),
        };
        // Recorded first: a creation that fails halfway is removed too.
        self.roots.push(root);
        create(dir)
    }

    /// Turns the failure `e` of a restore into its error, having removed what the restore
    /// wrote, or kept it when `keep_partial` (it has no `global/pg_control` then).
    pub(crate) fn fail(&self, e: EngineError, keep_partial: bool) -> EngineError {
        let outcome = if keep_partial {
            format!(
                "the incomplete restore is kept for inspection in {} (it has no {PG_CONTROL}, \
                 so PostgreSQL will not start on it)",
                self.places()
            )
        } else {
            match self.remove() {
                Ok(()) => format!("the incomplete restore was removed from {}", self.places()),
                Err(err) => format!(
                    "removing the incomplete restore failed ({err}): remove what is left in {} \
                     before restoring again; it has no {PG_CONTROL}, so PostgreSQL will not \
                     start on it",
                    self.places()
                ),
            }
        };
        let why = match e {
            // The caller clears the directory and plans again.
            e @ EngineError::WalReplaced(_) => return e,
            EngineError::Restore(why) => why,
            e => e.to_string(),
        };
        EngineError::Restore(format!("{why}; {outcome}"))
    }

    fn places(&self) -> String {
        let paths: Vec<String> = self
            .roots
            .iter()
            .map(|r| match r {
                Root::Created(p) | Root::Filled(p) => p.display().to_string(),
            })
            .collect();
        paths.join(", ")
    }

    fn remove(&self) -> std::io::Result<()> {
        for root in &self.roots {
            match root {
                Root::Created(dir) => remove_tree(dir)?,
                Root::Filled(dir) => {
                    let entries = match std::fs::read_dir(dir) {
                        Ok(entries) => entries,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    for entry in entries {
                        remove_tree(&entry?.path())?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Removes a file, a symlink (never what it points to) or a directory tree; absent is fine.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => {
            other.map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        }
    }
}

/// A restored data directory whose every object was read and checked, but which PostgreSQL
/// cannot start on until [`Startable::commit`] writes its `global/pg_control`.
pub(crate) struct Startable {
    pub(crate) data_dir: PathBuf,
    pub(crate) pg_control: Vec<u8>,
}

impl Startable {
    /// Writes `global/pg_control` whole under another name, then renames it into place, and
    /// syncs both: the directory becomes startable at once, and only once this returns.
    pub(crate) fn commit(self) -> Result<(), EngineError> {
        let global = self.data_dir.join("global");
        let pending = global.join("pg_control.polarbackup-pending");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pending)?;
        file.write_all(&self.pg_control)?;
        file.sync_all()?;
        std::fs::rename(&pending, self.data_dir.join(PG_CONTROL))?;
        std::fs::File::open(&global)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_what_it_made_or_filled() {
        let scratch = tempfile::tempdir().unwrap();
        let mut written = Written::default();
        // A target whose parent is new too: the parent goes.
        let made = scratch.path().join("new/data");
        written
            .create(&made, |d| Ok(std::fs::create_dir_all(d)?))
            .unwrap();
        std::fs::write(made.join("f"), "x").unwrap();
        // An empty directory that existed: emptied, kept.
        let empty = scratch.path().join("ts");
        std::fs::create_dir(&empty).unwrap();
        written
            .create(&empty, |d| Ok(std::fs::create_dir_all(d)?))
            .unwrap();
        std::fs::create_dir(empty.join("sub")).unwrap();
        // A symlink in it to something else: the link goes, not its target.
        let outside = scratch.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "y").unwrap();
        std::os::unix::fs::symlink(&outside, empty.join("link")).unwrap();

        let err = written
            .fail(EngineError::Restore("broken".into()), false)
            .to_string();
        assert!(err.contains("broken") && err.contains("removed"), "{err}");
        assert!(!scratch.path().join("new").exists());
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
        assert!(outside.join("keep").exists());
    }

    #[test]
    fn keeps_the_partial_directory_when_asked() {
        let scratch = tempfile::tempdir().unwrap();
        let mut written = Written::default();
        let made = scratch.path().join("data");
        written
            .create(&made, |d| Ok(std::fs::create_dir_all(d)?))
            .unwrap();
        let err = written
            .fail(EngineError::Restore("broken".into()), true)
            .to_string();
        assert!(err.contains("kept") && err.contains(PG_CONTROL), "{err}");
        assert!(made.exists());
    }
}
