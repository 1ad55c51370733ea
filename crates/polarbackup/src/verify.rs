//! `polarbackup verify`: re-reads stored backup sets (as pgBackRest's `verify`) and marks the
//! corrupt ones unavailable; also the check the scrub in `serve` runs on each set.

use crate::cli::VerifyArgs;
use anyhow::{anyhow, bail, Context, Result};
use polarbackup_model::{BackupJobId, BackupSet, BackupSetStatus, Clock, DbClusterId, SystemClock};
use polarbackup_repo::{Repo, RepoError, VerifyReport, WRONG_KEY};
use polarbackup_store::prelude::*;
use std::time::{Duration, Instant};

/// What re-reading one set found.
#[derive(Debug)]
pub enum Verdict {
    /// Every object is there, with its recorded size and checksum.
    Good(VerifyReport),
    /// An object is missing, short or does not match: the object and what is wrong.
    Corrupt(String),
    /// The set could not be read (storage unreachable, a newer format): nothing is known
    /// about its data, so it is not marked.
    Unverified(String),
}

/// Re-reads every object of set `id` (manifest, every chunk of every archive, the set's WAL
/// among them, and the side files) and checks each recorded size and hash.
pub async fn check(
    repo: &Repo,
    id: BackupJobId,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Verdict {
    match repo.verify(&id.to_string(), progress).await {
        Ok(report) => Verdict::Good(report),
        // A key that does not open the manifest is a configuration fault of this server.
        Err(RepoError::Corrupt { object, reason }) if reason == WRONG_KEY => {
            Verdict::Unverified(format!("{object}: {reason}"))
        }
        Err(e @ RepoError::Corrupt { .. }) => Verdict::Corrupt(e.to_string()),
        // Only the manifest's absence reads as NotFound (objects it names map to Corrupt): a
        // listed set without one cannot be restored.
        Err(RepoError::NotFound(_)) => Verdict::Corrupt(format!(
            "corrupt object backups/{id}/manifest.json: object is missing"
        )),
        Err(e) => Verdict::Unverified(e.to_string()),
    }
}

/// Keeps reads at or under `bytes_per_sec` on average, by sleeping the calling thread (the
/// scrub's own) whenever the bytes read so far are ahead of the rate.
pub struct Throttle {
    bytes_per_sec: f64,
    started: Instant,
}

impl Throttle {
    pub fn new(bytes_per_sec: f64) -> Self {
        Self {
            bytes_per_sec,
            started: Instant::now(),
        }
    }

    /// How long to wait once `done` bytes were read, so the average stays at the rate.
    pub fn delay(&self, done: u64) -> Duration {
        let due = Duration::from_secs_f64(done as f64 / self.bytes_per_sec);
        due.saturating_sub(self.started.elapsed())
    }
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let locations = args.data.locations()?;
    let store = locations.open_store()?;
    let store = store.as_ref();
    let sets = chosen_sets(store, &args)?;
    let repo = locations.open_repo()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut bad = Vec::new();
    for set in &sets {
        let id = set.id;
        let cluster = &set.cluster_id;
        if let Some(reason) = &set.corrupt {
            // Marked before; it stays unavailable whatever a new read finds.
            println!("backup set {id} ({cluster}): corrupt (found earlier): {reason}");
            bad.push(id);
            continue;
        }
        match runtime.block_on(check(&repo, id, &mut |_, _| {})) {
            Verdict::Good(r) => println!(
                "backup set {id} ({cluster}): ok: {} archives, {} chunks, {} files, {} bytes \
                 stored",
                r.archives, r.chunks, r.files, r.stored_bytes
            ),
            Verdict::Corrupt(reason) => {
                let marked = store.mark_set_corrupt(id, &reason, SystemClock.now())?;
                println!(
                    "backup set {id} ({cluster}): {reason}{}",
                    if marked {
                        "; marked unavailable (IsAvail 0)"
                    } else {
                        ""
                    }
                );
                bad.push(id);
            }
            Verdict::Unverified(reason) => {
                println!("backup set {id} ({cluster}): could not be verified: {reason}");
                bad.push(id);
            }
        }
    }
    let good = sets.len() - bad.len();
    eprintln!("verified {} backup sets: {good} good", sets.len());
    if !bad.is_empty() {
        let ids: Vec<String> = bad.iter().map(ToString::to_string).collect();
        bail!(
            "{} of {} backup sets failed verification: {}",
            bad.len(),
            sets.len(),
            ids.join(", ")
        );
    }
    Ok(())
}

/// The sets the arguments name; a named set or cluster must exist.
fn chosen_sets(store: &dyn Store, args: &VerifyArgs) -> Result<Vec<BackupSet>> {
    if let Some(id) = &args.backup_id {
        let id = BackupJobId::parse(id).context("--backup-id must be a backup set id")?;
        return match store.backup_set(id)? {
            Some(set) if set.status == BackupSetStatus::Success => Ok(vec![set]),
            Some(_) => bail!("backup set {id} failed when it was taken: it has no data to verify"),
            None => bail!("backup set {id} does not exist"),
        };
    }
    let sets = store.verifiable_sets()?;
    match &args.cluster {
        None => Ok(sets),
        Some(cluster) => {
            let id = DbClusterId::parse(cluster)
                .map_err(|_| anyhow!("--cluster must be a cluster id (pc-…), got {cluster:?}"))?;
            if store.cluster(&id)?.is_none() {
                bail!("cluster {id} does not exist");
            }
            Ok(sets.into_iter().filter(|s| s.cluster_id == id).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_waits_until_the_bytes_read_are_due() {
        let throttle = Throttle::new(1024.0 * 1024.0);
        assert_eq!(throttle.delay(0), Duration::ZERO);
        // 10 MiB at 1 MiB/s are due after 10 s; well under that has passed.
        let wait = throttle.delay(10 * 1024 * 1024);
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10));
    }
}
