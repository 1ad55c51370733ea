//! What only the SQLite backend promises beyond the contract: a private data directory and
//! file, a refused newer schema, and processes opening one fresh database together.

#[path = "contract/common.rs"]
mod common;

use common::{created, finish, manual, new_cluster, t};
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
    let account = store.create_account(None, t(0)).expect("account").id;
    let cluster = new_cluster(&store, &account);
    let job = created(
        store
            .create_manual_job(&manual(&account, &cluster, None, "a"), t(1), 3)
            .expect("create"),
    );
    let set = finish(&store, job, 10);
    assert!(set.wal.is_some());
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
