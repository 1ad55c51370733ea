//! A job's lease fences every write on it: its worker writes only while it holds the lease, and
//! crash recovery takes a job over (and so fences its old worker) in one transaction.

use crate::common::{fail, finished_set, manual, setup, t, Backend};
use crate::concurrency::race;
use polarbackup_model::{BackupJob, BackupSetStatus, JobStatus};
use polarbackup_store::{JobFilter, Store, StoreError};

fn stored(store: &dyn Store, job: &BackupJob) -> BackupJob {
    let f = JobFilter {
        job_id: Some(job.id),
        mode: None,
        ended_since: jiff::Timestamp::MIN,
    };
    store
        .list_jobs(&job.cluster_id, &f)
        .expect("list")
        .remove(0)
}

fn lease_lost(r: polarbackup_store::Result<()>) -> bool {
    matches!(r, Err(StoreError::LeaseLost { .. }))
}

/// A job claimed by `worker` at t(100) with a lease to t(130), advanced to Uploading.
fn running(store: &dyn Store, worker: &str) -> BackupJob {
    let mut job = store
        .claim_job(worker, t(130), t(100))
        .expect("claim")
        .expect("a queued job");
    job.advance(JobStatus::Preparing, 2, t(101)).expect("prep");
    job.advance(JobStatus::Uploading, 40, t(102))
        .expect("upload");
    store.update_job(&job, Some(worker)).expect("update");
    job
}

pub fn only_the_lease_holder_writes_a_job(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let req = manual(&account, &cluster, None, "a");
    store.create_manual_job(&req, t(1), 3).expect("create");
    let job = running(&*store, "w1");
    let mut next = job.clone();
    next.advance(JobStatus::Checking, 95, t(103))
        .expect("check");
    assert!(lease_lost(store.update_job(&next, Some("w2"))), "not w2's");
    assert!(lease_lost(store.update_job(&next, None)), "not nobody's");
    assert_eq!(stored(&*store, &job), job, "nothing written");
    store.update_job(&next, Some("w1")).expect("w1's");

    // Its lease lapsed but nobody took it over: its worker may still end it, and then
    // recovery finds nothing to do.
    let mut done = next.clone();
    done.advance(JobStatus::Finished, 100, t(200))
        .expect("finish");
    let set = finished_set(&done, 200);
    store.end_job(&done, Some(&set), Some("w1")).expect("end");
    assert_eq!(
        store
            .fail_abandoned_job(job.id, "interrupted", t(201))
            .expect("recover"),
        None
    );
    assert_eq!(stored(&*store, &job).status, JobStatus::Finished);
    assert!(
        lease_lost(store.end_job(&done, Some(&set), Some("w1"))),
        "the lease ended with it"
    );

    // A claimed job that never started and whose lease lapsed is claimed again: the first
    // claimant writes nothing more.
    store.create_manual_job(&req, t(300), 3).expect("create");
    let first = store
        .claim_job("w1", t(310), t(300))
        .expect("claim")
        .expect("queued");
    let second = store
        .claim_job("w2", t(400), t(320))
        .expect("claim")
        .expect("lapsed, claimed again");
    assert_eq!(first.id, second.id);
    let mut prep = first.clone();
    prep.advance(JobStatus::Preparing, 2, t(321)).expect("prep");
    assert!(lease_lost(store.update_job(&prep, Some("w1"))));
    store.update_job(&prep, Some("w2")).expect("w2 holds it");
}

/// The hazard recovery must close: it fails a job whose lease lapsed, then removes its data;
/// a worker that was only stalled must not record the job Finished in between.
pub fn a_stale_worker_writes_nothing_once_recovery_took_its_job(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    store
        .create_manual_job(&manual(&account, &cluster, None, "a"), t(1), 3)
        .expect("create");
    let job = running(&*store, "w1");
    let failed = store
        .fail_abandoned_job(job.id, "interrupted", t(131))
        .expect("recover")
        .expect("lapsed: taken over");
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(stored(&*store, &job), failed);
    assert!(!store.renew_lease(job.id, "w1", t(200)).expect("renew"));

    let mut late = job.clone();
    late.advance(JobStatus::Checking, 95, t(140))
        .expect("check");
    assert!(lease_lost(store.update_job(&late, Some("w1"))));
    late.advance(JobStatus::Finished, 100, t(141))
        .expect("finish");
    let set = finished_set(&late, 141);
    assert!(lease_lost(store.end_job(&late, Some(&set), Some("w1"))));
    assert_eq!(stored(&*store, &job), failed, "the recovered end stands");
    let sets = store.cluster_sets(&cluster).expect("sets");
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].status, BackupSetStatus::Failed);
    assert!(
        !store.known_backup_ids().expect("known").contains(&job.id),
        "a failed set's data is an orphan"
    );
    assert_eq!(
        store
            .fail_abandoned_job(job.id, "again", t(500))
            .expect("recover"),
        None,
        "an ended job is never taken over again"
    );
    // Recovery ends only started jobs; a failed job's end by tools keeps working.
    let queued = crate::common::created(
        store
            .create_manual_job(&manual(&account, &cluster, None, "b"), t(600), 3)
            .expect("create"),
    );
    assert_eq!(
        store
            .fail_abandoned_job(queued.id, "x", t(700))
            .expect("recover"),
        None
    );
    fail(&*store, queued, 701);
}

/// Each round, a worker whose lease lapsed ends its job Finished while every other handle
/// recovers it: exactly one of them wins, and the stored job and its set agree with the winner.
pub fn a_stale_end_and_concurrent_recoveries_have_one_winner(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    for round in 0..8 {
        let base = 1000 * (round + 1);
        store
            .create_manual_job(&manual(&account, &cluster, None, "a"), t(base), 1000)
            .expect("create");
        let mut job = store
            .claim_job("w0", t(base + 30), t(base))
            .expect("claim")
            .expect("queued");
        for (status, process) in [
            (JobStatus::Preparing, 2),
            (JobStatus::Uploading, 40),
            (JobStatus::Checking, 95),
        ] {
            job.advance(status, process, t(base + 1)).expect("advance");
        }
        store.update_job(&job, Some("w0")).expect("update");
        let mut done = job.clone();
        done.advance(JobStatus::Finished, 100, t(base + 40))
            .expect("finish");
        let set = finished_set(&done, base + 40);
        let results = race(b, |i, s| {
            if i == 0 {
                match s.end_job(&done, Some(&set), Some("w0")) {
                    Ok(()) => true,
                    Err(StoreError::LeaseLost { .. }) => false,
                    Err(e) => panic!("{e}"),
                }
            } else {
                s.fail_abandoned_job(job.id, "interrupted", t(base + 40))
                    .expect("recover")
                    .is_some()
            }
        });
        assert_eq!(
            results.iter().filter(|w| **w).count(),
            1,
            "round {round}: {results:?}"
        );
        let end = stored(&*store, &job);
        let listed = store.backup_set(job.id).expect("set").expect("one set");
        if results[0] {
            assert_eq!(
                (end.status, listed.status),
                (JobStatus::Finished, BackupSetStatus::Success)
            );
        } else {
            assert_eq!(
                (end.status, listed.status),
                (JobStatus::Failed, BackupSetStatus::Failed)
            );
        }
    }
}
