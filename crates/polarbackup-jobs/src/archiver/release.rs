//! The log-backup half of a cluster's release, shared by the archivers (for deletions made
//! through the API) and `admin cluster delete`: the replication slot is dropped and the
//! cluster's archived WAL removed, objects first, then their rows. A `Deleted` cluster with
//! WAL rows left is one whose release is unfinished, so a failed pass is simply done again.

use super::seam::WalArchiver;
use crate::error::JobError;
use crate::store_call::blocking;
use polarbackup_model::{Cluster, ClusterStatus};
use polarbackup_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What a release did.
#[derive(Debug)]
pub struct LogRelease {
    /// WAL objects whose rows were removed.
    pub removed: usize,
    /// The slot: dropped (`true`), absent (`false`), or why it could not be dropped (the
    /// database may be gone for good: that never holds the release up).
    pub slot: Result<bool, JobError>,
}

/// Releases a `Deleted` cluster's log backup. Idempotent, and safe from several processes
/// at once. An archiver still stopping may store one more object: its record is refused and
/// it removes that object itself (the cluster is `Deleted`), and drops the slot again once it
/// stopped.
pub async fn release_log_backup(
    store: Arc<dyn Store>,
    archiver: &dyn WalArchiver,
    cluster: &Cluster,
) -> Result<LogRelease, JobError> {
    let slot = archiver.drop_slot(cluster).await;
    // Everything under the cluster's prefix: recorded objects, and any an archiver stored
    // but could no longer record once the deletion began.
    let mut keys = archiver.stored_wal(&cluster.id).await?;
    let s = store.clone();
    let id = cluster.id.clone();
    let recorded = blocking(move || s.wal_objects(&id)).await?;
    keys.extend(recorded.iter().map(|w| w.object.key.clone()));
    keys.sort();
    keys.dedup();
    archiver.delete_wal(&keys).await?;
    let ids: Vec<_> = recorded.iter().map(|w| w.id).collect();
    let id = cluster.id.clone();
    let removed = blocking(move || store.remove_wal(&id, &ids)).await?.len();
    Ok(LogRelease { removed, slot })
}

/// One pass over every `Deleted` cluster whose archived WAL is still recorded (deleted
/// through the API: the workers finish what `admin cluster delete` does by itself).
pub async fn release_deleted_clusters(
    store: Arc<dyn Store>,
    archiver: &dyn WalArchiver,
) -> Result<usize, JobError> {
    let s = store.clone();
    let clusters = blocking(move || s.released_with_wal()).await?;
    let mut released = 0;
    for cluster in clusters {
        if cluster.status != ClusterStatus::Deleted {
            continue;
        }
        match release_log_backup(store.clone(), archiver, &cluster).await {
            Ok(done) => {
                released += 1;
                match &done.slot {
                    Err(e) => warn!(
                        cluster = %cluster.id,
                        error = %e,
                        removed = done.removed,
                        "released the deleted cluster's log backup, but could not drop its replication slot"
                    ),
                    Ok(_) => info!(
                        cluster = %cluster.id,
                        removed = done.removed,
                        "released the deleted cluster's log backup and replication slot"
                    ),
                }
            }
            Err(e) => {
                warn!(cluster = %cluster.id, error = %e, "releasing the deleted cluster's log backup failed; next pass")
            }
        }
    }
    Ok(released)
}

/// Runs [`release_deleted_clusters`] every `poll` until `shutdown`: for a server whose
/// archivers are off (theirs run it on every pass), so a deleted cluster's log backup is
/// released whichever servers archive.
pub fn start_releaser(
    store: Arc<dyn Store>,
    archiver: Arc<dyn WalArchiver>,
    poll: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = release_deleted_clusters(store.clone(), archiver.as_ref()).await {
                warn!(error = %e, "could not look for deleted clusters to release");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(poll) => {}
            }
        }
    })
}
