//! The worker pool: recovery, claiming under a lease, heartbeats, ending jobs, deletions.

use crate::busy::PoolStats;
use crate::error::JobError;
use crate::executor::{Completed, Executor, JobContext};
use crate::lease::Lease;
use crate::progress::Progress;
use crate::store_call::{blocking, job_write, retrying, Backoff};
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::policy::FullBackupEvery;
use polarbackup_model::{
    chain_available, choose_parent, BackupJob, BackupJobId, BackupKind, BackupSet, BackupSetStatus,
    Clock, JobStatus,
};
use polarbackup_store::{failed_set, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The reason a job whose worker stopped heart-beating ends with.
const INTERRUPTED: &str = "interrupted: the server stopped while this backup was running";

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Backups running at once (never more than one per cluster).
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat. A crashed worker's jobs are recovered
    /// once this has passed.
    pub lease: SignedDuration,
    /// How often to look for work when nobody wakes the pool.
    pub poll: Duration,
    /// Queue automated backups by policy and expire old sets.
    pub scheduler: bool,
    /// How often stored data that no job or set owns is removed (also once at start): a failed
    /// backup whose removal failed (the object store was down) is cleaned up within this.
    pub orphan_sweep: Duration,
    /// How often an automated backup is full, for clusters without a setting of their own.
    pub full_backup_every: FullBackupEvery,
}

impl WorkerConfig {
    /// The `poll` that `serve` uses: a wake-up normally comes first.
    pub const IDLE_POLL: Duration = Duration::from_secs(2);
    /// The `orphan_sweep` that `serve` uses.
    pub const ORPHAN_SWEEP: Duration = Duration::from_secs(600);
}

struct Pool {
    store: Arc<dyn Store>,
    /// Job times, the schedule and retention.
    clock: Arc<dyn Clock>,
    /// Leases: claims, heartbeats and crash recovery. They measure real time between
    /// heartbeats that sleep in real time, so a clock moved forward under `--test-controls`
    /// never makes a live worker's lease look lapsed.
    lease_clock: Arc<dyn Clock>,
    executor: Arc<dyn Executor>,
    config: WorkerConfig,
    stats: Arc<PoolStats>,
    /// Unique per process start, so a restarted server never mistakes old leases for its own.
    /// Every write on a claimed job is fenced by it in the store.
    id: Arc<str>,
}

/// Starts the pool. It stops claiming when `shutdown` fires, cancels running backups (which
/// end as Failed, their data removed; if the store fails that last write, crash recovery on
/// the next start ends them), and returns when all of them have stopped.
pub fn start(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    executor: Arc<dyn Executor>,
    config: WorkerConfig,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let stats = Arc::default();
    let clocks = PoolClocks::one(clock);
    start_observed(store, clocks, executor, config, wake, shutdown, stats)
}

/// The clocks a pool runs on.
#[derive(Clone)]
pub struct PoolClocks {
    /// Job and set times, the schedule and retention.
    pub service: Arc<dyn Clock>,
    /// Leases: claims, heartbeats and crash recovery (the wall clock). A job that crash
    /// recovery ends carries this clock's time as its end.
    pub lease: Arc<dyn Clock>,
}

impl PoolClocks {
    /// One clock for everything (production: the wall clock).
    pub fn one(clock: Arc<dyn Clock>) -> Self {
        Self {
            lease: clock.clone(),
            service: clock,
        }
    }
}

/// [`start`], with `stats` kept up to date with the backups the pool runs, and leases timed
/// by `clocks.lease` while job times, the schedule and retention follow `clocks.service` (a
/// clock `serve --test-controls` may move forward).
pub fn start_observed(
    store: Arc<dyn Store>,
    clocks: PoolClocks,
    executor: Arc<dyn Executor>,
    config: WorkerConfig,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    stats: Arc<PoolStats>,
) -> tokio::task::JoinHandle<()> {
    let pool = Arc::new(Pool {
        store,
        clock: clocks.service,
        lease_clock: clocks.lease,
        executor,
        config,
        stats,
        id: format!("worker-{}", uuid::Uuid::new_v4()).into(),
    });
    tokio::spawn(async move { pool.run(wake, shutdown).await })
}

impl Pool {
    async fn run(self: Arc<Self>, wake: Arc<Notify>, shutdown: CancellationToken) {
        info!(worker = %self.id, concurrency = self.config.concurrency, "workers started");
        let mut running: JoinSet<()> = JoinSet::new();
        let mut last_sweep: Option<Instant> = None;
        loop {
            let sweep = last_sweep.is_none_or(|at| at.elapsed() >= self.config.orphan_sweep);
            if let Err(e) = self.housekeeping(sweep).await {
                warn!(error = %e, "housekeeping failed; retrying later");
            } else if sweep {
                last_sweep = Some(Instant::now());
            }
            while running.len() < self.config.concurrency.max(1) && !shutdown.is_cancelled() {
                match self.claim().await {
                    Ok(Some(claimed)) => {
                        let pool = self.clone();
                        let cancel = shutdown.child_token();
                        running.spawn(async move { pool.run_job(claimed, cancel).await });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %e, "could not claim a job");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        info!(running = running.len(), "workers stopping");
        while running.join_next().await.is_some() {}
    }

    async fn claim(&self) -> Result<Option<BackupJob>, JobError> {
        let store = self.store.clone();
        let id = self.id.clone();
        let now = self.lease_clock.now();
        let until = self.lease_until();
        blocking(move || store.claim_job(&id, until, now)).await
    }

    /// Fails jobs whose worker died (ending a cluster deletion's final backup this way aborts
    /// that deletion), finishes interrupted deletions and, at start and then every
    /// `orphan_sweep`, removes stored data that no job or set owns.
    ///
    /// A job is taken over (failed, its lease dropped, in one store transaction) before its data
    /// is touched: a worker that was only stalled then has every write refused, so it can never
    /// record a set whose data recovery removed, and of several servers recovering the job only
    /// one removes anything.
    async fn housekeeping(&self, sweep_orphans: bool) -> Result<(), JobError> {
        if self.config.scheduler {
            let store = self.store.clone();
            let clock = self.clock.clone();
            let every = self.config.full_backup_every;
            blocking(move || crate::scheduler::tick(store.as_ref(), clock.as_ref(), every)).await?;
        }
        let store = self.store.clone();
        let now = self.lease_clock.now();
        for job in blocking(move || store.abandoned_jobs(now)).await? {
            let store = self.store.clone();
            let taken =
                blocking(move || store.fail_abandoned_job(job.id, INTERRUPTED, now)).await?;
            // None: its worker ended or renewed it meanwhile, or another server took it.
            let Some(job) = taken else { continue };
            warn!(job = %job.id, "a backup whose worker stopped ended Failed; removing its data");
            if let Err(e) = self.discard(job.id).await {
                // Its failed set owns no data: the next orphan sweep removes it.
                error!(job = %job.id, error = %e, "could not remove an interrupted backup's data");
            }
        }
        crate::remove_marked_sets(self.store.clone(), self.executor.as_ref(), None).await?;
        if sweep_orphans {
            // Listed before the known ids are read: data stored by a job that is claimed
            // meanwhile (here or on another server) is then either not listed yet or known.
            let stored = self.executor.stored_ids().await?;
            let store = self.store.clone();
            let known: HashSet<BackupJobId> = blocking(move || store.known_backup_ids())
                .await?
                .into_iter()
                .collect();
            for id in stored {
                if !known.contains(&id) {
                    warn!(backup = %id, "removing stored data that no backup set owns");
                    self.discard(id).await?;
                }
            }
        }
        Ok(())
    }

    async fn discard(&self, id: BackupJobId) -> Result<(), JobError> {
        self.executor.discard(id).await
    }

    async fn run_job(self: Arc<Self>, job: BackupJob, cancel: CancellationToken) {
        let pool = self.clone();
        let _busy = pool.stats.enter();
        let id = job.id;
        let lease = Lease::new(cancel);
        let store = self.store.clone();
        let cluster_id = job.cluster_id.clone();
        let loaded = retrying(Backoff::PROGRESS, lease.cancel(), move || {
            store.cluster(&cluster_id)
        })
        .await;
        let cluster = match loaded {
            Ok(Some(c)) => c,
            Ok(None) => {
                self.fail(job, "the cluster no longer exists".into(), &lease)
                    .await;
                return;
            }
            Err(e) => {
                // Still NoStart: once the lease runs out, a worker claims it again.
                error!(job = %id, error = %e, "cannot load the job's cluster");
                return;
            }
        };
        let parent = match job.kind {
            BackupKind::Full => None,
            BackupKind::Incremental => {
                let store = self.store.clone();
                let cluster_id = job.cluster_id.clone();
                let sets = retrying(Backoff::PROGRESS, lease.cancel(), move || {
                    store.cluster_sets(&cluster_id)
                })
                .await;
                match sets {
                    Ok(sets) => choose_parent(&sets).cloned(),
                    Err(e) => {
                        // Still NoStart: once the lease runs out, a worker claims it again.
                        error!(job = %id, error = %e, "cannot read the cluster's backup sets");
                        return;
                    }
                }
            }
        };
        info!(
            job = %id,
            cluster = %cluster.id,
            kind = %job.kind,
            parent = ?parent.as_ref().map(|p| p.id.0),
            "backup started"
        );
        let ctx = JobContext {
            job_id: id,
            cluster,
            parent,
            progress: Progress::leased(
                job,
                self.store.clone(),
                self.clock.clone(),
                lease.clone(),
                Some(self.id.clone()),
            ),
            cancel: lease.cancel().clone(),
        };
        // A lost lease cancels the token; the executor then stops and cleans up by itself,
        // rather than being dropped mid-write. The heartbeat goes on until the job's end is
        // recorded, so retrying that write does not let the lease run out.
        let heartbeat = tokio::spawn(self.clone().heartbeat(id, lease.clone()));
        let outcome = self.executor.backup(&ctx).await;
        let job = ctx.progress.job();
        match outcome {
            // Whatever the executor says: the job's data and record are the new owner's now.
            _ if lease.is_lost() => not_recorded(id, &JobError::LeaseLost),
            Err(e @ JobError::LeaseLost) => not_recorded(id, &e),
            Ok(done) => self.finish(job, done, &lease).await,
            Err(e) => self.fail(job, e.to_string(), &lease).await,
        }
        heartbeat.abort();
    }

    /// Renews the lease every third of its length; returns (and so cancels the backup) only
    /// when the lease is lost.
    async fn heartbeat(self: Arc<Self>, id: BackupJobId, lease: Lease) {
        let every = Duration::from_millis((self.config.lease.as_millis() / 3).max(100) as u64);
        loop {
            tokio::select! {
                () = lease.cancel().cancelled() => return std::future::pending().await,
                () = tokio::time::sleep(every) => {}
            }
            let store = self.store.clone();
            let worker = self.id.clone();
            let until = self.lease_until();
            match blocking(move || store.renew_lease(id, &worker, until)).await {
                Ok(true) => {}
                Ok(false) if lease.is_ended() => return std::future::pending().await,
                Ok(false) => {
                    warn!(job = %id, "lease lost; stopping the backup");
                    lease.lose();
                    return;
                }
                Err(e) => warn!(job = %id, error = %e, "heartbeat failed; will retry"),
            }
        }
    }

    fn lease_until(&self) -> Timestamp {
        let now = self.lease_clock.now();
        now.checked_add(self.config.lease).unwrap_or(now)
    }

    async fn finish(&self, mut job: BackupJob, done: Completed, lease: &Lease) {
        if let Some(parent) = done.parent {
            match self.chain_still_usable(&job, parent, lease).await {
                Ok(true) => {}
                Ok(false) => {
                    let reason = format!(
                        "the backup set {parent} this incremental backup was built on was deleted \
                         or found corrupt while it ran; the next backup starts from another set"
                    );
                    return self.fail(job, reason, lease).await;
                }
                Err(e) => return not_recorded(job.id, &e),
            }
        }
        let now = self.clock.now();
        if let Err(e) = job.advance(JobStatus::Finished, 100, now) {
            let reason = JobError::Internal(e.to_string()).to_string();
            return self.fail(job, reason, lease).await;
        }
        let set = BackupSet {
            id: job.id,
            cluster_id: job.cluster_id.clone(),
            mode: job.mode,
            status: BackupSetStatus::Success,
            start_time: job.start_time,
            end_time: now,
            consistent_time: done.consistent_time,
            size: done.size,
            stored_size: done.stored_size,
            comment: job.comment.clone(),
            wal: Some(done.wal),
            corrupt: None,
            parent: done.parent,
        };
        let id = job.id;
        match self.end(job, set, lease).await {
            Ok(()) => {
                info!(job = %id, size = done.size, stored = done.stored_size, "backup finished")
            }
            Err(e) => not_recorded(id, &e),
        }
    }

    /// Whether `parent` and every set below it are still listed and available: retention, a
    /// DeleteBackup or a re-verification may have taken one away while the backup ran, and a
    /// set whose chain is broken must not be recorded as usable.
    async fn chain_still_usable(
        &self,
        job: &BackupJob,
        parent: BackupJobId,
        lease: &Lease,
    ) -> Result<bool, JobError> {
        let store = self.store.clone();
        let cluster = job.cluster_id.clone();
        let sets = retrying(Backoff::END, lease.cancel(), move || {
            store.cluster_sets(&cluster)
        })
        .await
        .map_err(job_write)?;
        Ok(sets
            .iter()
            .find(|s| s.id == parent)
            .is_some_and(|p| chain_available(p, &sets)))
    }

    /// Records the failure with its reason, then removes what the failed backup stored: only
    /// once the store took the end from this worker is the job, and so its data, still its own.
    async fn fail(&self, mut job: BackupJob, reason: String, lease: &Lease) {
        let id = job.id;
        warn!(job = %id, reason = %reason, "backup failed");
        let now = self.clock.now();
        if job.fail(reason, now).is_err() {
            return;
        }
        let set = failed_set(&job, now);
        if let Err(e) = self.end(job, set, lease).await {
            return not_recorded(id, &e);
        }
        if let Err(e) = self.discard(id).await {
            // Its failed set owns no data: the next orphan sweep removes it.
            error!(job = %id, error = %e, "could not remove a failed backup's data");
        }
    }

    /// Records a claimed job's end with its set, as its lease holder (refused once recovery or
    /// another worker took it), retrying a failing store (at once giving up on shutdown or a
    /// lost lease).
    async fn end(&self, job: BackupJob, set: BackupSet, lease: &Lease) -> Result<(), JobError> {
        let store = self.store.clone();
        let worker = self.id.clone();
        let ended = retrying(Backoff::END, lease.cancel(), move || {
            store.end_job(&job, Some(&set), Some(&worker))
        })
        .await
        .map_err(job_write);
        match ended {
            Ok(()) => lease.end(),
            Err(JobError::LeaseLost) => lease.lose(),
            Err(_) => {}
        }
        ended
    }
}

/// Logs why a job's end went unrecorded; the job is never lost: its new owner, or crash
/// recovery once the lease has run out, ends it.
fn not_recorded(id: BackupJobId, e: &JobError) {
    match e {
        JobError::LeaseLost => {
            warn!(job = %id, "the job was taken over by recovery or another worker; leaving it to them")
        }
        e => {
            error!(job = %id, error = %e, "could not record the job's end; crash recovery will end it")
        }
    }
}
