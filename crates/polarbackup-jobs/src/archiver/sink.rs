//! `ArchiveSink`: how an archiver records what it stored, fenced by its lease, and reports a
//! gap (which queues a full backup at once, so a new recovery window starts).

use super::seam::WalArchiver;
use crate::error::JobError;
use crate::store_call::{blocking, retrying, Backoff};
use polarbackup_model::{
    Clock, ClusterStatus, DbClusterId, JobMode, NewWalObject, TaskAction, WalGap,
};
use polarbackup_store::Store;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What became of a recorded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Recorded (or a longer copy already was): these keys' data is obsolete and the archiver
    /// deletes it.
    Kept { obsolete_keys: Vec<String> },
    /// Another server holds the cluster now: stop and write nothing more.
    LeaseLost,
}

#[derive(Clone)]
pub struct ArchiveSink {
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) cluster: DbClusterId,
    pub(super) worker: String,
    pub(super) wake: Arc<Notify>,
    /// Removes what a deleted cluster's archiver stored too late to record.
    pub(super) archiver: Arc<dyn WalArchiver>,
}

impl ArchiveSink {
    /// Records an object that is durable in the repository. Transient store failures are
    /// retried briefly, even during shutdown (the last partial is worth keeping); an error
    /// leaves the database's flush position where it was, so nothing is lost.
    pub async fn record(&self, object: NewWalObject) -> Result<RecordOutcome, JobError> {
        let store = self.store.clone();
        let clock = self.clock.clone();
        let worker = self.worker.clone();
        let own_key = object.key.clone();
        let recorded = retrying(Backoff::PROGRESS, &CancellationToken::new(), move || {
            store.record_wal(&worker, &object, clock.now())
        })
        .await?;
        Ok(match recorded {
            None => {
                self.discard_if_deleted(own_key).await;
                RecordOutcome::LeaseLost
            }
            Some(r) => {
                let mut obsolete_keys: Vec<String> =
                    r.replaced.into_iter().map(|w| w.object.key).collect();
                if r.recorded.is_none() {
                    obsolete_keys.push(own_key);
                }
                RecordOutcome::Kept { obsolete_keys }
            }
        })
    }

    /// A record refused because the cluster is deleted: `admin cluster delete` removed its
    /// WAL already, so the object just stored would stay in the repository for good. Only once
    /// Deleted (no archiver ever records for it again) and only if no record names the key
    /// (a segment stored again keeps its key), so nothing recorded loses its data.
    async fn discard_if_deleted(&self, key: String) {
        let store = self.store.clone();
        let cluster = self.cluster.clone();
        let unrecorded = key.clone();
        let orphan = blocking(move || {
            let deleted = store
                .cluster(&cluster)?
                .is_some_and(|c| c.status == ClusterStatus::Deleted);
            Ok(deleted
                && !store
                    .wal_objects(&cluster)?
                    .iter()
                    .any(|w| w.object.key == unrecorded))
        })
        .await;
        let result = match orphan {
            Ok(true) => self.archiver.delete_wal(std::slice::from_ref(&key)).await,
            Ok(false) => return,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            warn!(cluster = %self.cluster, key, error = %e, "cannot remove WAL stored after the cluster's deletion");
        }
    }

    /// Records a gap and queues an automated full backup of the cluster at once: the window
    /// cannot cross the gap, so a new one must start. Only under the archiver lease: one that
    /// lost it records nothing and stops (`LeaseLost`).
    pub async fn gap(&self, gap: WalGap) -> Result<(), JobError> {
        warn!(
            cluster = %gap.cluster_id, timeline = gap.timeline, from = %gap.from, to = %gap.to,
            reason = %gap.reason, "gap in the WAL archive; queueing a full backup"
        );
        let store = self.store.clone();
        let clock = self.clock.clone();
        let worker = self.worker.clone();
        let recorded = gap.clone();
        let held = retrying(Backoff::END, &CancellationToken::new(), move || {
            store.record_gap(&worker, &recorded, clock.now())
        })
        .await?;
        if !held {
            return Err(JobError::LeaseLost);
        }
        let store = self.store.clone();
        let cluster = self.cluster.clone();
        let now = self.clock.now();
        let job = blocking(move || {
            store.insert_job(
                &cluster,
                JobMode::Automated,
                TaskAction::NormalBackupTask,
                now,
            )
        })
        .await?;
        info!(job = %job.id, cluster = %self.cluster, "full backup queued after a gap");
        self.wake.notify_one();
        Ok(())
    }

    pub fn cluster(&self) -> &DbClusterId {
        &self.cluster
    }
}
