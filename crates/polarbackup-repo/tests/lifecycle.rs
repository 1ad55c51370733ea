//! Abort, delete (manifest first, idempotent), listing for cleanup, and a real full disk.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use polarbackup_repo::{Repo, RepoError};

#[tokio::test]
async fn abort_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(dir.path(), cfg(1024, 2)).unwrap();
    let mut w = repo.begin("b1").await.unwrap();
    write_archive(&mut w, "base.tar", None, &random(10_000, 1)).await;
    w.start_archive("pg_wal.tar", None).await.unwrap();
    w.write(&random(5000, 2)).await.unwrap(); // chunks still in flight
    w.put_file("backup_manifest", b"{}").await.unwrap();
    assert!(w.stored_bytes() > 0);
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["b1"]);
    w.abort().await.unwrap();

    assert!(!dir.path().join("backups/b1").exists());
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
    assert_eq!(repo.manifest("b1").await.unwrap(), None);
    // The id is free again.
    three_chunk_backup(&repo, "b1").await;
}

#[tokio::test]
async fn delete_removes_the_manifest_first_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(dir.path(), cfg(1024, 2)).unwrap();
    three_chunk_backup(&repo, "b1").await;
    three_chunk_backup(&repo, "b2").await;
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["b1", "b2"]);

    // A crash right after delete's first step: the set is unusable but still listed.
    std::fs::remove_file(object_file(dir.path(), "b1", "manifest.json")).unwrap();
    assert_eq!(repo.manifest("b1").await.unwrap(), None);
    assert!(matches!(
        repo.verify("b1", &mut |_, _| {}).await,
        Err(RepoError::NotFound(_))
    ));
    assert!(matches!(
        repo.open_archive("b1", "base.tar").await,
        Err(RepoError::NotFound(_))
    ));
    assert!(object_file(dir.path(), "b1", "base.tar/00000000.zst").exists());
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["b1", "b2"]);
    assert!(matches!(repo.begin("b1").await, Err(RepoError::Exists(_))));

    // Cleanup finishes the job; repeating it (or deleting an unknown id) is fine.
    repo.delete("b1").await.unwrap();
    repo.delete("b1").await.unwrap();
    repo.delete("never-existed").await.unwrap();
    assert!(!dir.path().join("backups/b1").exists());
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["b2"]);
    repo.verify("b2", &mut |_, _| {}).await.unwrap();
    repo.delete("b2").await.unwrap();
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
}

#[tokio::test]
async fn listing_an_empty_or_foreign_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(&dir.path().join("new"), cfg(1024, 2)).unwrap();
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
    std::fs::create_dir_all(dir.path().join("new/backups/.hidden")).unwrap();
    std::fs::write(dir.path().join("new/backups/stray-file"), b"x").unwrap();
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
}

/// A real ENOSPC on a 1 MiB tmpfs (needs CAP_SYS_ADMIN; otherwise this test says why and passes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_an_error_and_abort_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = TmpfsMount::new(dir.path(), "1m") else {
        return;
    };
    let repo = Repo::open_fs(&mount.path, cfg(64 * 1024, 2)).unwrap();
    let data = random(3 * 1024 * 1024, 9); // incompressible, 3x the space
    let mut w = repo.begin("big").await.unwrap();
    let result = async {
        w.start_archive("base.tar", None).await?;
        for piece in data.chunks(100_000) {
            w.write(piece).await?;
        }
        w.finish_archive().await
    }
    .await;
    let err = result.expect_err("3 MiB cannot fit on a 1 MiB disk");
    assert!(matches!(err, RepoError::Storage { .. }), "{err}");
    assert!(err.to_string().contains("No space left"), "{err}");
    // The writer refuses to go on as if nothing happened.
    assert!(matches!(
        w.finish_archive().await,
        Err(RepoError::InvalidState(_))
    ));
    w.abort().await.unwrap();
    assert!(!mount.path.join("backups/big").exists());
    assert!(repo.list_backup_ids().await.unwrap().is_empty());

    // A manifest that does not fit fails the commit, which then removes the backup.
    let filler = mount.path.join("filler");
    let mut w = repo.begin("small").await.unwrap();
    write_archive(&mut w, "base.tar", None, &random(1000, 3)).await;
    fill(&filler);
    let meta = serde_json::json!({ "padding": "x".repeat(64 * 1024) });
    let err = w.commit(meta).await.unwrap_err();
    assert!(matches!(err, RepoError::Storage { .. }), "{err}");
    assert_eq!(repo.manifest("small").await.unwrap(), None);
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
}

/// Fills the filesystem holding `path` until a write fails.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).and_then(|_| f.sync_all()).is_ok() {}
}

struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    fn new(dir: &Path, size: &str) -> Option<TmpfsMount> {
        let path = dir.join("tmpfs");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(TmpfsMount { path }),
            Ok(out) => {
                eprintln!(
                    "skipping the full-disk test: cannot mount a tmpfs ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping the full-disk test: cannot run mount ({e})");
                None
            }
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
