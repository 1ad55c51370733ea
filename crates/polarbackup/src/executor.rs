//! The jobs' executor: PostgreSQL backups by the engine, into the repository.

use polarbackup_engine::pg::{ConnectConfig, PgHost, TlsMode};
use polarbackup_engine::{backup, BackupRequest, EngineError, Phase, ProgressSink};
use polarbackup_jobs::{BoxFuture, Completed, Executor, JobContext, JobError, Progress};
use polarbackup_model::{BackupJobId, Clock, Cluster, JobStatus, TlsMode as ClusterTls, WalRange};
use polarbackup_repo::Repo;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

pub struct PgExecutor {
    pub repo: Repo,
    /// Private working space (WAL on its way into the repository).
    pub scratch: PathBuf,
    /// The engine's time source (a backup's consistent time).
    pub clock: Arc<dyn Clock>,
    /// The progress deadline (`--stall-secs`).
    pub stall: Duration,
}

/// Maps engine phases onto the job's lifecycle.
struct JobSink<'a>(&'a Progress);

impl JobSink<'_> {
    async fn enter(&self, status: JobStatus, process: u8) {
        if self.0.job().status != status {
            if let Err(e) = self.0.phase(status, process).await {
                warn!(error = %e, "progress not recorded");
            }
        }
    }

    async fn fraction(&self, status: JobStatus, done: u64, total: u64) {
        self.enter(status, status.process_range().0).await;
        if let Err(e) = self.0.fraction(done, total).await {
            warn!(error = %e, "progress not recorded");
        }
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
            let sink = JobSink(&ctx.progress);
            let summary = backup(BackupRequest {
                backup_id: &id,
                source: &source,
                repo: &self.repo,
                scratch: &self.scratch,
                progress: &sink,
                cancel: &ctx.cancel,
                clock: self.clock.clone(),
                stall: self.stall,
                parent: ctx.parent.as_ref().map(|s| s.id.to_string()),
            })
            .await
            .map_err(job_error)?;
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
