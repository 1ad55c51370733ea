//! The WAL archivers' engine: `jobs::archiver::WalArchiver` by the engine's streamer, into the
//! repository.

use crate::executor::{connect_config, job_error};
use polarbackup_engine::{
    archive, drop_archive_slot, ArchiveEnd as EngineEnd, ArchivePosition, ArchiveRequest, Recorded,
    WalSink,
};
use polarbackup_jobs::archiver::{
    ArchiveContext, ArchiveEnd, ArchiveSink, RecordOutcome, WalArchiver,
};
use polarbackup_jobs::{BoxFuture, JobError};
use polarbackup_model::{Clock, Cluster, DbClusterId, NewWalObject, WalGap};
use polarbackup_repo::Repo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct PgArchiver {
    pub repo: Repo,
    pub clock: Arc<dyn Clock>,
    pub partial_interval: Duration,
    /// The progress deadline (`--stall-secs`): a silent server ends the run, which restarts.
    pub stall: Duration,
    /// Where each running archive stands, for metrics.
    pub positions: Positions,
}

impl PgArchiver {
    /// One that only releases deleted clusters' log backups (drops slots, removes WAL) and
    /// never archives: for `admin cluster delete` and a server whose archivers are off.
    pub fn for_release(repo: Repo, clock: Arc<dyn Clock>, stall: Duration) -> Self {
        Self {
            repo,
            clock,
            partial_interval: Duration::from_secs(10),
            stall,
            positions: Positions::default(),
        }
    }
}

/// The position of every archive this server runs now; one leaves the map when its run ends
/// (so a cluster whose archiver is not running here has no lag series from this server).
#[derive(Debug, Default, Clone)]
pub struct Positions(Arc<Mutex<HashMap<DbClusterId, Arc<ArchivePosition>>>>);

impl Positions {
    /// WAL not archived yet, in bytes, per cluster whose archive runs here.
    pub fn lags(&self) -> HashMap<DbClusterId, u64> {
        self.lock()
            .iter()
            .filter_map(|(c, p)| p.lag_bytes().map(|l| (c.clone(), l)))
            .collect()
    }

    fn enter(&self, cluster: &DbClusterId) -> PositionGuard<'_> {
        let position = Arc::new(ArchivePosition::default());
        self.lock().insert(cluster.clone(), position.clone());
        PositionGuard {
            positions: self,
            cluster: cluster.clone(),
            position,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DbClusterId, Arc<ArchivePosition>>> {
        // Inserts and removes only: a poisoned map is still consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One run's entry in [`Positions`], removed when the run ends.
struct PositionGuard<'a> {
    positions: &'a Positions,
    cluster: DbClusterId,
    position: Arc<ArchivePosition>,
}

impl Drop for PositionGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.positions.lock();
        // Only our own entry: a newer run of the same cluster may have replaced it.
        if map
            .get(&self.cluster)
            .is_some_and(|p| Arc::ptr_eq(p, &self.position))
        {
            map.remove(&self.cluster);
        }
    }
}

/// The engine's sink, recording through the jobs' lease-fenced sink.
struct Sink<'a>(&'a ArchiveSink);

impl WalSink for Sink<'_> {
    fn record(&self, object: NewWalObject) -> BoxFuture<'_, Result<Recorded, String>> {
        Box::pin(async move {
            match self.0.record(object).await {
                Ok(RecordOutcome::Kept { obsolete_keys }) => Ok(Recorded::Kept { obsolete_keys }),
                Ok(RecordOutcome::LeaseLost) => Ok(Recorded::LeaseLost),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn gap(&self, gap: WalGap) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.gap(gap).await.map_err(|e| e.to_string()) })
    }
}

impl WalArchiver for PgArchiver {
    fn archive<'a>(
        &'a self,
        ctx: &'a ArchiveContext,
    ) -> BoxFuture<'a, Result<ArchiveEnd, JobError>> {
        Box::pin(async move {
            let source = connect_config(&ctx.cluster);
            let watched = self.positions.enter(&ctx.cluster.id);
            let end = archive(
                ArchiveRequest {
                    cluster: &ctx.cluster.id,
                    source: &source,
                    repo: &self.repo,
                    clock: self.clock.clone(),
                    partial_interval: self.partial_interval,
                    stall: self.stall,
                    resume: ctx.newest.as_ref(),
                    cancel: &ctx.cancel,
                    position: Some(&watched.position),
                },
                &Sink(&ctx.sink),
            )
            .await
            .map_err(job_error)?;
            Ok(match end {
                EngineEnd::Cancelled => ArchiveEnd::Cancelled,
                EngineEnd::LeaseLost => ArchiveEnd::LeaseLost,
            })
        })
    }

    fn drop_slot<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Result<bool, JobError>> {
        Box::pin(async move {
            drop_archive_slot(&connect_config(cluster), &cluster.id)
                .await
                .map_err(job_error)
        })
    }

    fn stored_wal<'a>(
        &'a self,
        cluster: &'a DbClusterId,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
        Box::pin(async move {
            self.repo
                .list_wal(cluster.as_str())
                .await
                .map_err(|e| JobError::Backup(e.to_string()))
        })
    }

    fn delete_wal<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            for key in keys {
                self.repo
                    .delete_wal(key)
                    .await
                    .map_err(|e| JobError::Backup(e.to_string()))?;
            }
            Ok(())
        })
    }
}
