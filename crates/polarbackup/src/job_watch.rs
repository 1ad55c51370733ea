//! Following one backup job from the command line: the store is polled, each change of the
//! job's status and Process is printed on stderr, until the caller's condition holds or time
//! runs out (`admin backup --wait`, a LATEST `admin cluster delete`).

use anyhow::{Context, Result};
use polarbackup_model::{BackupJob, BackupJobId, DbClusterId};
use polarbackup_store::{JobFilter, Store};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(500);

/// How a watch ended.
pub enum Watched<T> {
    /// `done` answered this.
    Done(T),
    /// The timeout passed first; the job as last read.
    TimedOut(BackupJob),
}

/// Reads `job` every half second, printing `"{label} {job}: {status} {process}%"` when either
/// changed, and hands it to `done` until that answers `Some` (an error from `done` ends the
/// watch with that error) or `timeout` passed.
pub fn watch<T>(
    store: &dyn Store,
    cluster: &DbClusterId,
    job: BackupJobId,
    label: &str,
    timeout: Duration,
    mut done: impl FnMut(&BackupJob) -> Result<Option<T>>,
) -> Result<Watched<T>> {
    let deadline = Instant::now() + timeout;
    let filter = JobFilter {
        job_id: Some(job),
        mode: None,
        ended_since: jiff::Timestamp::MIN,
    };
    let mut shown = None;
    loop {
        let j = store
            .list_jobs(cluster, &filter)?
            .into_iter()
            .next()
            .with_context(|| format!("backup job {job} disappeared from the store"))?;
        if shown != Some((j.status, j.process)) {
            eprintln!("{label} {job}: {} {}%", j.status, j.process);
            shown = Some((j.status, j.process));
        }
        if let Some(answer) = done(&j)? {
            return Ok(Watched::Done(answer));
        }
        if Instant::now() >= deadline {
            return Ok(Watched::TimedOut(j));
        }
        std::thread::sleep(POLL);
    }
}
