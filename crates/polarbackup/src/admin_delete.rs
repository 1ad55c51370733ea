//! `polarbackup admin cluster delete`: releases a cluster with its backup retention (ALL,
//! LATEST, NONE), waits for a LATEST deletion's final backup, and removes deleted sets' data
//! itself, so a deletion completes without a server running (except LATEST's backup).

use crate::archiver::PgArchiver;
use crate::cli::{ClusterDeleteArgs, RetentionArg};
use crate::config;
use crate::executor::PgExecutor;
use crate::job_watch::{watch, Watched};
use anyhow::{bail, Context, Result};
use polarbackup_jobs::archiver::release_log_backup as release_log_backup_of;
use polarbackup_model::policy::RetentionOnClusterDeletion;
use polarbackup_model::{
    BackupJob, BackupJobId, BackupSet, Clock, ClusterStatus, DbClusterId, SystemClock,
};
use polarbackup_repo::Repo;
use polarbackup_store::{ClusterDeletion, DeletionRefusal, Store, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

impl RetentionArg {
    fn policy(self) -> RetentionOnClusterDeletion {
        match self {
            Self::All => RetentionOnClusterDeletion::All,
            Self::Latest => RetentionOnClusterDeletion::Latest,
            Self::None => RetentionOnClusterDeletion::None,
        }
    }
}

pub fn run(args: ClusterDeleteArgs) -> Result<Value> {
    let id = DbClusterId::parse(&args.cluster).context("--cluster")?;
    let locations = args.data.locations()?;
    let store = locations.open_store()?;
    let outcome = match store.begin_cluster_deletion(
        &id,
        args.retention.map(RetentionArg::policy),
        SystemClock.now(),
    ) {
        Err(StoreError::NotFound { .. }) => bail!("cluster {id} does not exist"),
        other => other?,
    };
    let mut summary = json!({ "DBClusterId": id.as_str() });
    let (retention, kept, deleted) = match outcome {
        Err(DeletionRefusal::ActiveJob(job)) => bail!(
            "cluster {id} has backup job {} in status {} (Process {}%): wait until it ends \
             (DescribeBackupTasks) and try again",
            job.id,
            job.status,
            job.process
        ),
        Err(DeletionRefusal::NotRunning(status)) => {
            bail!("cluster {id} is {status} already")
        }
        Ok(ClusterDeletion::Deleted {
            retention,
            kept,
            deleted,
        }) => (retention, ids(&kept), ids(&deleted)),
        Ok(ClusterDeletion::Pending { job, doomed }) => {
            summary["TempBackupJobId"] = json!(job.id.to_string());
            eprintln!(
                "cluster {id} is Deleting: final backup queued as job {} (TempBackupTask), \
                 run by the server's workers",
                job.id
            );
            if args.no_wait {
                summary["Retention"] = json!(RetentionOnClusterDeletion::Latest.as_str());
                summary["Status"] = json!(ClusterStatus::Deleting.as_str());
                return Ok(summary);
            }
            let timeout = Duration::from_secs(args.timeout);
            wait_for_final_backup(store.as_ref(), &id, job.id, timeout)?;
            (
                RetentionOnClusterDeletion::Latest,
                vec![job.id.to_string()],
                ids(&doomed),
            )
        }
    };
    let data_dir = &locations.data_dir;
    let repo = locations.open_repo()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    remove_deleted_data(&runtime, store.clone(), &id, &repo, data_dir)?;
    let (removed_logs, slot) = release_log_backup(&runtime, store, &id, &repo)?;
    summary["Retention"] = json!(retention.as_str());
    summary["DeletedBackupLogs"] = json!(removed_logs);
    summary["ReplicationSlot"] = json!(slot);
    summary["Status"] = json!(ClusterStatus::Deleted.as_str());
    summary["KeptBackupIds"] = json!(kept);
    summary["DeletedBackupIds"] = json!(deleted);
    Ok(summary)
}

fn ids(sets: &[BackupSet]) -> Vec<String> {
    sets.iter().map(|s| s.id.to_string()).collect()
}

/// Follows the final backup until it has settled the deletion.
fn wait_for_final_backup(
    store: &dyn Store,
    cluster: &DbClusterId,
    job: BackupJobId,
    timeout: Duration,
) -> Result<()> {
    let settled = |j: &BackupJob| -> Result<Option<()>> {
        let status = store
            .cluster(cluster)?
            .map(|c| c.status)
            .context("the cluster disappeared from the store")?;
        match status {
            ClusterStatus::Deleted => Ok(Some(())),
            ClusterStatus::Running => bail!(
                "deletion of cluster {cluster} aborted: its final backup (job {job}) failed: {}; \
                 the cluster is Running again and no backup set was deleted",
                j.failure_reason.as_deref().unwrap_or("no reason recorded")
            ),
            ClusterStatus::Deleting => Ok(None),
        }
    };
    match watch(store, cluster, job, "final backup", timeout, settled)? {
        Watched::Done(()) => Ok(()),
        Watched::TimedOut(j) => bail!(
            "gave up waiting after {} s: the final backup (job {job}) is {} at {}%; cluster \
             {cluster} stays Deleting and is released when the job finishes (is `polarbackup \
             serve` with workers running on this data directory?)",
            timeout.as_secs(),
            j.status,
            j.process
        ),
    }
}

/// A released cluster's log backup goes with it (logs are kept "as long as the cluster"; the
/// retained full sets restore by themselves): its WAL rows and objects are removed and the
/// replication slot is dropped on the database, so it holds no WAL any more, by the same code
/// the archivers of a running server use for a deletion made through the API. Returns the
/// number of WAL objects removed and what became of the slot (`dropped`, `absent`, or why
/// not).
fn release_log_backup(
    runtime: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    cluster: &DbClusterId,
    repo: &Repo,
) -> Result<(usize, String)> {
    let Some(c) = store.cluster(cluster)? else {
        return Ok((0, "absent".into()));
    };
    let archiver = PgArchiver::for_release(
        repo.clone(),
        Arc::new(SystemClock),
        polarbackup_engine::DEFAULT_STALL,
    );
    let done = runtime
        .block_on(release_log_backup_of(store, &archiver, &c))
        .context("removing the cluster's log backup")?;
    let slot = match done.slot {
        Ok(true) => "dropped".to_owned(),
        Ok(false) => "absent".to_owned(),
        Err(e) => {
            let name = polarbackup_model::log_backup::slot_name(cluster);
            eprintln!(
                "warning: could not drop the replication slot {name} on the database ({e}); \
                 drop it there with SELECT pg_drop_replication_slot('{name}'), or it keeps WAL"
            );
            format!("not dropped: {e}")
        }
    };
    Ok((done.removed, slot))
}

/// Removes the repository data of the cluster's sets hidden for deletion, then their rows. A
/// running server may be doing the same: both are idempotent (the repository's deletes succeed
/// on what the other removed first), and a failed attempt (a storage error) is retried.
fn remove_deleted_data(
    runtime: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    cluster: &DbClusterId,
    repo: &Repo,
    data_dir: &std::path::Path,
) -> Result<()> {
    let executor = PgExecutor {
        repo: repo.clone(),
        scratch: config::scratch_dir(data_dir),
        clock: Arc::new(SystemClock),
        // Only removes data here; never takes a backup.
        stall: polarbackup_engine::DEFAULT_STALL,
        faults: None,
    };
    let mut attempt = 0;
    loop {
        let removal = polarbackup_jobs::remove_marked_sets(store.clone(), &executor, Some(cluster));
        match runtime.block_on(removal) {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 3 => {
                attempt += 1;
                eprintln!("removing deleted backup data failed ({e}); retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => bail!(
                "cluster {cluster} is deleted, but removing its deleted backups' data failed: \
                 {e}; `polarbackup serve` finishes it on its next pass"
            ),
        }
    }
}
