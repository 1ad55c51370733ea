//! Restore to a point in time: the plan's full backup (restored exactly as
//! [`restore`](crate::restore()) does) and, at the same time, the archived WAL after it written
//! into the data directory, then PostgreSQL's recovery settings, so that a plain `pg_ctl start`
//! replays to the target and opens read-write.

mod decide;
mod recovery_conf;
mod wal_files;

use crate::restore::{self, RestoreRequest, RestoreSummary};
use crate::EngineError;
use jiff::Timestamp;
use polarbackup_model::log_backup::RestorePlan;
use polarbackup_model::Lsn;
use polarbackup_repo::Repo;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;
use tracing::info;
use wal_files::PgWalReady;

/// The directory inside the data directory that holds the restored WAL; `restore_command`
/// copies from it by a relative path (PostgreSQL runs it in the data directory), so the data
/// directory can be moved.
pub const WAL_DIR: &str = "polarbackup_wal";

pub struct PitrRequest<'a> {
    pub plan: &'a RestorePlan,
    pub repo: &'a Repo,
    /// The data directory to create: absent or empty, as for [`restore`](crate::restore()).
    pub target_dir: &'a Path,
    /// As [`RestoreRequest::tablespace_mapping`].
    pub tablespace_mapping: &'a [(String, PathBuf)],
    /// Called with (bytes written, total bytes): the base backup, then the WAL.
    pub progress: &'a (dyn Fn(u64, u64) + Send + Sync),
    /// As [`RestoreRequest::keep_partial`].
    pub keep_partial: bool,
}

/// How recovery was configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfiguredTarget {
    /// `recovery_target_time` (to the microsecond): the WAL holds a commit or abort after it,
    /// before which replay stops.
    Time(Timestamp),
    /// No target: replay every WAL record written, then promote. Either the plan asked for
    /// the latest state (`requested` is `None`), or no commit or abort after the requested
    /// time was archived, so the state at that time is the state at the end of the WAL (and
    /// PostgreSQL would refuse a target it never reaches).
    EndOfWal { requested: Option<Timestamp> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitrSummary {
    pub base: RestoreSummary,
    /// WAL files written into [`WAL_DIR`] (history files included) and their bytes on disk.
    pub wal_files: usize,
    pub wal_bytes: u64,
    /// The timeline recovery follows (`recovery_target_timeline`).
    pub timeline: u32,
    pub target: ConfiguredTarget,
}

/// Restores `plan` into `target_dir` and configures recovery to its target. Every check of the
/// plan and of the target comes before anything is written. The directory becomes startable
/// (gets its `global/pg_control`) only after every object was read and checked and recovery
/// was configured; once writing began, a failure removes what was written (or keeps it, not
/// startable, with `keep_partial`) and says so.
pub async fn restore_to_point(req: PitrRequest<'_>) -> Result<PitrSummary, EngineError> {
    let plan = req.plan;
    let backup_id = plan.base.id.to_string();
    let range = plan.base.wal.ok_or_else(|| {
        EngineError::Restore(format!(
            "backup {backup_id} has no recorded WAL position, so no WAL can be replayed after it"
        ))
    })?;
    let manifest = req.repo.manifest(&backup_id).await?.ok_or_else(|| {
        EngineError::Restore(format!("backup {backup_id} is not in the repository"))
    })?;
    let seg_size = wal_files::segment_size(&manifest.meta, &plan.wal)?;
    let system_id = manifest
        .meta
        .get("system_identifier")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| s.parse::<u64>().ok());
    let files = wal_files::plan_files(&plan.wal, seg_size)?;
    let wal_files = files.len();
    let wal_total: u64 = files.iter().map(|f| f.size).sum();
    let names: HashSet<String> = files.iter().map(|f| f.object.object.name.clone()).collect();

    let base_done = AtomicU64::new(0);
    let wal_done = AtomicU64::new(0);
    let base_progress = |done: u64, total: u64| {
        base_done.store(done, Ordering::Relaxed);
        (req.progress)(done + wal_done.load(Ordering::Relaxed), total + wal_total);
    };
    // The target is checked, then created, before the WAL directory is made in it.
    let base = restore::prepare(RestoreRequest {
        repo: req.repo,
        backup_id: &backup_id,
        target: req.target_dir,
        tablespace_mapping: req.tablespace_mapping,
        progress: &base_progress,
        keep_partial: req.keep_partial,
    })
    .await?;
    let written = base.written().clone();
    let incomplete = |e| written.fail(e, req.keep_partial);
    let total = base.total() + wal_total;
    let wal_progress = |done: u64| {
        wal_done.store(done, Ordering::Relaxed);
        (req.progress)(base_done.load(Ordering::Relaxed) + done, total);
    };
    let archive = req.target_dir.join(WAL_DIR);
    // The base and the WAL go to different places, so they are written at once: the WAL's
    // decompression and checks use the CPU that the base's writes and fsyncs leave idle, and
    // the scan for the recovery target reads the WAL while the base is still being written.
    // The first to fail stops the other, and both have ended before this goes on.
    let cancel = CancellationToken::new();
    let (base_restored, pg_wal_ready) = tokio::sync::oneshot::channel();
    let (base, wal) = tokio::join!(
        async {
            let restored = base.run(&cancel).await;
            // The scan may be waiting for the base's pg_wal/; a dropped sender tells it to stop.
            if restored.is_ok() {
                let _ = base_restored.send(());
            }
            stop_on_error(&cancel, restored)
        },
        async {
            let written = async {
                let bytes = wal_files::write_all(
                    req.repo,
                    files,
                    &archive,
                    seg_size,
                    system_id,
                    &wal_progress,
                    &cancel,
                )
                .await?;
                let target =
                    recovery_target(&req, range.end, archive.clone(), seg_size, pg_wal_ready);
                Ok((bytes, target.await?))
            };
            stop_on_error(&cancel, written.await)
        },
    );
    let ((base, startable), (wal_bytes, target)) = match (base, wal) {
        (Ok(base), Ok(wal)) => (base, wal),
        // The cause, not the other side's cancellation.
        (Err(EngineError::Cancelled), Err(e)) | (Err(e), _) | (_, Err(e)) => {
            return Err(incomplete(e));
        }
    };
    // Without its recovery settings the directory would start as the base backup alone (its
    // backup_label replayed to the backup's end), which looks like success at the wrong time:
    // pg_control comes after them.
    wal_files::check_only_planned(&archive, &names)
        .and_then(|()| recovery_conf::configure(req.target_dir, plan.timeline, &target))
        .and_then(|()| startable.commit())
        .map_err(incomplete)?;
    (req.progress)(total, total);
    Ok(PitrSummary {
        base,
        wal_files,
        wal_bytes,
        timeline: plan.timeline,
        target,
    })
}

/// Cancels the other side of the restore when this side failed by itself.
fn stop_on_error<T>(
    cancel: &CancellationToken,
    r: Result<T, EngineError>,
) -> Result<T, EngineError> {
    if matches!(&r, Err(e) if !matches!(e, EngineError::Cancelled)) {
        cancel.cancel();
    }
    r
}

/// The recovery target to configure, from the restored WAL (complete by now). `pg_wal_ready`
/// resolves once the base backup is restored, and fails if it never will be.
async fn recovery_target(
    req: &PitrRequest<'_>,
    base_end: Lsn,
    archive: PathBuf,
    seg_size: u64,
    pg_wal_ready: tokio::sync::oneshot::Receiver<()>,
) -> Result<ConfiguredTarget, EngineError> {
    let plan = req.plan;
    let Some(t) = plan.target_time else {
        return Ok(ConfiguredTarget::EndOfWal { requested: None });
    };
    let data_dir = req.target_dir.to_path_buf();
    let timeline = plan.timeline;
    let ready: PgWalReady = Box::new(move || {
        pg_wal_ready
            .blocking_recv()
            .map_err(|_| std::io::Error::other("the base backup was not restored"))
    });
    let found = tokio::task::spawn_blocking(move || {
        decide::first_end_after(&data_dir, &archive, ready, timeline, seg_size, base_end, t)
    })
    .await
    .map_err(|e| EngineError::Restore(format!("WAL scan task failed: {e}")))??;
    Ok(match found {
        Some((lsn, time)) => {
            info!(%lsn, %time, "recovery stops before this commit or abort, the first after {t}");
            ConfiguredTarget::Time(t)
        }
        None => ConfiguredTarget::EndOfWal { requested: Some(t) },
    })
}
