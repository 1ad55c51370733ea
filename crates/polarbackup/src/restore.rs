//! `polarbackup restore`: a verified backup set into an empty PostgreSQL data directory, with
//! a progress bar on a terminal and plain progress lines otherwise.

use crate::cli::RestoreArgs;
use crate::config;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use polarbackup_engine::{restore, RestoreRequest};
use polarbackup_model::{BackupJobId, BackupSetStatus};
use polarbackup_repo::{Repo, RepoConfig};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

pub fn run(args: RestoreArgs) -> Result<()> {
    let data_dir = config::data_dir(args.data.data_dir.as_deref());
    let id = BackupJobId::parse(&args.backup_id).context("--backup-id must be a backup set id")?;
    let store = SqliteStore::open(&data_dir)
        .with_context(|| format!("opening the metadata store in {}", data_dir.display()))?;
    match store.backup_set(id)? {
        Some(set) if set.status == BackupSetStatus::Success => {}
        Some(_) => bail!("backup set {id} failed and cannot be restored"),
        None => bail!("backup set {id} does not exist"),
    }
    let repo = Repo::open_fs(&config::repo_dir(&data_dir), RepoConfig::default())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mapping = args
        .tablespace_mapping
        .iter()
        .map(|m| match m.split_once('=') {
            Some((old, new)) if !old.is_empty() && !new.is_empty() => {
                Ok((old.to_owned(), std::path::PathBuf::from(new)))
            }
            _ => bail!("--tablespace-mapping takes OLDDIR=NEWDIR, got {m:?}"),
        })
        .collect::<Result<Vec<_>>>()?;
    let reporter = Reporter::new();
    let progress = |done: u64, total: u64| reporter.update(done, total);
    let started = Instant::now();
    let summary = runtime.block_on(restore(RestoreRequest {
        repo: &repo,
        backup_id: &id.to_string(),
        target: &args.target_dir,
        tablespace_mapping: &mapping,
        progress: &progress,
    }));
    reporter.finish();
    let summary = summary?;
    let secs = started.elapsed().as_secs_f64();
    let mib = summary.bytes as f64 / (1024.0 * 1024.0);
    eprintln!(
        "restored backup {id} into {} ({mib:.1} MiB in {secs:.1} s, {:.0} MiB/s)",
        args.target_dir.display(),
        mib / secs.max(0.001)
    );
    println!(
        "{}",
        serde_json::json!({"BackupId": id.to_string(), "TargetDir": args.target_dir, "Bytes": summary.bytes})
    );
    Ok(())
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
