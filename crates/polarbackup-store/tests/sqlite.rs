//! The store contract, run against the embedded SQLite backend.

mod common;

use common::{new_cluster, t};
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::{AccessKeyId, BackupJobId, DbClusterId, JobMode, JobStatus, TaskAction};
use polarbackup_store::{JobFilter, KeyKind, SqliteStore, Store, StoreError};
use std::os::unix::fs::PermissionsExt;

fn cluster(store: &SqliteStore) -> DbClusterId {
    let account = store.create_account(Some("a"), t(0)).expect("account");
    new_cluster(store, &account.id)
}

fn all(ended_since: Timestamp) -> JobFilter {
    JobFilter {
        job_id: None,
        mode: None,
        ended_since,
    }
}

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
fn keys_round_trip_and_toggle() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let account = store.create_account(None, t(0)).expect("account");
    let key = store.create_key(&account.id, t(1)).expect("key");
    assert!(
        !format!("{key:?}").contains(&key.secret),
        "Debug must redact"
    );
    let loaded = store.key(key.id.as_str()).expect("load").expect("exists");
    assert_eq!(loaded, key);
    store.set_key_active(&key.id, false).expect("disable");
    assert!(
        !store
            .key(key.id.as_str())
            .expect("load")
            .expect("exists")
            .active
    );
    assert!(store.key("LTAInope").expect("load").is_none());
    let missing = AccessKeyId::parse("LTAInope").expect("id");
    assert!(matches!(
        store.set_key_active(&missing, true),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.import_key(&key),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(key.kind, KeyKind::Hmac);

    // An RSA key keeps its public key where an HMAC key keeps its secret, and says so.
    let pem = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----";
    let rsa = store
        .create_rsa_key(&account.id, None, pem, t(2))
        .expect("rsa key");
    let loaded = store.key(rsa.id.as_str()).expect("load").expect("exists");
    assert_eq!((loaded.kind, loaded.secret.as_str()), (KeyKind::Rsa, pem));
    assert_ne!(rsa.id, key.id);
}

#[test]
fn job_ids_increase_across_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let (c, first) = {
        let store = SqliteStore::open(dir.path()).expect("open");
        let c = cluster(&store);
        let j = store
            .insert_job(&c, JobMode::Manual, TaskAction::NormalBackupTask, t(1))
            .expect("job");
        (c, j.id)
    };
    assert!(first.0 > 10_000_000);
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let second = store
        .insert_job(&c, JobMode::Automated, TaskAction::NormalBackupTask, t(2))
        .expect("job");
    assert!(second.id > first);
}

#[test]
fn listing_filters_orders_and_hides_history() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let c = cluster(&store);
    let other = cluster(&store);
    let mut old = store
        .insert_job(&c, JobMode::Manual, TaskAction::NormalBackupTask, t(10))
        .expect("job");
    let auto = store
        .insert_job(&c, JobMode::Automated, TaskAction::NormalBackupTask, t(20))
        .expect("job");
    let newest = store
        .insert_job(&c, JobMode::Manual, TaskAction::TempBackupTask, t(30))
        .expect("job");
    store
        .insert_job(&other, JobMode::Manual, TaskAction::NormalBackupTask, t(40))
        .expect("job");

    let ids = |f: &JobFilter| -> Vec<BackupJobId> {
        store
            .list_jobs(&c, f)
            .expect("list")
            .iter()
            .map(|j| j.id)
            .collect()
    };
    assert_eq!(ids(&all(t(0))), vec![newest.id, auto.id, old.id]);
    let manual = JobFilter {
        mode: Some(JobMode::Manual),
        ..all(t(0))
    };
    assert_eq!(ids(&manual), vec![newest.id, old.id]);
    let one = JobFilter {
        job_id: Some(auto.id),
        ..all(t(0))
    };
    assert_eq!(ids(&one), vec![auto.id]);
    let none = JobFilter {
        job_id: Some(BackupJobId(1)),
        ..all(t(0))
    };
    assert!(ids(&none).is_empty());

    old.fail("boom", t(50)).expect("fail");
    store.update_job(&old).expect("update");
    assert_eq!(
        ids(&all(t(50))).len(),
        3,
        "ended exactly at the edge is still shown"
    );
    assert_eq!(ids(&all(t(51))), vec![newest.id, auto.id]);
    let reloaded = &store.list_jobs(&c, &one_of(old.id)).expect("list")[0];
    assert_eq!(reloaded, &old);
}

fn one_of(id: BackupJobId) -> JobFilter {
    JobFilter {
        job_id: Some(id),
        ..all(t(0))
    }
}

#[test]
fn updates_never_move_a_job_backwards() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let c = cluster(&store);
    let mut job = store
        .insert_job(&c, JobMode::Manual, TaskAction::NormalBackupTask, t(1))
        .expect("job");
    let stale = job.clone();
    job.advance(JobStatus::Preparing, 3, t(2)).expect("prep");
    store.update_job(&job).expect("update");
    assert!(matches!(
        store.update_job(&stale),
        Err(StoreError::IllegalJobUpdate { .. })
    ));
    job.advance(JobStatus::Uploading, 40, t(3)).expect("upload");
    job.advance(JobStatus::Checking, 95, t(4)).expect("check");
    job.advance(JobStatus::Finished, 100, t(5)).expect("finish");
    store.update_job(&job).expect("update");
    let mut after = job.clone();
    after.failure_reason = Some("late".into());
    assert!(store.update_job(&after).is_err(), "an ended job is frozen");
    let listed = store.list_jobs(&c, &one_of(job.id)).expect("list");
    assert_eq!(listed, vec![job]);
}

#[test]
fn nonces_are_single_use_until_they_expire() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let exp = t(0) + SignedDuration::from_mins(30);
    assert!(store.use_nonce("k", "n1", exp, t(0)).expect("nonce"));
    assert!(!store.use_nonce("k", "n1", exp, t(1)).expect("nonce"));
    assert!(store.use_nonce("k2", "n1", exp, t(1)).expect("other key"));
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("reopen");
    assert!(!store.use_nonce("k", "n1", exp, t(2)).expect("persisted"));
    let later = exp + SignedDuration::from_secs(1);
    assert!(store
        .use_nonce("k", "n1", later + SignedDuration::from_mins(30), later)
        .expect("purged"));
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
fn concurrent_opens_and_writers_share_one_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().to_owned();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = SqliteStore::open(&path).expect("open");
                let c = cluster(&store);
                for i in 0..20 {
                    let mut job = store
                        .insert_job(&c, JobMode::Manual, TaskAction::NormalBackupTask, t(i))
                        .expect("insert");
                    job.advance(JobStatus::Preparing, 2, t(i)).expect("prep");
                    store.update_job(&job).expect("update");
                    let nonce = format!("{c}-{i}");
                    assert!(store.use_nonce("k", &nonce, t(1000), t(i)).expect("nonce"));
                }
                c
            })
        })
        .collect();
    let clusters: Vec<DbClusterId> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let store = SqliteStore::open(&path).expect("open");
    for c in clusters {
        assert_eq!(store.list_jobs(&c, &all(t(0))).expect("list").len(), 20);
    }
}
