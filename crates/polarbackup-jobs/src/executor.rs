//! The seam between job bookkeeping and the engine that really backs a database up.

use crate::progress::Progress;
use jiff::Timestamp;
use polarbackup_model::{BackupJobId, Cluster};
use std::future::Future;
use std::pin::Pin;
use tokio_util::sync::CancellationToken;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a worker hands the engine for one job.
pub struct JobContext {
    pub job_id: BackupJobId,
    pub cluster: Cluster,
    /// Phase and percentage reporting; every call is persisted (throttled) for pollers.
    pub progress: Progress,
    /// Fires when the lease is lost or the server shuts down: stop and return an error.
    pub cancel: CancellationToken,
}

/// A verified backup set's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub size: u64,
    pub stored_size: u64,
    pub consistent_time: Option<Timestamp>,
}

/// Runs backups and owns their stored data. Errors are human-readable reasons that end up in
/// the job's failure reason, so they must never contain secrets.
pub trait Executor: Send + Sync + 'static {
    /// Takes, stores and verifies one backup. Returns only after verification succeeded.
    fn backup<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Completed, String>>;
    /// Removes everything stored under `id`. Idempotent.
    fn discard(&self, id: BackupJobId) -> BoxFuture<'_, Result<(), String>>;
    /// Every id that has anything stored, complete or not.
    fn stored_ids(&self) -> BoxFuture<'_, Result<Vec<BackupJobId>, String>>;
}
