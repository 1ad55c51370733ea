//! Removal of backup sets hidden for deletion (DeleteBackup, retention, cluster deletion):
//! their data first, then their row, so a crash in between is finished by the next pass.

use crate::error::JobError;
use crate::executor::Executor;
use crate::store_call::blocking;
use polarbackup_model::{BackupJobId, DbClusterId};
use polarbackup_store::SetStore;
use std::sync::Arc;
use tracing::info;

/// Removes every set hidden for deletion (only `cluster`'s, when given) and returns their ids.
/// Idempotent, and safe to run from several processes at once: removing data twice is
/// harmless, and a row is forgotten only once its data is gone.
pub async fn remove_marked_sets(
    store: Arc<dyn SetStore>,
    executor: &dyn Executor,
    cluster: Option<&DbClusterId>,
) -> Result<Vec<BackupJobId>, JobError> {
    let s = store.clone();
    let mut removed = Vec::new();
    for set in blocking(move || s.pending_deletions()).await? {
        if cluster.is_some_and(|c| *c != set.cluster_id) {
            continue;
        }
        executor.discard(set.id).await?;
        let s = store.clone();
        blocking(move || s.forget_set(set.id)).await?;
        info!(backup = %set.id, "backup set deleted");
        removed.push(set.id);
    }
    Ok(removed)
}
