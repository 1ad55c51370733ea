//! What only the local filesystem backend (`Repo::open_fs`) can show: a real full disk.
//! Everything every backend must do is in the contract suite (`tests/contract/`).

mod common;
#[path = "../src/faults.rs"]
mod faults;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use polarbackup_repo::{Repo, RepoError};

/// A real ENOSPC on a 1 MiB tmpfs (needs CAP_SYS_ADMIN; otherwise this test says why and passes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_an_error_and_abort_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = TmpfsMount::new(dir.path(), "1m") else {
        return;
    };
    let repo = Repo::open_fs(&mount.path, cfg(64 * 1024, 2)).unwrap();
    let data = random(3 * 1024 * 1024, 9); // incompressible, 3x the space
    let mut w = repo.begin("big", CREATED_AT).await.unwrap();
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
    let mut w = repo.begin("small", CREATED_AT).await.unwrap();
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

/// On disk the layout is the documented one, and the manifest's temporary name (renamed
/// into place) is gone after the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_is_renamed_into_place() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new");
    let repo = Repo::open_fs(&root, cfg(1024, 2)).unwrap();
    three_chunk_backup(&repo, "b1").await;
    let mut names: Vec<_> = std::fs::read_dir(root.join("backups/b1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["base.tar", "files", "manifest.json"]);
    assert!(root.join("backups/b1/base.tar/00000002.zst").is_file());
}

/// A local file system that stops answering (a hard NFS mount, a dying disk) fails the write
/// after `local_timeout`, so the backup ends instead of hanging; the writer then aborts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_local_file_system_fails_the_call_after_the_timeout() {
    use faults::{Call, Faults};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    // Far longer than the timeout: without it, the write would simply succeed late.
    faults.delay_from(Call::Write, 1, Duration::from_secs(30));
    let cfg = polarbackup_repo::RepoConfig {
        local_timeout: Duration::from_millis(300),
        ..cfg(1024, 2)
    };
    // As `Repo::open_fs` builds it, with the hung disk underneath the timeout.
    let root = dir.path().to_str().unwrap();
    let op = opendal::Operator::new(opendal::services::Fs::default().root(root))
        .unwrap()
        .layer(faults.layer());
    let repo = Repo::new(polarbackup_repo::local_layers(op, &cfg), cfg).unwrap();
    let mut w = repo.begin("hung", CREATED_AT).await.unwrap();
    let result = async {
        w.start_archive("base.tar", None).await?;
        w.write(&random(4096, 3)).await?;
        w.finish_archive().await
    }
    .await;
    let err = result.expect_err("a write that never ends must fail");
    assert!(err.to_string().contains("timeout reached"), "{err}");
    faults.heal();
    w.abort().await.unwrap();
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
}
