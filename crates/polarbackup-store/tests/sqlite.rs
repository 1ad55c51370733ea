//! What only the SQLite backend promises beyond the contract: a private data directory and
//! file, a refused newer schema, processes opening one fresh database together, and old
//! databases loading.

#[path = "contract/common.rs"]
mod common;

use common::{created, finish, manual, new_cluster, t};
use jiff::SignedDuration;
use polarbackup_model::{BackupLogId, DbClusterId, Lsn, NewWalObject, WalGap, WalObjectKind};
use polarbackup_store::prelude::*;
use polarbackup_store::{SqliteStore, StoreError, WalFilter};
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

/// A database written at schema 9, with WAL objects' and gaps' times in whole seconds, opens
/// with them kept, its time filter still answering and its WAL ids still never reused.
#[test]
fn wal_objects_and_gaps_from_schema_9_keep_their_times() {
    let dir = tempfile::tempdir().expect("tmp");
    let conn = rusqlite::Connection::open(dir.path().join("metadata.sqlite")).expect("raw");
    conn.execute_batch(include_str!("fixtures/schema-9.sql"))
        .expect("the sample");
    drop(conn);
    let store = SqliteStore::open(dir.path()).expect("open");
    let cluster = DbClusterId::parse("pc-51c6j2cobh144ie").expect("id");
    let summary = |objects: Vec<polarbackup_model::WalObject>| {
        objects
            .into_iter()
            .map(|o| {
                (
                    o.id.0,
                    o.object.kind,
                    o.object.start_time,
                    o.object.end_time,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        summary(store.wal_objects(&cluster).expect("list")),
        vec![
            (1, WalObjectKind::Segment, t(5), t(20)),
            (4, WalObjectKind::Partial, t(21), t(25)),
            (3, WalObjectKind::History, t(21), t(21)),
        ]
    );
    let segment = store
        .wal_object(BackupLogId(1))
        .expect("get")
        .expect("kept");
    assert_eq!(
        (
            segment.object.name.as_str(),
            segment.object.start,
            segment.object.end
        ),
        (
            "000000010000000000000003",
            Lsn(0x0300_0000),
            Lsn(0x0400_0000)
        )
    );
    assert_eq!(
        store.gaps(&cluster).expect("gaps"),
        vec![WalGap {
            cluster_id: cluster.clone(),
            timeline: 1,
            from: Lsn(0x0100_0000),
            to: Lsn(0x0200_0000),
            detected_at: t(3),
            reason: "slot invalidated".into(),
        }]
    );
    let filter = WalFilter {
        from: t(21),
        to: t(21),
        page_size: 30,
        page_number: 1,
    };
    let page = store.wal_page(&cluster, &filter).expect("page");
    let listed: Vec<u64> = page.objects.iter().map(|o| o.id.0).collect();
    assert_eq!((listed, page.total), (vec![3, 4], 2));

    // The sample's archiver holds its lease until t(100); the whole segment replaces the
    // migrated partial.
    let precise = NewWalObject {
        timeline: 2,
        kind: WalObjectKind::Segment,
        name: "000000020000000000000004".into(),
        key: "wal/new.zst".into(),
        start: Lsn(0x0400_0000),
        end: Lsn(0x0500_0000),
        start_time: t(25) + SignedDuration::from_micros(7),
        end_time: t(30) + SignedDuration::from_micros(999_999),
        ..segment.object
    };
    let outcome = store
        .record_wal("w", &precise, t(50))
        .expect("record")
        .expect("the lease is held");
    assert_eq!(
        summary(outcome.replaced),
        vec![(4, WalObjectKind::Partial, t(21), t(25))]
    );
    let recorded = outcome.recorded.expect("recorded");
    assert!(recorded.id > BackupLogId(4), "ids go on: {:?}", recorded.id);
    assert_eq!(recorded.object, precise);
}

fn raw(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw")
}

fn count_nonces(path: &std::path::Path, table: &str) -> i64 {
    raw(path)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// Nonces are kept in a private file of their own: committing one leaves the metadata file, and
/// so the page caches of the connections reading keys, clusters and jobs from it, untouched.
#[test]
fn nonces_live_in_a_private_file_of_their_own() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let exp = t(900);
    // `data_version` moves when another connection commits to that file.
    let reader = raw(store.path());
    let version = |c: &rusqlite::Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .expect("data_version")
    };
    let before = version(&reader);
    assert!(store.use_nonce(&k, "n1", exp, t(0)).expect("nonce"));
    assert_eq!(
        version(&reader),
        before,
        "a nonce commit touched the metadata file"
    );
    assert_eq!(count_nonces(store.nonce_path(), "nonces"), 1);
    assert_eq!(count_nonces(store.path(), "legacy_nonces"), 0);
    assert_eq!(
        store.nonce_path(),
        dir.path().join("metadata.sqlite-nonces").as_path()
    );
    let mode = std::fs::metadata(store.nonce_path())
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

/// A nonce used before a restart is refused after it, and expired ones are purged from the
/// nonce file (not merely taken over when used again).
#[test]
fn nonces_survive_a_restart_and_expired_ones_are_purged() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    for i in 0..10 {
        assert!(store
            .use_nonce(&k, &format!("old-{i}"), t(10), t(0))
            .expect("nonce"));
    }
    assert!(store.use_nonce(&k, "kept", t(900), t(0)).expect("nonce"));
    let nonce_path = store.nonce_path().to_owned();
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("reopen");
    assert!(!store.use_nonce(&k, "kept", t(900), t(1)).expect("replay"));
    assert!(!store.use_nonce(&k, "old-3", t(10), t(2)).expect("replay"));
    assert_eq!(count_nonces(&nonce_path, "nonces"), 11);
    // The handle purged at its first use (none had expired), and does again a minute later.
    assert!(store.use_nonce(&k, "new", t(960), t(60)).expect("nonce"));
    assert_eq!(count_nonces(&nonce_path, "nonces"), 12);
    assert!(store.use_nonce(&k, "newer", t(961), t(61)).expect("nonce"));
    assert_eq!(count_nonces(&nonce_path, "nonces"), 3);
    assert!(!store.use_nonce(&k, "kept", t(900), t(62)).expect("replay"));
}

/// An older version kept nonces in the metadata file: after the upgrade they are in the nonce
/// file, still refused within their window, and gone from the metadata file.
#[test]
fn nonces_from_before_their_own_file_are_still_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let conn = raw(&dir.path().join("metadata.sqlite"));
    conn.execute_batch(include_str!("fixtures/schema-9.sql"))
        .expect("the sample");
    conn.execute(
        "INSERT INTO nonces (key_id, nonce, expires_at) VALUES ('k', 'before', ?1), ('k', 'stale', ?2)",
        [t(900).as_second(), t(5).as_second()],
    )
    .expect("nonces of the old version");
    drop(conn);
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    assert_eq!(count_nonces(store.path(), "legacy_nonces"), 0);
    assert_eq!(count_nonces(store.nonce_path(), "nonces"), 2);
    assert!(!store
        .use_nonce(&k, "before", t(900), t(10))
        .expect("replay"));
    assert!(store
        .use_nonce(&k, "stale", t(910), t(10))
        .expect("expired"));
    assert!(store.use_nonce(&k, "fresh", t(910), t(10)).expect("nonce"));
    drop(store);
    // A crash between the two commits left a row in both files: moved again, kept once.
    let store = SqliteStore::open(dir.path()).expect("open");
    raw(store.path())
        .execute(
            "INSERT INTO legacy_nonces (key_id, nonce, expires_at) VALUES ('k', 'fresh', ?1)",
            [t(910).as_second()],
        )
        .expect("left behind");
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("open");
    assert_eq!(count_nonces(store.path(), "legacy_nonces"), 0);
    assert!(!store.use_nonce(&k, "fresh", t(910), t(11)).expect("replay"));
    assert!(!store
        .use_nonce(&k, "before", t(900), t(11))
        .expect("replay"));
    assert_eq!(store.integrity_check().expect("check"), ["ok"]);
}

/// The integrity check covers the nonce file too.
#[test]
fn the_integrity_check_reads_the_nonce_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    assert!(store.use_nonce(&k, "n", t(900), t(0)).expect("nonce"));
    assert_eq!(store.integrity_check().expect("check"), ["ok"]);
    // An index whose entries no longer match its definition: what a torn file can look like.
    let conn = raw(store.nonce_path());
    conn.execute_batch(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = replace(sql, '(expires_at)', '(nonce)')
             WHERE name = 'nonces_by_expiry';
         PRAGMA writable_schema = OFF;",
    )
    .expect("corrupt the index definition");
    drop(conn);
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let found = store.integrity_check().expect("check");
    assert!(
        found != ["ok"] && found.iter().all(|r| r.starts_with("nonce file: ")),
        "{found:?}"
    );
}

/// The nonce file has a schema version of its own, and a newer one is refused.
#[test]
fn a_newer_nonce_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let path = store.nonce_path().to_owned();
    drop(store);
    raw(&path)
        .pragma_update(None, "user_version", 999)
        .expect("bump");
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::TooNew { found: 999, .. })
    ));
}
