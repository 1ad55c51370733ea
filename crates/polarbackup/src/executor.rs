//! The jobs' executor: PostgreSQL backups by the engine, into the repository (and, under
//! `serve --test-controls`, the injected faults that fail or slow them).

use crate::test_controls::Faults;
use polarbackup_engine::pg::{ConnectConfig, PgHost, TlsMode};
use polarbackup_engine::{backup, BackupRequest, EngineError, Phase, ProgressSink};
use polarbackup_jobs::CancellationToken;
use polarbackup_jobs::{BoxFuture, Completed, Executor, JobContext, JobError, Progress};
use polarbackup_model::{
    BackupJobId, Clock, Cluster, DbClusterId, JobStatus, TlsMode as ClusterTls, WalRange,
};
use polarbackup_repo::Repo;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::warn;

pub struct PgExecutor {
    pub repo: Repo,
    /// Private working space (WAL on its way into the repository).
    pub scratch: PathBuf,
    /// The engine's time source (a backup's consistent time, when the database sent none):
    /// the wall clock, as the database's own is.
    pub clock: Arc<dyn Clock>,
    /// The progress deadline (`--stall-secs`).
    pub stall: Duration,
    /// Injected faults (`serve --test-controls` only; `None` in production).
    pub faults: Option<Arc<Faults>>,
}

/// Maps engine phases onto the job's lifecycle; under test controls, also fails or slows
/// the backup as the fault plan says.
struct JobSink<'a> {
    progress: &'a Progress,
    cluster: &'a DbClusterId,
    faults: Option<&'a Faults>,
    /// Stops the engine when an injected fault fires (a child of the job's token).
    stop: CancellationToken,
    /// The injected fault's reason, once one fired: the job's failure reason.
    fired: Mutex<Option<String>>,
    /// When the upload began, for `--slow-mibps`.
    upload_started: Mutex<Option<Instant>>,
}

impl JobSink<'_> {
    async fn enter(&self, status: JobStatus, process: u8) {
        if self.progress.job().status != status {
            if let Err(e) = self.progress.phase(status, process).await {
                warn!(error = %e, "progress not recorded");
            }
        }
        self.inject(status);
    }

    async fn fraction(&self, status: JobStatus, done: u64, total: u64) {
        self.enter(status, status.process_range().0).await;
        if let Err(e) = self.progress.fraction(done, total).await {
            warn!(error = %e, "progress not recorded");
        }
    }

    /// The backup is in `status` (recorded): if a fault waits there, it fails here, through
    /// the engine's own cancellation and cleanup.
    fn inject(&self, status: JobStatus) {
        let Some(faults) = self.faults else { return };
        let mut fired = self.fired.lock().unwrap_or_else(|e| e.into_inner());
        if fired.is_some() {
            return;
        }
        if let Some(reason) = faults.fire(self.cluster, status) {
            warn!(cluster = %self.cluster, phase = %status.as_str(), %reason, "test controls: failing the backup");
            *fired = Some(reason);
            self.stop.cancel();
        }
    }

    /// `--slow-mibps`: waits until `done` bytes are no more than the rate allows.
    async fn throttle(&self, done: u64) {
        let Some(rate) = self.faults.and_then(|f| f.slow_rate(self.cluster)) else {
            return;
        };
        let started = *self
            .upload_started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
        let due = Duration::from_secs_f64(done as f64 / rate as f64);
        let wait = due.saturating_sub(started.elapsed());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.stop.cancelled() => {}
        }
    }

    fn fired(&self) -> Option<String> {
        self.fired.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ProgressSink for JobSink<'_> {
    fn report(
        &self,
        phase: Phase,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            match phase {
                Phase::Preparing => self.enter(JobStatus::Preparing, 1).await,
                Phase::Waiting => self.enter(JobStatus::Waiting, 5).await,
                Phase::Uploading { done, total } => {
                    self.fraction(JobStatus::Uploading, done, total).await;
                    self.throttle(done).await;
                }
                Phase::Checking { done, total } => {
                    self.fraction(JobStatus::Checking, done, total).await;
                }
            }
        })
    }
}

/// How the engine reaches a cluster (backups, the archiver, dropping its slot).
pub fn connect_config(cluster: &Cluster) -> ConnectConfig {
    let spec = &cluster.spec;
    let mut source = ConnectConfig::new(PgHost::parse(&spec.host), spec.port, spec.user.clone());
    source.password = spec.password.clone();
    source.database = spec.database.clone();
    source.tls = tls_mode(spec.tls_mode);
    source.tls_ca_file = spec.tls_ca_file.as_ref().map(PathBuf::from);
    source
}

/// The cluster's sslmode → the client's mode (libpq's meanings: only verify-full checks).
fn tls_mode(mode: ClusterTls) -> TlsMode {
    match mode {
        ClusterTls::Disable => TlsMode::Disable,
        ClusterTls::Prefer => TlsMode::PreferNoVerify,
        ClusterTls::Require => TlsMode::RequireNoVerify,
        ClusterTls::VerifyFull => TlsMode::Require,
    }
}

/// A cancelled backup stops as the worker asked; any other failure is the job's reason.
pub fn job_error(e: EngineError) -> JobError {
    match e {
        EngineError::Cancelled => JobError::Cancelled,
        e => JobError::Backup(e.to_string()),
    }
}

/// The id of the set the engine says it built on: a job id, as it was handed over.
fn parent_id(s: &str) -> Result<BackupJobId, JobError> {
    s.parse::<u64>()
        .map(BackupJobId)
        .map_err(|_| JobError::Internal(format!("the engine named parent set {s:?}, not a set id")))
}

fn repo_error(e: polarbackup_repo::RepoError) -> JobError {
    JobError::Backup(e.to_string())
}

impl Executor for PgExecutor {
    fn backup<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Completed, JobError>> {
        Box::pin(async move {
            let source = connect_config(&ctx.cluster);
            let id = ctx.job_id.to_string();
            let sink = JobSink {
                progress: &ctx.progress,
                cluster: &ctx.cluster.id,
                faults: self.faults.as_deref(),
                stop: ctx.cancel.child_token(),
                fired: Mutex::new(None),
                upload_started: Mutex::new(None),
            };
            let outcome = backup(BackupRequest {
                backup_id: &id,
                source: &source,
                repo: &self.repo,
                scratch: &self.scratch,
                progress: &sink,
                cancel: &sink.stop,
                clock: self.clock.clone(),
                stall: self.stall,
                parent: ctx.parent.as_ref().map(|s| s.id.to_string()),
            })
            .await;
            // An injected fault fails the job like any failure: the worker records the reason,
            // then removes whatever the backup stored.
            if let Some(reason) = sink.fired() {
                return Err(JobError::Backup(reason));
            }
            let summary = outcome.map_err(job_error)?;
            let parent = summary.parent.as_deref().map(parent_id).transpose()?;
            Ok(Completed {
                parent,
                size: summary.raw_bytes,
                stored_size: summary.stored_bytes,
                consistent_time: Some(summary.consistent_time),
                wal: WalRange {
                    timeline: summary.timeline,
                    start: summary.start_lsn,
                    end: summary.end_lsn,
                },
            })
        })
    }

    fn discard(&self, id: BackupJobId) -> BoxFuture<'_, Result<(), JobError>> {
        Box::pin(async move { self.repo.delete(&id.to_string()).await.map_err(repo_error) })
    }

    fn stored_ids(&self) -> BoxFuture<'_, Result<Vec<BackupJobId>, JobError>> {
        Box::pin(async move {
            let ids = self.repo.list_backup_ids().await.map_err(repo_error)?;
            Ok(ids
                .iter()
                .filter_map(|s| {
                    let parsed = BackupJobId::parse(s).ok();
                    if parsed.is_none() {
                        warn!(id = %s, "repository holds a backup id polarbackup did not make");
                    }
                    parsed
                })
                .collect())
        })
    }
}
