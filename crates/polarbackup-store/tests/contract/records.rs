//! Keys, job ids, job listing and updates, and nonces: the records every backend keeps.

use crate::common::{automated, finish, new_cluster, t, Backend};
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::{
    AccessKeyId, BackupJobId, DbClusterId, JobMode, JobStatus, KeyKind, TaskAction,
};
use polarbackup_store::{JobFilter, Store, StoreError};

fn cluster(store: &dyn Store) -> DbClusterId {
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

pub fn keys_round_trip_and_toggle(b: &dyn Backend) {
    let store = b.open();
    let account = store.create_account(None, t(0)).expect("account");
    let key = store.create_key(&account.id, t(1)).expect("key");
    assert!(
        !format!("{key:?}").contains(&key.secret),
        "Debug must redact"
    );
    let loaded = store.key(&key.id).expect("load").expect("exists");
    assert_eq!(loaded, key);
    store.set_key_active(&key.id, false).expect("disable");
    assert!(!store.key(&key.id).expect("load").expect("exists").active);
    let missing = AccessKeyId::parse("LTAInope").expect("id");
    assert!(store.key(&missing).expect("load").is_none());
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
    let loaded = store.key(&rsa.id).expect("load").expect("exists");
    assert_eq!((loaded.kind, loaded.secret.as_str()), (KeyKind::Rsa, pem));
    assert_ne!(rsa.id, key.id);
}

pub fn job_ids_increase_across_reopen(b: &dyn Backend) {
    let (c, first) = {
        let store = b.open();
        let c = cluster(&*store);
        let j = store
            .insert_job(&c, JobMode::Manual, TaskAction::NormalBackupTask, t(1))
            .expect("job");
        (c, j.id)
    };
    assert!(first.0 > 10_000_000);
    let store = b.open();
    let second = store
        .insert_job(&c, JobMode::Automated, TaskAction::NormalBackupTask, t(2))
        .expect("job");
    assert!(second.id > first);
}

pub fn listing_filters_orders_and_hides_history(b: &dyn Backend) {
    let store = b.open();
    let c = cluster(&*store);
    let other = cluster(&*store);
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
    store.update_job(&old, None).expect("update");
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

pub fn updates_never_move_a_job_backwards(b: &dyn Backend) {
    let store = b.open();
    let c = cluster(&*store);
    let mut job = store
        .insert_job(&c, JobMode::Manual, TaskAction::NormalBackupTask, t(1))
        .expect("job");
    let stale = job.clone();
    job.advance(JobStatus::Preparing, 3, t(2)).expect("prep");
    store.update_job(&job, None).expect("update");
    assert!(matches!(
        store.update_job(&stale, None),
        Err(StoreError::IllegalJobUpdate { .. })
    ));
    job.advance(JobStatus::Uploading, 40, t(3)).expect("upload");
    job.advance(JobStatus::Checking, 95, t(4)).expect("check");
    job.advance(JobStatus::Finished, 100, t(5)).expect("finish");
    store.update_job(&job, None).expect("update");
    let mut after = job.clone();
    after.failure_reason = Some("late".into());
    assert!(
        store.update_job(&after, None).is_err(),
        "an ended job is frozen"
    );
    let listed = store.list_jobs(&c, &one_of(job.id)).expect("list");
    assert_eq!(listed, vec![job]);
}

pub fn nonces_are_single_use_until_they_expire(b: &dyn Backend) {
    let store = b.open();
    let k = AccessKeyId::parse("k").expect("id");
    let k2 = AccessKeyId::parse("k2").expect("id");
    let exp = t(0) + SignedDuration::from_mins(30);
    assert!(store.use_nonce(&k, "n1", exp, t(0)).expect("nonce"));
    assert!(!store.use_nonce(&k, "n1", exp, t(1)).expect("nonce"));
    assert!(store.use_nonce(&k2, "n1", exp, t(1)).expect("other key"));
    drop(store);
    let store = b.open();
    assert!(!store.use_nonce(&k, "n1", exp, t(2)).expect("persisted"));
    let later = exp + SignedDuration::from_secs(1);
    assert!(store
        .use_nonce(&k, "n1", later + SignedDuration::from_mins(30), later)
        .expect("purged"));
    // Seconds after that call's purge, none is due: an expired nonce is taken over in place.
    let short = later + SignedDuration::from_secs(5);
    assert!(store.use_nonce(&k, "n2", short, later).expect("nonce"));
    assert!(!store
        .use_nonce(&k, "n2", short, short)
        .expect("not yet expired"));
    let after = short + SignedDuration::from_secs(1);
    assert!(store
        .use_nonce(&k, "n2", after + SignedDuration::from_mins(30), after)
        .expect("expired: used again"));
    assert!(!store
        .use_nonce(&k, "n2", after + SignedDuration::from_mins(30), after)
        .expect("and refused again"));
}

/// Four handles on one database (as four processes would have) write at once; nothing is lost.
pub fn concurrent_writers_share_one_database(b: &dyn Backend) {
    let k = AccessKeyId::parse("k").expect("id");
    let clusters: Vec<DbClusterId> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let k = &k;
                s.spawn(move || {
                    let store = b.open();
                    let c = cluster(&*store);
                    for i in 0..20 {
                        let mut job = store
                            .insert_job(&c, JobMode::Manual, TaskAction::NormalBackupTask, t(i))
                            .expect("insert");
                        job.advance(JobStatus::Preparing, 2, t(i)).expect("prep");
                        store.update_job(&job, None).expect("update");
                        let nonce = format!("{c}-{i}");
                        assert!(store.use_nonce(k, &nonce, t(1000), t(i)).expect("nonce"));
                    }
                    c
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let store = b.open();
    for c in clusters {
        assert_eq!(store.list_jobs(&c, &all(t(0))).expect("list").len(), 20);
    }
}

pub fn job_counts_cover_every_cluster_and_status_in_one_read(b: &dyn Backend) {
    let store = b.open();
    assert!(store.job_counts().expect("counts").is_empty());
    let c = cluster(&*store);
    let other = cluster(&*store);
    let job = |cl: &DbClusterId, at: i64| {
        store
            .insert_job(cl, JobMode::Manual, TaskAction::NormalBackupTask, t(at))
            .expect("job")
    };
    let mut failed = job(&c, 10);
    failed.fail("boom", t(11)).expect("fail");
    store.update_job(&failed, None).expect("update");
    job(&c, 20);
    job(&c, 30);
    job(&other, 40);
    let mut want = vec![
        (c.clone(), JobStatus::NoStart, 2),
        (c.clone(), JobStatus::Failed, 1),
        (other.clone(), JobStatus::NoStart, 1),
    ];
    want.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
    let mut got = store.job_counts().expect("counts");
    got.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
    assert_eq!(got, want);
}

/// What every call reads (its key, user, policies and cluster) shows a change committed by any
/// handle at once, however often it was read before (a backend may keep it in memory only
/// while nothing changed).
pub fn caller_records_show_every_change_at_once(b: &dyn Backend) {
    use polarbackup_store::{PolicyKind, StoredPolicy};
    let reader = b.open();
    let writer = b.open();
    let account = writer.create_account(None, t(0)).expect("account");
    let c = new_cluster(&*writer, &account.id);
    let user = writer.create_user(&account.id, "u", t(0)).expect("user");
    let key = writer.create_user_key(&user, t(0)).expect("key");
    writer
        .create_policy(&StoredPolicy {
            account: account.id.clone(),
            name: "p".into(),
            document: r#"{"Version":"1","Statement":[]}"#.into(),
            created_at: t(0),
        })
        .expect("policy");
    let read = || {
        reader
            .caller_records(&key.id, Some(&c))
            .expect("read")
            .expect("stored")
    };
    for _ in 0..3 {
        assert!(read().key.active && read().attachments.is_empty());
    }
    writer
        .attach_policy(&user, PolicyKind::Custom, "p")
        .expect("attach");
    assert_eq!(read().attachments.len(), 1);
    writer.set_key_active(&key.id, false).expect("disable");
    assert!(!read().key.active);
    // Through the reading handle itself too.
    reader.set_key_active(&key.id, true).expect("enable");
    assert!(read().key.active);
    reader
        .detach_policy(&user, PolicyKind::Custom, "p")
        .expect("detach");
    assert!(read().attachments.is_empty());
    let before = read().cluster.expect("cluster").status;
    writer
        .begin_cluster_deletion(
            &c,
            Some(polarbackup_model::policy::RetentionOnClusterDeletion::All),
            t(5),
        )
        .expect("delete")
        .expect("deleted");
    assert_ne!(read().cluster.expect("cluster").status, before);
}

/// The job listing shows a job created, moved or ended through any handle at once, and a
/// later `ended_since` hides what ended before it, however often the cluster was listed.
pub fn job_listing_shows_every_change_at_once(b: &dyn Backend) {
    let reader = b.open();
    let writer = b.open();
    let c = cluster(&*writer);
    let list = |since: i64| reader.list_jobs(&c, &all(t(since))).expect("list");
    assert!(list(0).is_empty());
    let first = automated(&*writer, &c, 10);
    for _ in 0..3 {
        assert_eq!(list(0).len(), 1);
    }
    let mut moved = first.clone();
    moved
        .advance(JobStatus::Preparing, 1, t(11))
        .expect("prepare");
    writer.update_job(&moved, None).expect("update");
    assert_eq!(list(0)[0].status, JobStatus::Preparing);
    finish(&*writer, moved, 20);
    assert_eq!(list(0)[0].status, JobStatus::Finished);
    assert_eq!(list(20).len(), 1, "ended at 20: still listed from 20");
    assert!(list(21).is_empty(), "ended at 20: history from 21");
    assert_eq!(list(0).len(), 1, "an earlier floor reads again");
    let second = automated(&*reader, &c, 30);
    let ids: Vec<_> = list(21).iter().map(|j| j.id).collect();
    assert_eq!(ids, [second.id]);
}

/// A call lists jobs with the mark its caller records were read at: every change made before
/// those records were read shows, and a mark of another handle is no shortcut.
pub fn a_listing_read_with_a_mark_shows_what_came_before_it(b: &dyn Backend) {
    let reader = b.open();
    let other = b.open();
    let writer = b.open();
    let account = writer.create_account(None, t(0)).expect("account");
    let c = new_cluster(&*writer, &account.id);
    let key = writer.create_key(&account.id, t(0)).expect("key");
    let mark = |s: &dyn Store| {
        s.caller_records(&key.id, Some(&c))
            .expect("read")
            .expect("stored")
            .mark
    };
    automated(&*writer, &c, 10);
    // Both handles' first reads, after the same changes.
    let m = mark(&*reader);
    let foreign = mark(&*other);
    let list = |m| {
        reader
            .list_jobs_read_with(&c, &all(t(0)), m)
            .expect("list")
            .len()
    };
    assert_eq!(list(m), 1);
    automated(&*writer, &c, 20);
    assert_eq!(list(foreign), 2, "another handle's mark skipped the check");
    automated(&*writer, &c, 30);
    let m = mark(&*reader);
    assert_eq!(list(m), 3);
}
