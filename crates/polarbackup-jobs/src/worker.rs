//! The worker pool: recovery, claiming under a lease, heartbeats, ending jobs, deletions.

use crate::blocking;
use crate::executor::{Completed, Executor, JobContext};
use crate::progress::Progress;
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::{BackupJob, BackupJobId, BackupSet, BackupSetStatus, Clock, JobStatus};
use polarbackup_store::Store;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

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
}

impl WorkerConfig {
    /// The `poll` that `serve` uses: a wake-up normally comes first.
    pub const IDLE_POLL: Duration = Duration::from_secs(2);
}

struct Pool {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    executor: Arc<dyn Executor>,
    config: WorkerConfig,
    /// Unique per process start, so a restarted server never mistakes old leases for its own.
    id: String,
}

/// Starts the pool. It stops claiming when `shutdown` fires, cancels running backups (which
/// end as Failed, their data removed), and returns when all of them have ended.
pub fn start(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    executor: Arc<dyn Executor>,
    config: WorkerConfig,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let pool = Arc::new(Pool {
        store,
        clock,
        executor,
        config,
        id: format!("worker-{}", uuid::Uuid::new_v4()),
    });
    tokio::spawn(async move { pool.run(wake, shutdown).await })
}

impl Pool {
    async fn run(self: Arc<Self>, wake: Arc<Notify>, shutdown: CancellationToken) {
        info!(worker = %self.id, concurrency = self.config.concurrency, "workers started");
        let mut running: JoinSet<()> = JoinSet::new();
        let mut swept_orphans = false;
        loop {
            if let Err(e) = self.housekeeping(!swept_orphans, running.len()).await {
                warn!(error = %e, "housekeeping failed; retrying later");
            } else {
                swept_orphans = true;
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

    async fn claim(&self) -> Result<Option<BackupJob>, String> {
        let store = self.store.clone();
        let id = self.id.clone();
        let now = self.clock.now();
        let until = now.checked_add(self.config.lease).unwrap_or(now);
        blocking(move || store.claim_job(&id, until, now)).await
    }

    /// Fails jobs whose worker died (ending a cluster deletion's final backup this way aborts
    /// that deletion), finishes interrupted deletions and, once per start, removes stored data
    /// that no job or set owns.
    async fn housekeeping(&self, sweep_orphans: bool, running: usize) -> Result<(), String> {
        if self.config.scheduler {
            let store = self.store.clone();
            let clock = self.clock.clone();
            blocking(move || crate::scheduler::tick(store.as_ref(), clock.as_ref())).await?;
        }
        let store = self.store.clone();
        let now = self.clock.now();
        for mut job in blocking(move || store.abandoned_jobs(now)).await? {
            warn!(job = %job.id, status = %job.status, "recovering a backup whose worker stopped");
            let reason = "interrupted: the server stopped while this backup was running";
            self.discard(job.id).await?;
            if job.fail(reason, now).is_ok() {
                let set = failed_set(&job, now);
                self.end(job, Some(set)).await?;
            }
        }
        crate::remove_marked_sets(self.store.clone(), self.executor.as_ref(), None).await?;
        if sweep_orphans && running == 0 {
            let store = self.store.clone();
            let known: HashSet<BackupJobId> = blocking(move || store.known_backup_ids())
                .await?
                .into_iter()
                .collect();
            for id in self.executor.stored_ids().await? {
                if !known.contains(&id) {
                    warn!(backup = %id, "removing stored data that no backup set owns");
                    self.discard(id).await?;
                }
            }
        }
        Ok(())
    }

    async fn discard(&self, id: BackupJobId) -> Result<(), String> {
        self.executor.discard(id).await
    }

    async fn run_job(self: Arc<Self>, job: BackupJob, cancel: CancellationToken) {
        let id = job.id;
        let store = self.store.clone();
        let cluster_id = job.cluster_id.clone();
        let cluster = match blocking(move || store.cluster(&cluster_id)).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                self.fail(job, "the cluster no longer exists".into()).await;
                return;
            }
            Err(e) => {
                // The lease will run out and recovery will end the job.
                error!(job = %id, error = %e, "cannot load the job's cluster");
                return;
            }
        };
        info!(job = %id, cluster = %cluster.id, "backup started");
        let ctx = JobContext {
            job_id: id,
            cluster,
            progress: Progress::new(job, self.store.clone(), self.clock.clone()),
            cancel: cancel.clone(),
        };
        // A lost lease cancels the token; the executor then stops and cleans up by itself,
        // rather than being dropped mid-write.
        let heartbeat = tokio::spawn(self.clone().heartbeat(id, cancel.clone()));
        let outcome = self.executor.backup(&ctx).await;
        heartbeat.abort();
        let job = ctx.progress.job();
        match outcome {
            Ok(done) => self.finish(job, done).await,
            Err(reason) => self.fail(job, reason).await,
        }
    }

    /// Renews the lease every third of its length; returns (and so cancels the backup) only
    /// when the lease is lost.
    async fn heartbeat(self: Arc<Self>, id: BackupJobId, cancel: CancellationToken) {
        let every = Duration::from_millis((self.config.lease.as_millis() / 3).max(100) as u64);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return std::future::pending().await,
                () = tokio::time::sleep(every) => {}
            }
            let store = self.store.clone();
            let worker = self.id.clone();
            let now = self.clock.now();
            let until = now.checked_add(self.config.lease).unwrap_or(now);
            match blocking(move || store.renew_lease(id, &worker, until)).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!(job = %id, "lease lost; stopping the backup");
                    cancel.cancel();
                    return;
                }
                Err(e) => warn!(job = %id, error = %e, "heartbeat failed; will retry"),
            }
        }
    }

    async fn finish(&self, mut job: BackupJob, done: Completed) {
        let now = self.clock.now();
        if let Err(e) = job.advance(JobStatus::Finished, 100, now) {
            let reason = format!("internal error: {e}");
            return self.fail(job, reason).await;
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
        };
        let id = job.id;
        match self.end(job, Some(set)).await {
            Ok(()) => {
                info!(job = %id, size = done.size, stored = done.stored_size, "backup finished")
            }
            Err(e) => {
                error!(job = %id, error = %e, "could not record the finished backup; recovery will end it")
            }
        }
    }

    /// Removes what the failed backup stored, then records the failure with its reason.
    async fn fail(&self, mut job: BackupJob, reason: String) {
        let id = job.id;
        warn!(job = %id, reason = %reason, "backup failed");
        if let Err(e) = self.discard(id).await {
            error!(job = %id, error = %e, "could not remove a failed backup's data; the next start retries");
        }
        let now = self.clock.now();
        if job.fail(reason, now).is_err() {
            return;
        }
        let set = failed_set(&job, now);
        if let Err(e) = self.end(job, Some(set)).await {
            error!(job = %id, error = %e, "could not record the failure; recovery will end the job");
        }
    }

    async fn end(&self, job: BackupJob, set: Option<BackupSet>) -> Result<(), String> {
        let store = self.store.clone();
        blocking(move || store.end_job(&job, set.as_ref())).await
    }
}

/// A failed job is listed by DescribeBackups as `Failed`, never available.
fn failed_set(job: &BackupJob, now: Timestamp) -> BackupSet {
    BackupSet {
        id: job.id,
        cluster_id: job.cluster_id.clone(),
        mode: job.mode,
        status: BackupSetStatus::Failed,
        start_time: job.start_time,
        end_time: now,
        consistent_time: None,
        size: 0,
        stored_size: 0,
        comment: None,
    }
}
