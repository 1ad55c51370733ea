//! `polarbackup restore`: a verified backup set, or a cluster as it was at an instant (its
//! newest usable full backup before it and the archived WAL after), into an empty PostgreSQL
//! data directory, with a progress bar on a terminal and plain progress lines otherwise.

use crate::cli::RestoreArgs;
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use polarbackup_engine::{
    restore, restore_to_point, ConfiguredTarget, EngineError, PitrRequest, RestoreRequest, WAL_DIR,
};
use polarbackup_model::log_backup::{plan_restore, RecoveryTarget, RestorePlan};
use polarbackup_model::{BackupJobId, BackupSetStatus, DbClusterId};
use polarbackup_store::prelude::*;
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// What the command line asks for, checked against the metadata store.
enum Source {
    Backup(BackupJobId),
    Point {
        plan: Box<RestorePlan>,
        /// As given: an instant or `latest`.
        asked: String,
    },
}

pub fn run(args: RestoreArgs) -> Result<()> {
    let mapping = tablespace_mapping(&args.tablespace_mapping)?;
    let locations = args.data.locations()?;
    let store = locations.open_store()?;
    let store = store.as_ref();
    // Everything is decided before anything is written.
    let source = match (&args.backup_id, &args.cluster, &args.recovery_time) {
        (Some(id), _, _) => Source::Backup(checked_set(store, id)?),
        (None, Some(cluster), Some(time)) => Source::Point {
            plan: Box::new(plan(store, cluster, time)?),
            asked: time.clone(),
        },
        _ => bail!("give --backup-id, or --cluster with --recovery-time"),
    };
    let repo = locations.open_repo()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let reporter = Reporter::new();
    let progress = |done: u64, total: u64| reporter.update(done, total);
    let started = Instant::now();
    let target = &args.target_dir;
    match source {
        Source::Backup(id) => {
            let summary = runtime.block_on(restore(RestoreRequest {
                repo: &repo,
                backup_id: &id.to_string(),
                target,
                tablespace_mapping: &mapping,
                progress: &progress,
                keep_partial: args.keep_partial,
            }));
            reporter.finish();
            let summary = summary?;
            eprintln!(
                "restored backup {id} into {} ({})",
                target.display(),
                rate(summary.bytes, started)
            );
            println!(
                "{}",
                json!({"BackupId": id.to_string(), "TargetDir": target, "Bytes": summary.bytes})
            );
        }
        Source::Point { mut plan, asked } => {
            let mut attempt = 1;
            // Set when an object the plan named is gone yet still recorded: lost, not replaced.
            let mut missing = false;
            let summary = loop {
                let summary = runtime.block_on(restore_to_point(PitrRequest {
                    plan: &plan,
                    repo: &repo,
                    target_dir: target,
                    tablespace_mapping: &mapping,
                    progress: &progress,
                    keep_partial: args.keep_partial,
                }));
                match summary {
                    Err(EngineError::WalReplaced(key)) if attempt < REPLAN_ATTEMPTS => {
                        let cluster = args.cluster.as_deref().unwrap_or_default();
                        let replanned = self::plan(store, cluster, &asked)?;
                        if replanned.wal.iter().any(|w| w.object.key == key) {
                            missing = true;
                            break Err(EngineError::WalReplaced(key));
                        }
                        // A running archiver replaced a partial segment by a longer copy
                        // after the plan was made: plan again on the newer records.
                        eprintln!(
                            "{key} was replaced by a longer copy while restoring (the cluster \
                             is being archived); planning again"
                        );
                        clear_restored(target, &mapping)?;
                        *plan = replanned;
                        attempt += 1;
                    }
                    other => break other,
                }
            };
            reporter.finish();
            let summary = summary.map_err(|e| match e {
                EngineError::WalReplaced(key) if missing => {
                    let outcome = if args.keep_partial {
                        format!(
                            "the incomplete restore is kept for inspection in {} (it has no \
                             global/pg_control, so PostgreSQL will not start on it)",
                            target.display()
                        )
                    } else {
                        "the incomplete restore was removed".to_owned()
                    };
                    anyhow!(
                        "WAL object {key} is missing from the repository, though the metadata \
                         store records it; {outcome}"
                    )
                }
                EngineError::WalReplaced(_) if args.keep_partial => anyhow!(
                    "{e} (tried {REPLAN_ATTEMPTS} times); the incomplete restore is kept for \
                     inspection in {} (it has no global/pg_control, so PostgreSQL will not \
                     start on it)",
                    target.display()
                ),
                // The engine removed what it wrote.
                EngineError::WalReplaced(_) => anyhow!(
                    "{e} (tried {REPLAN_ATTEMPTS} times); the incomplete restore was removed"
                ),
                e => e.into(),
            })?;
            let bytes = summary.base.bytes + summary.wal_bytes;
            let (replays_to, mode) = match summary.target {
                ConfiguredTarget::Time(t) => (format!("to {t}"), "Time"),
                ConfiguredTarget::EndOfWal { requested: None } => {
                    (format!("all archived WAL (to {})", plan.reaches), "Latest")
                }
                ConfiguredTarget::EndOfWal { requested: Some(t) } => (
                    format!(
                        "all archived WAL: nothing was committed after {t} in it, so its end is \
                         the state at {t}"
                    ),
                    "EndOfArchive",
                ),
            };
            eprintln!(
                "restored backup {} and {} WAL files into {} ({}); on start PostgreSQL replays \
                 {replays_to} on timeline {}, then opens read-write",
                plan.base.id,
                summary.wal_files,
                target.display(),
                rate(bytes, started),
                summary.timeline,
            );
            println!(
                "{}",
                json!({
                    "BackupId": plan.base.id.to_string(),
                    "TargetDir": target,
                    "Bytes": bytes,
                    "RecoveryTime": asked,
                    "RecoveryTarget": mode,
                    "Timeline": summary.timeline,
                    "WalFiles": summary.wal_files,
                    "WalDir": target.join(WAL_DIR),
                })
            );
        }
    }
    Ok(())
}

/// How often a point-in-time restore plans again when the archiver replaced a WAL object.
const REPLAN_ATTEMPTS: u32 = 3;

/// Empties what a failed restore wrote: the target and the tablespace destinations were absent
/// or empty before it (the engine checks that before writing anything).
fn clear_restored(target: &Path, mapping: &[(String, PathBuf)]) -> Result<()> {
    for dir in std::iter::once(target).chain(mapping.iter().map(|(_, to)| to.as_path())) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            let removed = if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.with_context(|| format!("clearing {} to restore again", path.display()))?;
        }
    }
    Ok(())
}

fn rate(bytes: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    let mib = bytes as f64 / (1024.0 * 1024.0);
    format!(
        "{mib:.1} MiB in {secs:.1} s, {:.0} MiB/s",
        mib / secs.max(0.001)
    )
}

fn tablespace_mapping(args: &[String]) -> Result<Vec<(String, PathBuf)>> {
    args.iter()
        .map(|m| match m.split_once('=') {
            Some((old, new)) if !old.is_empty() && !new.is_empty() => {
                Ok((old.to_owned(), PathBuf::from(new)))
            }
            _ => bail!("--tablespace-mapping takes OLDDIR=NEWDIR, got {m:?}"),
        })
        .collect()
}

/// A backup set that exists and succeeded.
fn checked_set(store: &dyn Store, id: &str) -> Result<BackupJobId> {
    let id = BackupJobId::parse(id).context("--backup-id must be a backup set id")?;
    match store.backup_set(id)? {
        Some(set) if set.status == BackupSetStatus::Success => match set.corrupt {
            Some(reason) => bail!(
                "backup set {id} was found corrupt and cannot be restored ({reason}); \
                 restore another set, or the cluster to a point in time"
            ),
            None => Ok(id),
        },
        Some(_) => bail!("backup set {id} failed and cannot be restored"),
        None => bail!("backup set {id} does not exist"),
    }
}

/// `latest`, or an RFC 3339 instant (with its offset).
fn recovery_target(time: &str) -> Result<RecoveryTarget> {
    if time.eq_ignore_ascii_case("latest") {
        return Ok(RecoveryTarget::Latest);
    }
    time.parse::<jiff::Timestamp>()
        .map(RecoveryTarget::Time)
        .map_err(|e| {
            anyhow!(
                "--recovery-time takes an RFC 3339 instant with its offset \
                 (2026-12-01T10:00:00Z) or `latest`, got {time:?}: {e}"
            )
        })
}

/// The plan of a restore of `cluster` to `time`, from the sets, WAL and gaps the store records; a
/// time outside the recovery window is refused with the window.
fn plan(store: &dyn Store, cluster: &str, time: &str) -> Result<RestorePlan> {
    let id = DbClusterId::parse(cluster)
        .map_err(|_| anyhow!("--cluster must be a cluster id (pc-…), got {cluster:?}"))?;
    let target = recovery_target(time)?;
    if store.cluster(&id)?.is_none() {
        bail!("cluster {id} does not exist");
    }
    // One snapshot, as the API's window is computed from, so the two agree.
    let inputs = store.recovery_inputs(&id)?;
    // The plan never starts from a corrupt set; say which were passed over, and why.
    let corrupt: Vec<String> = inputs
        .sets
        .iter()
        .filter_map(|s| Some(format!("backup set {} ({})", s.id, s.corrupt.as_ref()?)))
        .collect();
    let plan = plan_restore(&inputs.sets, &inputs.wal, &inputs.gaps, target).map_err(|e| {
        let skipped = if corrupt.is_empty() {
            String::new()
        } else {
            format!("; found corrupt and skipped: {}", corrupt.join(", "))
        };
        anyhow!("cannot restore cluster {id} to {time}: {e}{skipped}")
    })?;
    for s in inputs.sets.iter().filter(|s| s.id > plan.base.id) {
        if let Some(reason) = &s.corrupt {
            eprintln!(
                "backup set {} is corrupt ({reason}): restoring from the older backup set {}",
                s.id, plan.base.id
            );
        }
    }
    Ok(plan)
}

/// A bar for people, lines for logs.
enum Reporter {
    Bar(ProgressBar),
    Lines(Mutex<Option<(u64, Instant)>>),
}

impl Reporter {
    fn new() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} restoring [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            Self::Bar(bar)
        } else {
            Self::Lines(Mutex::new(None))
        }
    }

    fn update(&self, done: u64, total: u64) {
        match self {
            Self::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            Self::Lines(last) => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
                let due = match *last {
                    None => true,
                    Some((p, t)) => {
                        percent >= p + 10 || (percent > p && t.elapsed().as_secs() >= 5)
                    }
                };
                if due {
                    eprintln!("restore: {percent}% ({done} of {total} bytes)");
                    *last = Some((percent, Instant::now()));
                }
            }
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
