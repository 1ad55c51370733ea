//! Repository encryption end to end (`--repository-key-file`): the real binary backs up a real
//! PostgreSQL into an encrypted repository, with base backup and archived WAL stored only as
//! ciphertext; `restore` with the key gives back the same data (from the set, and to a point
//! in time through the encrypted WAL), and without the key, or with another one, it refuses
//! with a clear message and writes nothing.

mod common;

use common::{bin, create_backup_v3, wait_for, wait_for_sets};
use polarbackup_model::{DbClusterId, Lsn};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::pg::{chown_to_postgres, restore_target, PgCluster};
use polarbackup_testkit::Server;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// In every row of the source; must not appear in any stored object.
const MARKER: &str = "MARKER-card-4111111111111111";

fn key_file(dir: &Path, name: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    let material: [u8; 32] = rand::random();
    let text: String = material.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// `polarbackup restore ARGS --target-dir TARGET` on the server's installation, with exactly
/// the environment given (no key unless `key` is set).
fn restore(server: &Server, key: Option<&Path>, args: &[&str], target: &Path) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("restore")
        .args(args)
        .arg("--target-dir")
        .arg(target)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .env_remove("POLARBACKUP_REPOSITORY_KEY_FILE");
    if let Some(key) = key {
        cmd.arg("--repository-key-file").arg(key);
    }
    cmd.output().unwrap()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn an_encrypted_repository_restores_only_with_its_key() {
    let pg = PgCluster::init();
    pg.psql(&format!(
        "CREATE TABLE cards AS SELECT g AS id, '{MARKER}-' || g AS card \
           FROM generate_series(1, 20000) g;\n\
         CHECKPOINT;"
    ));
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path(), "repo.key", 0o600);
    let other = key_file(keys.path(), "other.key", 0o600);
    let readable = key_file(keys.path(), "readable.key", 0o640);
    let key_arg = key.to_str().unwrap();

    let server = Server::builder(bin())
        .args(&["--log-backup", "on", "--wal-partial-secs", "1"])
        .env("POLARBACKUP_REPOSITORY_KEY_FILE", key_arg)
        .start();
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, pg.port, "postgres");
    let cluster = DbClusterId::parse(&t.cluster_id).unwrap();
    let store = SqliteStore::open(&server.data_dir).unwrap();
    create_backup_v3(&server, &t);
    let job = wait_for_sets("the encrypted backup", 120, &server, &store, &cluster)[0]
        .id
        .to_string();
    // Committed durably (the testkit's servers default to synchronous_commit = off), so the
    // flush position read next covers the commit, and the archive holding it holds the row.
    pg.psql("SET synchronous_commit = on; INSERT INTO cards VALUES (0, 'after the backup');");
    let flushed: Lsn = pg
        .psql("SELECT pg_current_wal_flush_lsn();")
        .parse()
        .unwrap();
    wait_for(
        "the archive to hold the insert",
        60,
        || server.log(),
        || {
            let wal = store.wal_objects(&cluster).unwrap();
            wal.iter().any(|w| w.object.end >= flushed).then_some(())
        },
    );

    // Nothing stored shows the data: chunks, side files, manifests and WAL are ciphertext.
    let stored = files_under(&server.data_dir.join("repo"));
    assert!(
        stored.iter().any(|p| p.ends_with("manifest.json")),
        "{stored:?}"
    );
    assert!(stored
        .iter()
        .any(|p| p.starts_with(server.data_dir.join("repo/wal"))));
    for path in &stored {
        // The archiver runs on: a partial listed above may have been replaced by a longer one
        // (and deleted) since, as any WAL the database writes (a standby snapshot, say) makes.
        let bytes = match std::fs::read(path) {
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && path.to_string_lossy().contains(".partial") =>
            {
                continue;
            }
            read => read.unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        };
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "{} holds plaintext",
            path.display()
        );
    }

    // With the key: the set and the latest point in time, as the source has them.
    let want = pg.table_digests("postgres");
    for args in [
        vec!["--backup-id", job.as_str()],
        vec!["--cluster", &t.cluster_id, "--recovery-time", "latest"],
    ] {
        let (scratch, target) = restore_target();
        let out = restore(&server, Some(&key), &args, &target);
        assert!(
            out.status.success(),
            "restore {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        chown_to_postgres(scratch.path(), true);
        let restored = PgCluster::start_on(&target);
        wait_for(
            "recovery to end",
            60,
            || restored.log(),
            || (restored.psql("SELECT pg_is_in_recovery();") == "f").then_some(()),
        );
        let rows = restored.psql("SELECT count(*) FROM cards;");
        if args[0] == "--backup-id" {
            assert_eq!(rows, "20000");
        } else {
            assert_eq!(rows, "20001");
            assert_eq!(restored.table_digests("postgres"), want);
        }
    }

    // Without the key, with another key, or with a key file others may read: refused, and
    // nothing is written.
    for (key, says) in [
        (None, "reading it needs the repository key"),
        (Some(other.as_path()), "corrupt object"),
        (Some(readable.as_path()), "chmod 600"),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let target = scratch.path().join("never");
        let out = restore(&server, key, &["--backup-id", &job], &target);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key:?}: {err}");
        assert!(err.contains(says), "{key:?}: {err}");
        assert!(!target.exists(), "{key:?}: nothing is written");
    }
}
