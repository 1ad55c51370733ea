//! What only the SQLite backend promises beyond the contract: a private data directory and
//! file, a refused newer schema, and processes opening one fresh database together.

use polarbackup_store::prelude::*;
use polarbackup_store::{SqliteStore, StoreError};
use std::os::unix::fs::PermissionsExt;

#[test]
fn data_dir_and_file_are_private() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let store = SqliteStore::open(&data).expect("open");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(store.path()), 0o600);
    store.ping().expect("ping");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let path = store.path().to_owned();
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw");
    conn.pragma_update(None, "user_version", 999).expect("bump");
    drop(conn);
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::TooNew { found: 999, .. })
    ));
}

#[test]
fn processes_opening_a_fresh_directory_together_all_succeed() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("fresh");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                SqliteStore::open(&path)
                    .expect("open")
                    .ping()
                    .expect("ping")
            });
        }
    });
}

/// Sets recorded before their WAL range was kept (schema 7) load with none.
#[test]
fn sets_from_before_the_wal_columns_load_without_a_range() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let account = store
        .create_account(None, jiff::Timestamp::UNIX_EPOCH)
        .expect("account");
    let cluster = store
        .create_cluster(
            &polarbackup_model::NewCluster {
                account: account.id,
                region: "cn-hangzhou".into(),
                engine: "postgresql".into(),
                host: "127.0.0.1".into(),
                port: 5432,
                user: "postgres".into(),
                password: None,
                database: None,
                description: None,
                tls_mode: polarbackup_model::TlsMode::Prefer,
                tls_ca_file: None,
            },
            jiff::Timestamp::UNIX_EPOCH,
        )
        .expect("cluster");
    let mut job = store
        .insert_job(
            &cluster.id,
            polarbackup_model::JobMode::Manual,
            polarbackup_model::TaskAction::NormalBackupTask,
            jiff::Timestamp::UNIX_EPOCH,
        )
        .expect("job");
    let at = jiff::Timestamp::UNIX_EPOCH;
    job.fail("old", at).expect("fail");
    let set = polarbackup_model::BackupSet {
        id: job.id,
        cluster_id: cluster.id.clone(),
        mode: job.mode,
        status: polarbackup_model::BackupSetStatus::Success,
        start_time: at,
        end_time: at,
        consistent_time: Some(at),
        size: 1,
        stored_size: 1,
        comment: None,
        wal: Some(polarbackup_model::WalRange {
            timeline: 1,
            start: polarbackup_model::Lsn(1),
            end: polarbackup_model::Lsn(2),
        }),
    };
    store.end_job(&job, Some(&set)).expect("end");
    let conn = rusqlite::Connection::open(store.path()).expect("raw");
    conn.execute(
        "UPDATE backup_sets SET wal_timeline = NULL, wal_start = NULL, wal_end = NULL",
        [],
    )
    .expect("as schema 7 left it");
    let half = conn.execute("UPDATE backup_sets SET wal_end = 5", []);
    assert!(half.is_err(), "a range is all three columns or none");
    drop(conn);
    let loaded = store.backup_set(set.id).expect("load").expect("listed");
    assert_eq!(loaded.wal, None);
}
