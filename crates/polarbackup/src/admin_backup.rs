//! `polarbackup admin backup`: queues a manual backup job (full or incremental) through the
//! store, for the workers of a running `serve`, and optionally waits for its outcome.

use crate::cli::BackupArgs;
use crate::job_watch::{watch, Watched};
use anyhow::{bail, Context, Result};
use polarbackup_model::{BackupJob, BackupJobId, Clock, DbClusterId, JobStatus, SystemClock};
use polarbackup_store::{CreateJobOutcome, ManualJobRequest, Store};
use polarbackup_wire::create_backup::MANUAL_BACKUP_LIMIT;
use serde_json::{json, Value};
use std::time::Duration;

/// Queues the job and prints `{"BackupJobId"}`; with `--wait`, prints the job's outcome
/// instead, and fails if the job failed or did not end in time.
pub fn run(args: BackupArgs) -> Result<()> {
    let id = DbClusterId::parse(&args.cluster).context("--cluster")?;
    let store = args.data.locations()?.open_store()?;
    let Some(cluster) = store.cluster(&id)? else {
        bail!("cluster {id} does not exist");
    };
    let kind = args.kind.kind();
    let request = ManualJobRequest {
        cluster: id.clone(),
        account: cluster.spec.account.clone(),
        client_token: None,
        fingerprint: String::new(),
        comment: None,
        kind,
    };
    let job = match store.create_manual_job(&request, SystemClock.now(), MANUAL_BACKUP_LIMIT)? {
        CreateJobOutcome::Created(job) => job,
        CreateJobOutcome::LimitReached => bail!(
            "cluster {id} already has {MANUAL_BACKUP_LIMIT} manual backups, finished or in \
             progress (the limit CreateBackup answers with 403 BackupTimesExceeded): delete one \
             with DeleteBackup, or wait for a running one to end, and try again"
        ),
        CreateJobOutcome::ClusterNotRunning(status) => {
            bail!("cluster {id} is {status}: only a Running cluster is backed up")
        }
        // Only a ClientToken leads to these, and this command sends none.
        CreateJobOutcome::Existing(_) | CreateJobOutcome::TokenMismatch => {
            bail!("the store answered a request without a ClientToken as if it had one")
        }
    };
    if !args.wait {
        println!("{}", json!({ "BackupJobId": job.id.to_string() }));
        return Ok(());
    }
    eprintln!(
        "backup job {} ({kind}) queued for cluster {id}; the workers of `polarbackup serve` run it",
        job.id
    );
    let timeout = Duration::from_secs(args.timeout);
    let (ended, summary) = wait(store.as_ref(), &id, job.id, timeout)?;
    println!("{summary}");
    match ended.status {
        JobStatus::Finished => Ok(()),
        JobStatus::Failed => bail!(
            "backup job {} failed: {}",
            ended.id,
            ended
                .failure_reason
                .as_deref()
                .unwrap_or("no reason recorded")
        ),
        status => bail!(
            "gave up waiting after {} s: backup job {} is {status} at {}%; it goes on in the \
             server (is `polarbackup serve` with workers running on this installation?)",
            timeout.as_secs(),
            ended.id,
            ended.process
        ),
    }
}

/// Follows the job until it ended or `timeout` passed. Returns the job as last read and the
/// JSON summary to print.
fn wait(
    store: &dyn Store,
    cluster: &DbClusterId,
    job: BackupJobId,
    timeout: Duration,
) -> Result<(BackupJob, Value)> {
    let ended = |j: &BackupJob| matches!(j.status, JobStatus::Finished | JobStatus::Failed);
    let j = match watch(store, cluster, job, "backup job", timeout, |j| {
        Ok(ended(j).then(|| j.clone()))
    })? {
        Watched::Done(j) | Watched::TimedOut(j) => j,
    };
    let set = if ended(&j) {
        store.backup_set(job)?
    } else {
        None
    };
    let summary = json!({
        "BackupJobId": job.to_string(),
        "DBClusterId": cluster.as_str(),
        "Kind": j.kind.as_str(),
        "Status": j.status.as_str(),
        "FailureReason": j.failure_reason,
        "BackupSize": set.as_ref().map(|s| s.size),
        "StoredSize": set.as_ref().map(|s| s.stored_size),
        "ParentBackupId": set.as_ref().and_then(|s| s.parent).map(|p| p.to_string()),
    });
    Ok((j, summary))
}
