//! Restore to a point in time: the plan's full backup (restored exactly as [`restore`] does),
//! the archived WAL after it written into the data directory, and PostgreSQL's recovery
//! settings, so that a plain `pg_ctl start` replays to the target and opens read-write.

mod decide;
mod recovery_conf;
mod wal_files;

use crate::restore::{restore, RestoreRequest, RestoreSummary};
use crate::EngineError;
use jiff::Timestamp;
use polarbackup_model::log_backup::RestorePlan;
use polarbackup_repo::Repo;
use std::path::{Path, PathBuf};
use tracing::info;

/// The directory inside the data directory that holds the restored WAL; `restore_command`
/// copies from it by a relative path (PostgreSQL runs it in the data directory), so the data
/// directory can be moved.
pub const WAL_DIR: &str = "polarbackup_wal";

pub struct PitrRequest<'a> {
    pub plan: &'a RestorePlan,
    pub repo: &'a Repo,
    /// The data directory to create: absent or empty, as for [`restore`].
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
/// plan comes before anything is written.
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

    let base_progress = |done: u64, total: u64| (req.progress)(done, total + wal_total);
    let base = restore(RestoreRequest {
        repo: req.repo,
        backup_id: &backup_id,
        target: req.target_dir,
        tablespace_mapping: req.tablespace_mapping,
        progress: &base_progress,
    })
    .await?;
    let total = base.bytes + wal_total;
    let archive = req.target_dir.join(WAL_DIR);
    let wal_progress = |done: u64| (req.progress)(base.bytes + done, total);
    let wal_bytes = wal_files::write_all(
        req.repo,
        files,
        &archive,
        seg_size,
        system_id,
        &wal_progress,
    )
    .await?;

    let target = match plan.target_time {
        None => ConfiguredTarget::EndOfWal { requested: None },
        Some(t) => {
            let data_dir = req.target_dir.to_path_buf();
            let timeline = plan.timeline;
            let found = tokio::task::spawn_blocking(move || {
                decide::first_end_after(&data_dir, &archive, timeline, seg_size, range.end, t)
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
    (req.progress)(total, total);
    Ok(PitrSummary {
        base,
        wal_files,
        wal_bytes,
        timeline: plan.timeline,
        target,
    })
}
