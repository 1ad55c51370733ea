//! The seam between the archivers' bookkeeping and the engine that streams WAL.

use super::sink::ArchiveSink;
use crate::error::JobError;
use crate::executor::BoxFuture;
use polarbackup_model::log_backup::NewWalObject;
use polarbackup_model::{Cluster, DbClusterId, Lsn};
use tokio_util::sync::CancellationToken;

/// What a supervisor hands the engine for one cluster.
pub struct ArchiveContext {
    pub cluster: Cluster,
    /// The newest durable segment or partial the store holds (on the newest timeline, reaching
    /// furthest): streaming resumes at its end, and it is the archive's own database system
    /// that the server must be. `None` before the first.
    pub newest: Option<NewWalObject>,
    /// Records stored objects and gaps under this server's lease.
    pub sink: ArchiveSink,
    /// Fires on shutdown or a lost lease: store what is in hand (best effort) and return.
    pub cancel: CancellationToken,
}

impl ArchiveContext {
    /// Where the archive ends: (timeline, end LSN) of [`ArchiveContext::newest`].
    pub fn resume(&self) -> Option<(u32, Lsn)> {
        self.newest.as_ref().map(|o| (o.timeline, o.end))
    }
}

/// Why an archiver returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveEnd {
    Cancelled,
    LeaseLost,
}

/// Streams a cluster's WAL into the repository and owns the stored objects.
pub trait WalArchiver: Send + Sync + 'static {
    /// Runs until cancelled, the lease is lost, or a failure (the supervisor retries with
    /// backoff). Every object goes through `ctx.sink` before the database may drop its WAL.
    fn archive<'a>(
        &'a self,
        ctx: &'a ArchiveContext,
    ) -> BoxFuture<'a, Result<ArchiveEnd, JobError>>;
    /// Every stored WAL object key of a cluster, recorded or not.
    fn stored_wal<'a>(
        &'a self,
        cluster: &'a DbClusterId,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>>;
    /// Removes stored WAL objects by key. Idempotent.
    fn delete_wal<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), JobError>>;
    /// Drops the cluster's replication slot on the database (its cluster was deleted); false
    /// when there was none.
    fn drop_slot<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Result<bool, JobError>>;
}
