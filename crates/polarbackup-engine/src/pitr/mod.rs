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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;
use tracing::info;

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
/// plan and of the target comes before anything is written. Once writing began, an error says
/// that the directory holds an incomplete restore.
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
    })
    .await?;
    let total = base.total() + wal_total;
    let wal_progress = |done: u64| {
        wal_done.store(done, Ordering::Relaxed);
        (req.progress)(base_done.load(Ordering::Relaxed) + done, total);
    };
    let archive = req.target_dir.join(WAL_DIR);
    // The base and the WAL go to different places, so they are written at once: the WAL's
    // decompression and checks use the CPU that the base's writes and fsyncs leave idle. The
    // first to fail stops the other, and both have ended before this goes on.
    let cancel = CancellationToken::new();
    let (base, wal_bytes) = tokio::join!(
        async { stop_on_error(&cancel, base.run(&cancel).await) },
        async {
            let written = wal_files::write_all(
                req.repo,
                files,
                &archive,
                seg_size,
                system_id,
                &wal_progress,
                &cancel,
            )
            .await;
            stop_on_error(&cancel, written)
        },
    );
    let (base, wal_bytes) = match (base, wal_bytes) {
        (Ok(base), Ok(bytes)) => (base, bytes),
        // The cause, not the other side's cancellation.
        (Err(EngineError::Cancelled), Err(e)) | (Err(e), _) | (_, Err(e)) => {
            return Err(incomplete(req.target_dir, e));
        }
    };
    let target = configure(&req, range.end, archive, seg_size)
        .await
        .map_err(|e| incomplete(req.target_dir, e))?;
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

/// Without its recovery settings a restored directory would start as the base backup alone
/// (its backup_label replayed to the backup's end), which looks like success at the wrong time.
fn incomplete(dir: &Path, e: EngineError) -> EngineError {
    EngineError::Restore(format!(
        "{e}; {} holds an incomplete restore with no recovery configured: do not start \
         PostgreSQL on it, remove its contents before restoring again",
        dir.display()
    ))
}

/// Decides the recovery target from the restored WAL and writes the recovery settings.
async fn configure(
    req: &PitrRequest<'_>,
    base_end: Lsn,
    archive: PathBuf,
    seg_size: u64,
) -> Result<ConfiguredTarget, EngineError> {
    let plan = req.plan;
    let target = match plan.target_time {
        None => ConfiguredTarget::EndOfWal { requested: None },
        Some(t) => {
            let data_dir = req.target_dir.to_path_buf();
            let timeline = plan.timeline;
            let found = tokio::task::spawn_blocking(move || {
                decide::first_end_after(&data_dir, &archive, timeline, seg_size, base_end, t)
            })
            .await
            .map_err(|e| EngineError::Restore(format!("WAL scan task failed: {e}")))??;
            match found {
                Some((lsn, time)) => {
                    info!(%lsn, %time, "recovery stops before this commit or abort, the first after {t}");
                    ConfiguredTarget::Time(t)
                }
                None => ConfiguredTarget::EndOfWal { requested: Some(t) },
            }
        }
    };
    recovery_conf::configure(req.target_dir, plan.timeline, &target)?;
    Ok(target)
}
