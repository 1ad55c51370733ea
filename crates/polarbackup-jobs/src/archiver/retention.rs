//! WAL retention: removes archived WAL that neither the log retention period nor a restore
//! into it needs (`model::log_backup::expired_wal`), rows first, then data.

use super::seam::WalArchiver;
use crate::error::JobError;
use crate::store_call::blocking;
use polarbackup_model::log_backup::expired_wal;
use polarbackup_model::{Clock, DbClusterId};
use polarbackup_store::Store;
use std::sync::Arc;
use tracing::info;

/// One retention pass over a cluster; returns how many objects went. Forgetting the rows first
/// keeps the window honest even if deleting the data then fails (the data is only orphaned).
pub async fn remove_expired_wal(
    store: Arc<dyn Store>,
    clock: &dyn Clock,
    archiver: &dyn WalArchiver,
    cluster: &DbClusterId,
) -> Result<usize, JobError> {
    let now = clock.now();
    let id = cluster.clone();
    let removed = blocking(move || {
        let policy = store.log_backup_policy(&id)?;
        let i = store.recovery_inputs(&id)?;
        let expired = expired_wal(&i.sets, &i.wal, &i.gaps, policy.retention, now);
        if expired.is_empty() {
            return Ok(Vec::new());
        }
        store.remove_wal(&id, &expired)
    })
    .await?;
    if removed.is_empty() {
        return Ok(0);
    }
    let keys: Vec<String> = removed.into_iter().map(|w| w.object.key).collect();
    info!(%cluster, count = keys.len(), "archived WAL removed by log retention");
    archiver.delete_wal(&keys).await?;
    Ok(keys.len())
}
