//! How the worker pool acts on each kind of `JobError`, over a real SQLite store wrapped to
//! fail on purpose: a transient store failure is retried and fails no job, a lost lease stops
//! the backup without touching the new owner's job, a backup's own error becomes the job's
//! reason, and shutdown never waits on a failing store.

mod common;

use jiff::{SignedDuration, Timestamp};
use polarbackup_jobs::{
    start, BoxFuture, CancellationToken, Completed, Executor, JobContext, JobError, WorkerConfig,
};
use polarbackup_model::policy::{
    BackupPolicy, FullBackupEvery, PolicyChange, RetentionOnClusterDeletion,
};
use polarbackup_model::{
    AccessKey, AccessKeyId, Account, AccountId, BackupJob, BackupJobId, BackupKind, BackupSet,
    BackupSetStatus, Clock, Cluster, ClusterStatus, DbClusterId, JobMode, JobStatus, NewCluster,
    RamUser, RamUserId, SystemClock, TaskAction,
};
use polarbackup_model::{
    BackupLogId, LogBackupPolicy, LogRetention, NewWalObject, WalGap, WalObject,
};
use polarbackup_store::{
    Attachment, ClusterDeletion, ClusterStore, CreateJobOutcome, DeleteRefusal, DeletionRefusal,
    JobFilter, JobStore, ListedCluster, ManualJobRequest, NonceStore, PolicyKind, RamStore,
    Result as StoreResult, SetFilter, SetPage, SetStore, SqliteStore, Store, StoreError,
    StoredPolicy, TenantStore,
};
use polarbackup_store::{
    ClusterOverview, RecoveryInputs, WalFilter, WalPage, WalRecorded, WalStore,
};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Calls to fail before the store answers again (`u32::MAX`: until reset).
#[derive(Default)]
struct Faults {
    update_job: AtomicU32,
    end_job: AtomicU32,
    renew_lease: AtomicU32,
}

/// Takes one planned failure, if any is left.
fn inject(left: &AtomicU32) -> StoreResult<()> {
    match left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
        Ok(_) => Err(StoreError::Io(std::io::Error::other(
            "injected: database is locked",
        ))),
        Err(_) => Ok(()),
    }
}

/// The real store, except that the job writes a worker makes fail as planned in `faults`: a
/// store outage cannot be caused for real in a test.
struct FaultyStore {
    inner: SqliteStore,
    faults: Faults,
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.inner.$name($($arg),*) })*
    };
}

impl JobStore for FaultyStore {
    fn update_job(&self, job: &BackupJob, holder: Option<&str>) -> StoreResult<()> {
        inject(&self.faults.update_job)?;
        self.inner.update_job(job, holder)
    }

    fn end_job(
        &self,
        job: &BackupJob,
        set: Option<&BackupSet>,
        holder: Option<&str>,
    ) -> StoreResult<()> {
        inject(&self.faults.end_job)?;
        self.inner.end_job(job, set, holder)
    }

    fn renew_lease(
        &self,
        job: BackupJobId,
        worker: &str,
        lease_until: Timestamp,
    ) -> StoreResult<bool> {
        inject(&self.faults.renew_lease)?;
        self.inner.renew_lease(job, worker, lease_until)
    }

    delegate! {
        insert_job(cluster: &DbClusterId, mode: JobMode, action: TaskAction, now: Timestamp) -> StoreResult<BackupJob>;
        create_manual_job(req: &ManualJobRequest, now: Timestamp, limit: u32) -> StoreResult<CreateJobOutcome>;
        list_jobs(cluster: &DbClusterId, filter: &JobFilter) -> StoreResult<Vec<BackupJob>>;
        job_counts() -> StoreResult<Vec<(DbClusterId, polarbackup_model::JobStatus, u64)>>;
        claim_job(worker: &str, lease_until: Timestamp, now: Timestamp) -> StoreResult<Option<BackupJob>>;
        abandoned_jobs(now: Timestamp) -> StoreResult<Vec<BackupJob>>;
        fail_abandoned_job(id: BackupJobId, reason: &str, now: Timestamp) -> StoreResult<Option<BackupJob>>;
    }
}

impl WalStore for FaultyStore {
    delegate! {
        log_backup_policy(cluster: &DbClusterId) -> StoreResult<LogBackupPolicy>;
        modify_log_backup_policy(cluster: &DbClusterId, retention: LogRetention) -> StoreResult<std::result::Result<LogBackupPolicy, ClusterStatus>>;
        claim_archiver(cluster: &DbClusterId, worker: &str, lease_until: Timestamp, now: Timestamp) -> StoreResult<bool>;
        release_archiver(cluster: &DbClusterId, worker: &str) -> StoreResult<()>;
        record_wal(worker: &str, object: &NewWalObject, now: Timestamp) -> StoreResult<Option<WalRecorded>>;
        wal_objects(cluster: &DbClusterId) -> StoreResult<Vec<WalObject>>;
        wal_page(cluster: &DbClusterId, filter: &WalFilter) -> StoreResult<WalPage>;
        wal_object(id: BackupLogId) -> StoreResult<Option<WalObject>>;
        remove_wal(cluster: &DbClusterId, ids: &[BackupLogId]) -> StoreResult<Vec<WalObject>>;
        recovery_inputs(cluster: &DbClusterId) -> StoreResult<RecoveryInputs>;
        recovery_overview() -> StoreResult<Vec<ClusterOverview>>;
        record_gap(worker: &str, gap: &WalGap, now: Timestamp) -> StoreResult<bool>;
        gaps(cluster: &DbClusterId) -> StoreResult<Vec<WalGap>>;
    }
}

impl Store for FaultyStore {
    delegate! {
        ping() -> StoreResult<()>;
    }
}

impl TenantStore for FaultyStore {
    delegate! {
        create_account(name: Option<&str>, now: Timestamp) -> StoreResult<Account>;
        account(id: &AccountId) -> StoreResult<Option<Account>>;
        create_key(account: &AccountId, now: Timestamp) -> StoreResult<AccessKey>;
        create_user_key(user: &RamUser, now: Timestamp) -> StoreResult<AccessKey>;
        create_rsa_key(account: &AccountId, user: Option<&RamUser>, public_key_pem: &str, now: Timestamp) -> StoreResult<AccessKey>;
        import_key(key: &AccessKey) -> StoreResult<()>;
        key(id: &AccessKeyId) -> StoreResult<Option<AccessKey>>;
        bootstrap_account_key(name: &str, id: &AccessKeyId, secret: &str, now: Timestamp) -> StoreResult<Option<Account>>;
        set_key_active(id: &AccessKeyId, active: bool) -> StoreResult<()>;
    }
}

impl RamStore for FaultyStore {
    delegate! {
        create_user(account: &AccountId, name: &str, now: Timestamp) -> StoreResult<RamUser>;
        user(id: &RamUserId) -> StoreResult<Option<RamUser>>;
        create_policy(policy: &StoredPolicy) -> StoreResult<()>;
        list_policies(account: &AccountId) -> StoreResult<Vec<StoredPolicy>>;
        attach_policy(user: &RamUser, kind: PolicyKind, name: &str) -> StoreResult<bool>;
        detach_policy(user: &RamUser, kind: PolicyKind, name: &str) -> StoreResult<bool>;
        attachments(user: &RamUser) -> StoreResult<Vec<Attachment>>;
    }
}

impl ClusterStore for FaultyStore {
    delegate! {
        create_cluster(cluster: &NewCluster, now: Timestamp) -> StoreResult<Cluster>;
        cluster(id: &DbClusterId) -> StoreResult<Option<Cluster>>;
        account_clusters(account: &AccountId) -> StoreResult<Vec<ListedCluster>>;
        released_with_wal() -> StoreResult<Vec<Cluster>>;
        begin_cluster_deletion(cluster: &DbClusterId, retention: Option<RetentionOnClusterDeletion>, now: Timestamp) -> StoreResult<std::result::Result<ClusterDeletion, DeletionRefusal>>;
        backup_policy(cluster: &DbClusterId) -> StoreResult<(BackupPolicy, Option<Timestamp>)>;
        modify_backup_policy(cluster: &DbClusterId, change: &PolicyChange) -> StoreResult<std::result::Result<BackupPolicy, ClusterStatus>>;
        schedules() -> StoreResult<Vec<(DbClusterId, BackupPolicy, Option<Timestamp>)>>;
        schedule_automated_job(cluster: &DbClusterId, slot: Timestamp, kind: BackupKind, now: Timestamp) -> StoreResult<Option<BackupJob>>;
        set_full_backup_every(cluster: &DbClusterId, every: Option<FullBackupEvery>) -> StoreResult<std::result::Result<(), ClusterStatus>>;
    }
}

impl SetStore for FaultyStore {
    delegate! {
        list_backup_sets(cluster: &DbClusterId, filter: &SetFilter) -> StoreResult<SetPage>;
        list_detached_sets(cluster: &DbClusterId, filter: &SetFilter) -> StoreResult<SetPage>;
        detached_set_count(cluster: &DbClusterId) -> StoreResult<u64>;
        backup_set(id: BackupJobId) -> StoreResult<Option<BackupSet>>;
        cluster_sets(cluster: &DbClusterId) -> StoreResult<Vec<BackupSet>>;
        begin_delete_sets(cluster: &DbClusterId, ids: &[BackupJobId]) -> StoreResult<std::result::Result<Vec<BackupSet>, DeleteRefusal>>;
        expire_sets(ids: &[BackupJobId]) -> StoreResult<()>;
        pending_deletions() -> StoreResult<Vec<BackupSet>>;
        forget_set(id: BackupJobId) -> StoreResult<()>;
        known_backup_ids() -> StoreResult<Vec<BackupJobId>>;
        verifiable_sets() -> StoreResult<Vec<BackupSet>>;
        mark_set_corrupt(id: BackupJobId, reason: &str, now: Timestamp) -> StoreResult<bool>;
        claim_scrub(worker: &str, verified_before: Timestamp, lease_until: Timestamp, now: Timestamp) -> StoreResult<Option<BackupSet>>;
        end_scrub(id: BackupJobId, worker: &str, now: Timestamp) -> StoreResult<bool>;
    }
}

impl NonceStore for FaultyStore {
    delegate! {
        use_nonce(key: &AccessKeyId, nonce: &str, expires_at: Timestamp, now: Timestamp) -> StoreResult<bool>;
    }
}

/// Stands in for the engine; the job's comment picks the script.
#[derive(Default)]
struct Scripted {
    discarded: Mutex<Vec<BackupJobId>>,
    started: AtomicBool,
    /// Lets a "resume" job report progress again.
    resume: AtomicBool,
    /// What a progress report answered once the backup was cancelled or resumed.
    late_report: Mutex<Option<Result<(), JobError>>>,
}

impl Executor for Scripted {
    fn backup<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Completed, JobError>> {
        Box::pin(async move {
            self.started.store(true, Ordering::SeqCst);
            let job = ctx.progress.job();
            let script = job.comment.as_deref().unwrap_or_default();
            if script == "steal" {
                // Reports nothing, so the job stays claimable once its lease runs out.
                ctx.cancel.cancelled().await;
                let late = ctx.progress.phase(JobStatus::Preparing, 1).await;
                *self.late_report.lock().unwrap() = Some(late);
                return Err(JobError::Cancelled);
            }
            ctx.progress.phase(JobStatus::Preparing, 1).await?;
            ctx.progress.phase(JobStatus::Waiting, 5).await?;
            ctx.progress.phase(JobStatus::Uploading, 5).await?;
            ctx.progress.fraction(1, 2).await?;
            match script {
                "fail" => return Err(JobError::Backup("connection reset by peer".into())),
                "hang" => {
                    ctx.cancel.cancelled().await;
                    return Err(JobError::Cancelled);
                }
                "resume" => {
                    while !self.resume.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    let late = ctx.progress.phase(JobStatus::Checking, 90).await;
                    let stop = late.is_err();
                    *self.late_report.lock().unwrap() = Some(late);
                    if stop {
                        return Err(JobError::LeaseLost);
                    }
                }
                _ => {}
            }
            ctx.progress.phase(JobStatus::Checking, 90).await?;
            Ok(common::completed(ctx.progress.now()))
        })
    }

    fn discard(&self, id: BackupJobId) -> BoxFuture<'_, Result<(), JobError>> {
        Box::pin(async move {
            self.discarded.lock().unwrap().push(id);
            Ok(())
        })
    }

    fn stored_ids(&self) -> BoxFuture<'_, Result<Vec<BackupJobId>, JobError>> {
        Box::pin(async move { Ok(Vec::new()) })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<FaultyStore>,
    account: AccountId,
    cluster: DbClusterId,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteStore::open(dir.path()).unwrap();
    let account = inner.create_account(None, SystemClock.now()).unwrap().id;
    let cluster = common::add_cluster(&inner, &account, SystemClock.now());
    Fixture {
        _dir: dir,
        store: Arc::new(FaultyStore {
            inner,
            faults: Faults::default(),
        }),
        account,
        cluster,
    }
}

struct Pool {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    wake: Arc<Notify>,
}

impl Pool {
    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap();
    }
}

impl Fixture {
    fn queue(&self, comment: &str) -> BackupJobId {
        let req = ManualJobRequest {
            cluster: self.cluster.clone(),
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

    fn job(&self, id: BackupJobId) -> BackupJob {
        let f = JobFilter {
            job_id: Some(id),
            mode: None,
            ended_since: Timestamp::MIN,
        };
        self.store.list_jobs(&self.cluster, &f).unwrap().remove(0)
    }

    fn set(&self, id: BackupJobId) -> Option<BackupSet> {
        self.store.backup_set(id).unwrap()
    }

    /// One worker, so the pool never claims a second job while the first runs.
    fn pool(&self, exec: Arc<Scripted>, lease_secs: i64) -> Pool {
        let shutdown = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let handle = start(
            self.store.clone(),
            Arc::new(SystemClock),
            exec,
            WorkerConfig {
                concurrency: 1,
                lease: SignedDuration::from_secs(lease_secs),
                poll: Duration::from_millis(50),
                scheduler: false,
                orphan_sweep: Duration::from_millis(200),
                full_backup_every: polarbackup_model::policy::FullBackupEvery::Week,
            },
            wake.clone(),
            shutdown.clone(),
        );
        wake.notify_one();
        Pool {
            shutdown,
            handle,
            wake,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_fails_for_a_while_fails_no_job() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    let pool = fx.pool(exec.clone(), 30);
    let faults = &fx.store.faults;
    // Within the retries: every write lands in the end.
    faults.update_job.store(3, Ordering::SeqCst);
    faults.end_job.store(3, Ordering::SeqCst);
    let first = fx.queue("ok");
    pool.wake.notify_one();
    common::wait_for("finished", || fx.job(first).status.is_terminal()).await;
    assert_eq!(fx.job(first).status, JobStatus::Finished);
    assert_eq!(fx.set(first).unwrap().status, BackupSetStatus::Success);
    assert_eq!(faults.update_job.load(Ordering::SeqCst), 0);
    assert_eq!(faults.end_job.load(Ordering::SeqCst), 0);

    // Progress writes failing beyond their retries are skipped: the backup goes on, and its
    // end records the state they missed.
    faults.update_job.store(u32::MAX, Ordering::SeqCst);
    let second = fx.queue("ok");
    pool.wake.notify_one();
    common::wait_for("finished", || fx.job(second).status.is_terminal()).await;
    let job = fx.job(second);
    assert_eq!((job.status, job.process), (JobStatus::Finished, 100));
    assert!(faults.update_job.load(Ordering::SeqCst) < u32::MAX);
    faults.update_job.store(0, Ordering::SeqCst);
    assert!(exec.discarded.lock().unwrap().is_empty());
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_error_fails_the_job_with_its_reason_through_a_flaky_store() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    fx.store.faults.end_job.store(2, Ordering::SeqCst);
    let id = fx.queue("fail");
    let pool = fx.pool(exec.clone(), 30);
    common::wait_for("failed", || fx.job(id).status.is_terminal()).await;
    let job = fx.job(id);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.failure_reason.as_deref(),
        Some("connection reset by peer")
    );
    assert_eq!(job.process, 47, "Failed keeps the last progress");
    assert_eq!(fx.set(id).unwrap().status, BackupSetStatus::Failed);
    // The worker records the failure first and removes the data after (a failed set owns
    // none, so a removal that fails is left to the orphan sweep): the job can be seen Failed
    // before its data is gone.
    common::wait_for("its data removed", || {
        !exec.discarded.lock().unwrap().is_empty()
    })
    .await;
    let discarded = exec.discarded.lock().unwrap().clone();
    assert_eq!(discarded, [id], "removed once");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_stops_the_backup_and_leaves_the_job_to_its_new_owner() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    let id = fx.queue("steal");
    let pool = fx.pool(exec.clone(), 1);
    common::wait_for("started", || exec.started.load(Ordering::SeqCst)).await;
    // The heartbeat cannot reach the store until the lease has run out and another worker has
    // claimed the job.
    fx.store
        .faults
        .renew_lease
        .store(u32::MAX, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = SystemClock.now();
        let later = now + SignedDuration::from_secs(60);
        if let Some(c) = fx.store.inner.claim_job("thief", later, now).unwrap() {
            assert_eq!(c.id, id);
            break;
        }
        assert!(Instant::now() < deadline, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fx.store.faults.renew_lease.store(0, Ordering::SeqCst);
    common::wait_for("the backup to stop", || {
        exec.late_report.lock().unwrap().is_some()
    })
    .await;
    let late = exec.late_report.lock().unwrap().take().unwrap();
    assert!(matches!(late, Err(JobError::LeaseLost)), "{late:?}");
    pool.stop().await;
    // Stopped for good: the thief's claim is untouched, nothing was failed or removed.
    let job = fx.job(id);
    assert_eq!(
        (job.status, job.process, job.failure_reason),
        (JobStatus::NoStart, 0, None)
    );
    assert!(fx.set(id).is_none());
    assert!(exec.discarded.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_ended_by_recovery_meanwhile_is_not_written_over() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    let id = fx.queue("resume");
    // A long lease: the heartbeat does not notice before the next progress write does.
    let pool = fx.pool(exec.clone(), 30);
    common::wait_for("uploading", || fx.job(id).status == JobStatus::Uploading).await;
    // As another server's crash recovery would, once this worker stalled past its lease.
    let lapsed = SystemClock.now() + SignedDuration::from_secs(60);
    let taken = fx
        .store
        .inner
        .fail_abandoned_job(id, "interrupted: recovered elsewhere", lapsed)
        .unwrap();
    assert!(taken.is_some(), "the lease had lapsed at that time");
    exec.resume.store(true, Ordering::SeqCst);
    common::wait_for("the backup to stop", || {
        exec.late_report.lock().unwrap().is_some()
    })
    .await;
    let late = exec.late_report.lock().unwrap().take().unwrap();
    assert!(matches!(late, Err(JobError::LeaseLost)), "{late:?}");
    pool.stop().await;
    let after = fx.job(id);
    assert_eq!(after.status, JobStatus::Failed);
    assert_eq!(
        after.failure_reason.as_deref(),
        Some("interrupted: recovered elsewhere")
    );
    assert!(
        exec.discarded.lock().unwrap().is_empty(),
        "the job's data belongs to whoever ended it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_never_waits_on_a_failing_store_and_the_next_start_ends_the_job() {
    let fx = fixture();
    let exec = Arc::new(Scripted::default());
    let id = fx.queue("hang");
    let pool = fx.pool(exec.clone(), 1);
    common::wait_for("uploading", || fx.job(id).status == JobStatus::Uploading).await;
    fx.store.faults.end_job.store(u32::MAX, Ordering::SeqCst);
    let stopping = Instant::now();
    pool.stop().await;
    let took = stopping.elapsed();
    // Retrying the end would take about 11 s; shutdown tries once.
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    assert_eq!(fx.job(id).status, JobStatus::Uploading, "left for recovery");

    // The next server recovers it once the lease has run out.
    fx.store.faults.end_job.store(0, Ordering::SeqCst);
    let next = fx.pool(exec.clone(), 1);
    common::wait_for("recovered", || fx.job(id).status == JobStatus::Failed).await;
    let reason = fx.job(id).failure_reason.unwrap();
    assert!(reason.starts_with("interrupted"), "{reason}");
    next.stop().await;
}
