//! The WAL archivers' engine: `jobs::archiver::WalArchiver` by the engine's streamer, into the
//! repository.

use crate::executor::{connect_config, job_error};
use polarbackup_engine::{
    archive, drop_archive_slot, ArchiveEnd as EngineEnd, ArchiveRequest, Recorded, WalSink,
};
use polarbackup_jobs::archiver::{
    ArchiveContext, ArchiveEnd, ArchiveSink, RecordOutcome, WalArchiver,
};
use polarbackup_jobs::{BoxFuture, JobError};
use polarbackup_model::{Clock, Cluster, DbClusterId, NewWalObject, WalGap};
use polarbackup_repo::Repo;
use std::sync::Arc;
use std::time::Duration;

pub struct PgArchiver {
    pub repo: Repo,
    pub clock: Arc<dyn Clock>,
    pub partial_interval: Duration,
    /// The progress deadline (`--stall-secs`): a silent server ends the run, which restarts.
    pub stall: Duration,
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
            let end = archive(
                ArchiveRequest {
                    cluster: &ctx.cluster.id,
                    source: &source,
                    repo: &self.repo,
                    clock: self.clock.clone(),
                    partial_interval: self.partial_interval,
                    stall: self.stall,
                    resume: ctx.resume,
                    cancel: &ctx.cancel,
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
