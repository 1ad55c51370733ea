//! The worker pool's bookkeeping around a scripted engine: phases, failure clean-up, crash
//! recovery, deletions and orphan removal, on a real SQLite store.

mod common;

use jiff::{SignedDuration, Timestamp};
use polarbackup_jobs::{
    start, start_observed, BoxFuture, CancellationToken, Completed, Executor, JobContext, JobError,
    PoolClocks, WorkerConfig,
};
use polarbackup_model::policy::RetentionOnClusterDeletion as Retention;
use polarbackup_model::{
    AccountId, BackupJobId, BackupKind, BackupSetStatus, Clock, ClusterStatus, DbClusterId,
    JobStatus, ManualClock, SystemClock,
};
use polarbackup_store::prelude::*;
use polarbackup_store::{
    ClusterDeletion, CreateJobOutcome, ManualJobRequest, SetFilter, SqliteStore,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Stands in for the engine: "stores" ids in memory, fails when the comment says so, and
/// records every phase it reported.
#[derive(Default)]
struct Scripted {
    stored: Mutex<BTreeSet<BackupJobId>>,
    discarded: Mutex<Vec<BackupJobId>>,
    /// Jobs commented "hold" stay in Uploading until this is set.
    release: AtomicBool,
    /// This many discards fail (the object store is down) before they work again.
    failing_discards: AtomicUsize,
    /// The parent each job was given, in the order they ran.
    parents: Mutex<Vec<(BackupJobId, Option<BackupJobId>)>>,
    /// Take full backups whatever the parent (as the engine does when it cannot build on it).
    full_instead: AtomicBool,
    /// Hold every job in Uploading, as "hold" does, until `release`.
    hold_all: AtomicBool,
}

impl Executor for Scripted {
    fn backup<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Completed, JobError>> {
        Box::pin(async move {
            self.stored.lock().unwrap().insert(ctx.job_id);
            ctx.progress.phase(JobStatus::Preparing, 1).await?;
            ctx.progress.phase(JobStatus::Waiting, 5).await?;
            ctx.progress.phase(JobStatus::Uploading, 5).await?;
            ctx.progress.fraction(1, 2).await?;
            if ctx.progress.job().comment.as_deref() == Some("fail") {
                return Err(JobError::Backup("connection reset by peer".into()));
            }
            if ctx.progress.job().comment.as_deref() == Some("hold")
                || self.hold_all.load(Ordering::SeqCst)
            {
                while !self.release.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            if ctx.progress.job().comment.as_deref() == Some("hang") {
                ctx.cancel.cancelled().await;
                return Err(JobError::Cancelled);
            }
            ctx.progress.phase(JobStatus::Checking, 90).await?;
            let given = ctx.parent.as_ref().map(|p| p.id);
            self.parents.lock().unwrap().push((ctx.job_id, given));
            Ok(Completed {
                parent: given.filter(|_| !self.full_instead.load(Ordering::SeqCst)),
                ..common::completed(ctx.progress.now())
            })
        })
    }

    fn discard(&self, id: BackupJobId) -> BoxFuture<'_, Result<(), JobError>> {
        Box::pin(async move {
            let down =
                self.failing_discards
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if down.is_ok() {
                return Err(JobError::Backup("object store unavailable".into()));
            }
            self.stored.lock().unwrap().remove(&id);
            self.discarded.lock().unwrap().push(id);
            Ok(())
        })
    }

    fn stored_ids(&self) -> BoxFuture<'_, Result<Vec<BackupJobId>, JobError>> {
        Box::pin(async move { Ok(self.stored.lock().unwrap().iter().copied().collect()) })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    account: AccountId,
    cluster: DbClusterId,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let account = store.create_account(None, SystemClock.now()).unwrap().id;
    let cluster = add_cluster(&store, &account);
    Fixture {
        _dir: dir,
        store,
        account,
        cluster,
    }
}

fn add_cluster(store: &SqliteStore, account: &AccountId) -> DbClusterId {
    common::add_cluster(store, account, SystemClock.now())
}

impl Fixture {
    fn queue(&self, comment: &str) -> BackupJobId {
        self.queue_on(&self.cluster, comment)
    }

    fn queue_on(&self, cluster: &DbClusterId, comment: &str) -> BackupJobId {
        let req = ManualJobRequest {
            cluster: cluster.clone(),
            account: self.account.clone(),
            client_token: None,
            fingerprint: String::new(),
            comment: Some(comment.into()),
            kind: polarbackup_model::BackupKind::Full,
        };
        match self
            .store
            .create_manual_job(&req, SystemClock.now(), 10)
            .unwrap()
        {
            CreateJobOutcome::Created(j) => j.id,
            other => panic!("{other:?}"),
        }
    }

    fn job_status(&self, id: BackupJobId) -> (JobStatus, u8, Option<String>) {
        self.job_status_on(&self.cluster, id)
    }

    fn job_status_on(
        &self,
        cluster: &DbClusterId,
        id: BackupJobId,
    ) -> (JobStatus, u8, Option<String>) {
        let f = polarbackup_store::JobFilter {
            job_id: Some(id),
            mode: None,
            ended_since: Timestamp::MIN,
        };
        let j = self.store.list_jobs(cluster, &f).unwrap().remove(0);
        (j.status, j.process, j.failure_reason)
    }

    fn sets(&self) -> Vec<(BackupJobId, BackupSetStatus, u64)> {
        let page = self
            .store
            .list_backup_sets(&self.cluster, &all_sets())
            .unwrap();
        page.sets.iter().map(|s| (s.id, s.status, s.size)).collect()
    }

    fn pool(
        &self,
        exec: Arc<Scripted>,
        lease_secs: i64,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>, Arc<Notify>) {
        self.pool_of(exec, lease_secs, 2)
    }

    fn pool_of(
        &self,
        exec: Arc<Scripted>,
        lease_secs: i64,
        concurrency: usize,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>, Arc<Notify>) {
        let shutdown = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let handle = start(
            self.store.clone(),
            Arc::new(SystemClock),
            exec,
            WorkerConfig {
                concurrency,
                lease: SignedDuration::from_secs(lease_secs),
                poll: Duration::from_millis(50),
                scheduler: false,
                orphan_sweep: Duration::from_millis(200),
                full_backup_every: polarbackup_model::policy::FullBackupEvery::Week,
            },
            wake.clone(),
            shutdown.clone(),
        );
        (shutdown, handle, wake)
    }
}

fn all_sets() -> SetFilter {
    SetFilter {
        id: None,
        status: None,
        mode: None,
        start: Timestamp::MIN,
        end: Timestamp::MAX,
        page_size: 100,
        page_number: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_finish_with_a_set_or_fail_with_their_data_removed() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    let (shutdown, handle, wake) = fx.pool(exec.clone(), 30);
    let ok = fx.queue("ok");
    wake.notify_one();
    common::wait_for("finished", || fx.job_status(ok).0 == JobStatus::Finished).await;
    assert_eq!(fx.job_status(ok), (JobStatus::Finished, 100, None));
    assert_eq!(fx.sets(), vec![(ok, BackupSetStatus::Success, 42)]);

    let bad = fx.queue("fail");
    wake.notify_one();
    common::wait_for("failed", || fx.job_status(bad).0 == JobStatus::Failed).await;
    let (_, process, reason) = fx.job_status(bad);
    assert_eq!(
        process, 47,
        "Failed keeps the last progress (halfway through Uploading)"
    );
    assert_eq!(reason.as_deref(), Some("connection reset by peer"));
    // The failure is recorded first and the data removed after it: the job can be seen
    // Failed while its data is still there.
    common::wait_for("its data removed", || {
        !exec.stored.lock().unwrap().contains(&bad)
    })
    .await;
    assert!(exec.discarded.lock().unwrap().contains(&bad));
    assert_eq!(fx.sets()[0], (bad, BackupSetStatus::Failed, 0));

    // Shutdown cancels a running backup; it ends Failed, not silently dropped.
    let hung = fx.queue("hang");
    wake.notify_one();
    common::wait_for("uploading", || {
        fx.job_status(hung).0 == JobStatus::Uploading
    })
    .await;
    shutdown.cancel();
    handle.await.unwrap();
    let (status, _, reason) = fx.job_status(hung);
    assert_eq!(status, JobStatus::Failed);
    assert_eq!(
        reason.as_deref(),
        Some("the backup was cancelled: the server is shutting down")
    );
    assert!(exec.discarded.lock().unwrap().contains(&hung));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_job_is_recovered_and_deletions_and_orphans_are_finished() {
    let fx = fixture();
    // A worker that died: it claimed a job, got to Uploading, and stopped heart-beating.
    let dead = fx.queue("ok");
    let now = SystemClock.now();
    let mut job = fx
        .store
        .claim_job("dead-worker", now + SignedDuration::from_secs(1), now)
        .unwrap()
        .unwrap();
    job.advance(JobStatus::Preparing, 2, now).unwrap();
    job.advance(JobStatus::Uploading, 30, now).unwrap();
    fx.store.update_job(&job, Some("dead-worker")).unwrap();
    let exec = Arc::new(Scripted::default());
    exec.stored.lock().unwrap().insert(dead);
    // Data nobody owns, and a set whose deletion was interrupted.
    exec.stored.lock().unwrap().insert(BackupJobId(999));

    let (shutdown, handle, wake) = fx.pool(exec.clone(), 30);
    common::wait_for("recovered", || fx.job_status(dead).0 == JobStatus::Failed).await;
    let (_, process, reason) = fx.job_status(dead);
    assert_eq!(process, 30);
    assert!(reason.unwrap().starts_with("interrupted"));
    common::wait_for("orphan removed", || {
        !exec.stored.lock().unwrap().contains(&BackupJobId(999))
    })
    .await;

    let done = fx.queue("ok");
    wake.notify_one();
    common::wait_for("finished", || fx.job_status(done).0 == JobStatus::Finished).await;
    fx.store
        .begin_delete_sets(&fx.cluster, &[done])
        .unwrap()
        .unwrap();
    wake.notify_one();
    common::wait_for("deleted", || {
        fx.store.pending_deletions().unwrap().is_empty()
    })
    .await;
    assert!(!exec.stored.lock().unwrap().contains(&done));
    assert!(fx.sets().iter().all(|(id, _, _)| *id != done));
    shutdown.cancel();
    handle.await.unwrap();
}

/// A failed backup whose data could not be removed (the object store was down) is removed by
/// the periodic orphan sweep while the server keeps running, not only at its next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backups_data_left_by_an_outage_is_swept_while_running() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    let (shutdown, handle, wake) = fx.pool(exec.clone(), 30);
    // Let the start-up sweep pass first, so only a later one can remove the data.
    common::wait_for("idle", || exec.stored.lock().unwrap().is_empty()).await;
    exec.failing_discards.store(1, Ordering::SeqCst);
    let failed = fx.queue("fail");
    wake.notify_one();
    common::wait_for("failed", || fx.job_status(failed).0 == JobStatus::Failed).await;
    common::wait_for("swept", || !exec.stored.lock().unwrap().contains(&failed)).await;
    assert_eq!(
        exec.failing_discards.load(Ordering::SeqCst),
        0,
        "the first removal failed"
    );
    assert_eq!(
        exec.discarded
            .lock()
            .unwrap()
            .iter()
            .filter(|&&id| id == failed)
            .count(),
        1,
        "removed once, by the sweep"
    );
    shutdown.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_and_one_backup_per_cluster_queue_jobs_as_no_start() {
    let fx = fixture();
    let (c2, c3) = (
        add_cluster(&fx.store, &fx.account),
        add_cluster(&fx.store, &fx.account),
    );
    let jobs = [
        (fx.cluster.clone(), fx.queue("hold")),
        // A second job on the first cluster waits for the first, whatever the free workers.
        (fx.cluster.clone(), fx.queue("hold")),
        (c2.clone(), fx.queue_on(&c2, "hold")),
        (c3.clone(), fx.queue_on(&c3, "hold")),
    ];
    let exec = Arc::new(Scripted::default());
    let (shutdown, handle, wake) = fx.pool_of(exec.clone(), 30, 2);
    wake.notify_one();
    let statuses = || -> Vec<JobStatus> {
        jobs.iter()
            .map(|(c, id)| fx.job_status_on(c, *id).0)
            .collect()
    };
    common::wait_for("two running", || {
        statuses()
            .iter()
            .filter(|s| **s == JobStatus::Uploading)
            .count()
            == 2
    })
    .await;
    // Several passes of the pool later, still two: the others wait, untouched.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = statuses();
    assert_eq!(
        now.iter().filter(|s| **s == JobStatus::Uploading).count(),
        2,
        "{now:?}"
    );
    assert_eq!(
        now.iter().filter(|s| **s == JobStatus::NoStart).count(),
        2,
        "{now:?}"
    );
    assert_eq!(now[0], JobStatus::Uploading, "the oldest job runs first");
    assert_eq!(
        now[1],
        JobStatus::NoStart,
        "one backup per cluster: {now:?}"
    );
    exec.release.store(true, Ordering::SeqCst);
    common::wait_for("all finished", || {
        statuses().iter().all(|s| *s == JobStatus::Finished)
    })
    .await;
    shutdown.cancel();
    handle.await.unwrap();
}

impl Fixture {
    fn cluster_status(&self) -> ClusterStatus {
        self.store.cluster(&self.cluster).unwrap().unwrap().status
    }

    /// Starts a LATEST deletion and returns its final backup.
    fn delete_keeping_latest(&self) -> BackupJobId {
        match self
            .store
            .begin_cluster_deletion(&self.cluster, Some(Retention::Latest), SystemClock.now())
            .unwrap()
        {
            Ok(ClusterDeletion::Pending { job, .. }) => job.id,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_deletion_runs_its_final_backup_then_removes_the_other_sets() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    let (shutdown, handle, wake) = fx.pool(exec.clone(), 30);
    let old = fx.queue("ok");
    wake.notify_one();
    common::wait_for("finished", || fx.job_status(old).0 == JobStatus::Finished).await;
    let last = fx.delete_keeping_latest();
    assert_eq!(fx.cluster_status(), ClusterStatus::Deleting);
    wake.notify_one();
    common::wait_for("released", || fx.cluster_status() == ClusterStatus::Deleted).await;
    wake.notify_one();
    common::wait_for("the older set's data removed", || {
        !exec.stored.lock().unwrap().contains(&old)
    })
    .await;
    assert_eq!(fx.job_status(last).0, JobStatus::Finished);
    assert!(exec.stored.lock().unwrap().contains(&last));
    let kept = fx
        .store
        .list_detached_sets(&fx.cluster, &all_sets())
        .unwrap();
    assert_eq!(kept.sets.iter().map(|s| s.id).collect::<Vec<_>>(), [last]);
    common::wait_for("row forgotten", || {
        fx.store.pending_deletions().unwrap().is_empty()
    })
    .await;
    shutdown.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_backup_interrupted_by_a_crash_aborts_the_deletion() {
    let fx = fixture();
    let last = fx.delete_keeping_latest();
    let now = SystemClock.now();
    let mut job = fx
        .store
        .claim_job("dead-worker", now + SignedDuration::from_secs(1), now)
        .unwrap()
        .unwrap();
    assert_eq!(job.id, last);
    job.advance(JobStatus::Preparing, 2, now).unwrap();
    fx.store.update_job(&job, Some("dead-worker")).unwrap();
    let exec = Arc::new(Scripted::default());
    exec.stored.lock().unwrap().insert(last);
    let (shutdown, handle, _) = fx.pool(exec.clone(), 30);
    // Recovery records the failure (which aborts the deletion) first and removes the data
    // after it: both are waited for.
    common::wait_for("deletion aborted and the data removed", || {
        fx.cluster_status() == ClusterStatus::Running
            && !exec.stored.lock().unwrap().contains(&last)
    })
    .await;
    let (status, _, reason) = fx.job_status(last);
    assert_eq!(status, JobStatus::Failed);
    assert!(reason.unwrap().starts_with("interrupted"));
    assert!(fx.store.pending_deletions().unwrap().is_empty());
    shutdown.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_job_builds_on_the_newest_set_whose_chain_is_available() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    let (shutdown, handle, wake) = fx.pool(exec.clone(), 30);
    // A new cluster's schedule starts now: later slots.
    let mut slot = SystemClock.now();
    let mut run = |kind: BackupKind| {
        slot += SignedDuration::from_hours(1);
        run_one(&fx, &wake, slot, kind)
    };
    let given = |id: BackupJobId| {
        exec.parents
            .lock()
            .unwrap()
            .iter()
            .find(|(j, _)| *j == id)
            .expect("ran")
            .1
    };

    // No set yet: an incremental job gets no parent and its set is full.
    let (first, parent) = run(BackupKind::Incremental).await;
    assert_eq!((given(first), parent), (None, None));
    // The newest set, recorded as the parent.
    let (second, parent) = run(BackupKind::Incremental).await;
    assert_eq!((given(second), parent), (Some(first), Some(first)));
    let (third, parent) = run(BackupKind::Incremental).await;
    assert_eq!((given(third), parent), (Some(second), Some(second)));
    // A full job gets none, even with sets to build on.
    let (full, parent) = run(BackupKind::Full).await;
    assert_eq!((given(full), parent), (None, None));
    // The newest set is corrupt: the one before it whose chain is whole.
    assert!(fx
        .store
        .mark_set_corrupt(full, "bad", SystemClock.now())
        .unwrap());
    let (fifth, parent) = run(BackupKind::Incremental).await;
    assert_eq!((given(fifth), parent), (Some(third), Some(third)));
    // The full set at the bottom of every chain is corrupt: nothing is usable.
    assert!(fx
        .store
        .mark_set_corrupt(first, "bad", SystemClock.now())
        .unwrap());
    let (sixth, parent) = run(BackupKind::Incremental).await;
    assert_eq!((given(sixth), parent), (None, None));
    // The engine took a full backup although it was given a parent: no parent recorded.
    exec.full_instead.store(true, Ordering::SeqCst);
    let (seventh, parent) = run(BackupKind::Incremental).await;
    assert_eq!((given(seventh), parent), (Some(sixth), None));

    shutdown.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_set_whose_parent_went_away_while_it_ran_is_not_recorded() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    let (shutdown, handle, wake) = fx.pool(exec.clone(), 30);
    let slot = SystemClock.now() + SignedDuration::from_hours(1);
    let (base, _) = run_one(&fx, &wake, slot, BackupKind::Full).await;

    exec.hold_all.store(true, Ordering::SeqCst);
    let job = fx
        .store
        .schedule_automated_job(
            &fx.cluster,
            slot + SignedDuration::from_hours(1),
            BackupKind::Incremental,
            SystemClock.now(),
        )
        .unwrap()
        .expect("queued");
    wake.notify_one();
    common::wait_for("uploading", || {
        fx.job_status(job.id).0 == JobStatus::Uploading
    })
    .await;
    // The scrub finds the base corrupt while the incremental backup on it runs.
    assert!(fx
        .store
        .mark_set_corrupt(base, "bad", SystemClock.now())
        .unwrap());
    exec.release.store(true, Ordering::SeqCst);
    common::wait_for("ended", || fx.job_status(job.id).0 == JobStatus::Failed).await;
    let (_, _, reason) = fx.job_status(job.id);
    assert!(
        reason.as_deref().unwrap_or("").contains("was built on"),
        "{reason:?}"
    );
    // Its data is removed after the failure is recorded.
    common::wait_for("its data removed", || {
        exec.discarded.lock().unwrap().contains(&job.id)
    })
    .await;
    assert!(!fx.store.backup_set(job.id).unwrap().unwrap().is_available());

    shutdown.cancel();
    handle.await.unwrap();
}

/// Queues an automated job of `kind` for `slot` and waits for it to finish; its id and the
/// parent recorded on its set.
async fn run_one(
    fx: &Fixture,
    wake: &Notify,
    slot: Timestamp,
    kind: BackupKind,
) -> (BackupJobId, Option<BackupJobId>) {
    let job = fx
        .store
        .schedule_automated_job(&fx.cluster, slot, kind, SystemClock.now())
        .unwrap()
        .expect("queued");
    assert_eq!(job.kind, kind);
    wake.notify_one();
    common::wait_for("finished", || {
        fx.job_status(job.id).0 == JobStatus::Finished
    })
    .await;
    let set = fx.store.backup_set(job.id).unwrap().expect("set");
    (job.id, set.parent)
}

/// `serve --test-controls` moves the service's clock forward while backups run: with leases
/// on a clock of their own (the wall clock), the running job is not taken for abandoned, and
/// its times follow the moved clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_moved_forward_while_a_job_runs_leaves_its_lease_alone() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    let service = Arc::new(ManualClock::new(SystemClock.now()));
    let shutdown = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    let handle = start_observed(
        fx.store.clone(),
        PoolClocks {
            service: service.clone(),
            lease: Arc::new(SystemClock),
        },
        exec.clone(),
        WorkerConfig {
            concurrency: 2,
            lease: SignedDuration::from_secs(3),
            poll: Duration::from_millis(50),
            scheduler: false,
            orphan_sweep: Duration::from_secs(600),
            full_backup_every: polarbackup_model::policy::FullBackupEvery::Week,
        },
        wake.clone(),
        shutdown.clone(),
        Arc::default(),
    );
    let held = fx.queue("hold");
    let second = fx.queue("ok");
    wake.notify_one();
    common::wait_for("uploading", || {
        fx.job_status(held).0 == JobStatus::Uploading
    })
    .await;
    let jumped_from = service.now();
    service.advance(SignedDuration::from_hours(24));
    // Many worker passes (recovery and claims), while a lease from before the jump would have
    // lapsed a day ago on the moved clock.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fx.job_status(held).0, JobStatus::Uploading);
    assert_eq!(
        fx.job_status(second).0,
        JobStatus::NoStart,
        "a second job of the busy cluster was claimed"
    );
    exec.release.store(true, Ordering::SeqCst);
    common::wait_for("both finished", || {
        fx.job_status(held).0 == JobStatus::Finished
            && fx.job_status(second).0 == JobStatus::Finished
    })
    .await;
    let sets = fx.store.cluster_sets(&fx.cluster).unwrap();
    let set = sets.iter().find(|s| s.id == held).expect("its set");
    assert!(
        set.end_time.as_second() >= (jumped_from + SignedDuration::from_hours(24)).as_second(),
        "the set's end follows the moved clock: {set:?}"
    );
    shutdown.cancel();
    handle.await.unwrap();
}
