//! Object paths inside the repository, and the name rules that keep them unambiguous.
//!
//! ```text
//! backups/<backup_id>/manifest.json
//! backups/<backup_id>/<archive>/<seq:08>.zst
//! backups/<backup_id>/files/<name>
//! ```

use crate::RepoError;

pub(crate) const BACKUPS_DIR: &str = "backups/";
pub(crate) const MANIFEST_NAME: &str = "manifest.json";
/// Starts with a dot, which no archive or file name may, so it cannot collide with one.
const MANIFEST_TMP_NAME: &str = ".manifest.json.tmp";
const FILES_DIR: &str = "files";
const MAX_NAME_LEN: usize = 128;

/// Checks that `name` is a single, portable path component (also valid as an S3/OSS key part).
pub(crate) fn check_name(kind: &'static str, name: &str) -> Result<(), RepoError> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("is longer than 128 bytes")
    } else if name.starts_with('.') {
        Some("starts with '.'")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("may only contain ASCII letters, digits, '.', '_' and '-'")
    } else if kind == "archive" && (name == FILES_DIR || name == MANIFEST_NAME) {
        Some("is reserved by the repository layout")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(RepoError::InvalidName {
            kind,
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// `backups/<id>/`: the prefix holding every object of one backup.
pub(crate) fn backup_dir(backup_id: &str) -> String {
    format!("{BACKUPS_DIR}{backup_id}/")
}

pub(crate) fn manifest_path(backup_id: &str) -> String {
    format!("{BACKUPS_DIR}{backup_id}/{MANIFEST_NAME}")
}

pub(crate) fn manifest_tmp_path(backup_id: &str) -> String {
    format!("{BACKUPS_DIR}{backup_id}/{MANIFEST_TMP_NAME}")
}

/// A chunk's object name relative to the backup directory, as recorded in the manifest.
pub(crate) fn chunk_object(archive: &str, seq: usize) -> String {
    format!("{archive}/{seq:08}.zst")
}

/// A side file's object name relative to the backup directory, as recorded in the manifest.
pub(crate) fn file_object(name: &str) -> String {
    format!("{FILES_DIR}/{name}")
}

/// The full path of an object recorded (relative) in a manifest.
pub(crate) fn object_path(backup_id: &str, object: &str) -> String {
    format!("{BACKUPS_DIR}{backup_id}/{object}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "base.tar",
            "16384.tar",
            "pg_wal.tar",
            "backup_manifest",
            "b-1",
        ] {
            check_name("archive", ok).unwrap();
        }
        for bad in ["", ".x", "a/b", "..", "files", "manifest.json", "ä", "a b"] {
            assert!(check_name("archive", bad).is_err(), "{bad:?}");
        }
        check_name("file", "files").unwrap();
        assert!(check_name("file", &"x".repeat(129)).is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(chunk_object("base.tar", 3), "base.tar/00000003.zst");
        assert_eq!(
            object_path("b1", &file_object("backup_manifest")),
            "backups/b1/files/backup_manifest"
        );
        assert_eq!(manifest_path("b1"), "backups/b1/manifest.json");
    }
}
