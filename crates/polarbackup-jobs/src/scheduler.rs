//! The scheduler: queues each cluster's automated backups by its policy, exactly once per slot,
//! full or incremental by the cluster's schedule of full backups, and expires automated sets
//! past their retention (but never the sets a kept incremental set is built on).

use polarbackup_model::policy::{due_slot, expired, kind_for_slot, spare_parents, FullBackupEvery};
use polarbackup_model::{choose_parent, BackupKind, BackupSetStatus, Clock, JobMode};
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
/// queues a slot only if no one has queued it (or a later one) before. A due slot's job is
/// full or incremental by [`kind_for_slot`] over the cluster's setting (`default` when it has
/// none) and the slot scheduled before it, and full anyway when the cluster has no set an
/// incremental one could build on ([`choose_parent`]): its first slot, or after the week's full
/// backup failed with nothing older left. The job's kind then says what the engine will take.
pub fn tick(
    store: &dyn Store,
    clock: &dyn Clock,
    default: FullBackupEvery,
) -> Result<TickReport, StoreError> {
    let now = clock.now();
    let mut report = TickReport::default();
    for (cluster, policy, last) in store.schedules()? {
        let listed = store.cluster_sets(&cluster)?;
        if let Some(slot) = due_slot(&policy, last, now) {
            let every = store
                .cluster(&cluster)?
                .and_then(|c| c.full_backup_every)
                .unwrap_or(default);
            let kind = match kind_for_slot(every, slot, last) {
                BackupKind::Incremental if choose_parent(&listed).is_none() => BackupKind::Full,
                kind => kind,
            };
            if let Some(job) = store.schedule_automated_job(&cluster, slot, kind, now)? {
                info!(job = %job.id, %cluster, %slot, %kind, "automated backup queued");
                report.queued += 1;
            }
        }
        let sets: Vec<_> = listed
            .iter()
            .map(|s| {
                (
                    s.id,
                    s.end_time,
                    s.mode == JobMode::Automated,
                    s.status == BackupSetStatus::Success,
                )
            })
            .collect();
        let old = spare_parents(&listed, &expired(&policy, &sets, now));
        if !old.is_empty() {
            info!(%cluster, count = old.len(), "automated backup sets expired by retention");
            store.expire_sets(&old)?;
            report.expired += old.len();
        }
    }
    Ok(report)
}
