//! The scheduler: queues each cluster's automated backups by its policy, exactly once per slot,
//! and expires automated sets past their retention.

use polarbackup_model::policy::{due_slot, expired};
use polarbackup_model::{BackupSetStatus, Clock, JobMode};
use polarbackup_store::{Store, StoreError};
use tracing::info;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub queued: usize,
    pub expired: usize,
}

/// One pass over every Running cluster (one being deleted or deleted is neither scheduled nor
/// expired; detached sets never expire). Safe to run from several processes at once: the store
/// queues a slot only if no one has queued it (or a later one) before.
pub fn tick(store: &dyn Store, clock: &dyn Clock) -> Result<TickReport, StoreError> {
    let now = clock.now();
    let mut report = TickReport::default();
    for (cluster, policy, last) in store.schedules()? {
        if let Some(slot) = due_slot(&policy, last, now) {
            if let Some(job) = store.schedule_automated_job(&cluster, slot, now)? {
                info!(job = %job.id, %cluster, %slot, "automated backup queued");
                report.queued += 1;
            }
        }
        let sets: Vec<_> = store
            .cluster_sets(&cluster)?
            .into_iter()
            .map(|s| {
                (
                    s.id,
                    s.end_time,
                    s.mode == JobMode::Automated,
                    s.status == BackupSetStatus::Success,
                )
            })
            .collect();
        let old = expired(&policy, &sets, now);
        if !old.is_empty() {
            info!(%cluster, count = old.len(), "automated backup sets expired by retention");
            store.expire_sets(&old)?;
            report.expired += old.len();
        }
    }
    Ok(report)
}
