//! The seam between job bookkeeping and the engine that really backs a database up.

use crate::error::JobError;
use crate::progress::Progress;
use jiff::Timestamp;
use polarbackup_model::{BackupJobId, BackupSet, Cluster, WalRange};
use std::future::Future;
use std::pin::Pin;
use tokio_util::sync::CancellationToken;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a worker hands the engine for one job.
pub struct JobContext {
    pub job_id: BackupJobId,
    pub cluster: Cluster,
    /// For an incremental job, the set to build on: the newest usable one whose whole chain is
    /// available ([`polarbackup_model::choose_parent`]), read from the store before the backup
    /// starts. `None` for a full job, or when there is no such set: take a full backup.
    pub parent: Option<BackupSet>,
    /// Phase and percentage reporting; every call is persisted (throttled) for pollers.
    pub progress: Progress,
    /// Fires when the lease is lost or the server shuts down: stop, clean up, and return an
    /// error ([`JobError::Cancelled`] when nothing else went wrong).
    pub cancel: CancellationToken,
}

/// A verified backup set's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub size: u64,
    pub stored_size: u64,
    pub consistent_time: Option<Timestamp>,
    /// Where the backup sits in the WAL.
    pub wal: WalRange,
    /// The set the engine really built this one on: `None` for a full backup (also when it
    /// was given a parent but took a full one instead). Recorded as the set's parent.
    pub parent: Option<BackupJobId>,
}

/// Runs backups and owns their stored data. A [`JobError::Backup`] becomes the job's failure
/// reason, so it must never contain a secret.
pub trait Executor: Send + Sync + 'static {
    /// Takes, stores and verifies one backup. Returns only after verification succeeded.
    fn backup<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Completed, JobError>>;
    /// Removes everything stored under `id`. Idempotent.
    fn discard(&self, id: BackupJobId) -> BoxFuture<'_, Result<(), JobError>>;
    /// Every id that has anything stored, complete or not.
    fn stored_ids(&self) -> BoxFuture<'_, Result<Vec<BackupJobId>, JobError>>;
}
