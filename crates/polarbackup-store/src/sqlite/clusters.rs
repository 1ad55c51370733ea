//! Clusters in SQLite: registration, lifecycle, deletion with its backup retention (ALL,
//! LATEST, NONE), and the end of a LATEST deletion's final backup, decided in the transaction
//! that ends the job. [`ClusterStore`] for [`SqliteStore`] (its policy half is in `policies`).

use super::jobs::{self, NON_TERMINAL};
use super::rows::{cluster_from, db_id, job_from, secs, JOB_COLUMNS};
use super::{policies, sets};
use super::{tenants, SqliteStore};
use crate::records::{ClusterDeletion, DeletionRefusal, ListedCluster};
use crate::rules::{final_set, split_on_deletion};
use crate::sealing::{password_place, Sealer};
use crate::{ids, ClusterStore, Result, StoreError};
use jiff::Timestamp;
use polarbackup_model::policy::{
    BackupPolicy, FullBackupEvery, PolicyChange, RetentionOnClusterDeletion,
};
use polarbackup_model::{
    AccountId, BackupJob, BackupKind, BackupSet, Cluster, ClusterStatus, DbClusterId, JobMode,
    NewCluster, TaskAction,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// A cluster's lifecycle state; `None` when no such cluster was ever registered.
pub fn status(c: &Connection, cluster: &DbClusterId) -> Result<Option<ClusterStatus>> {
    let s: Option<String> = c
        .query_row(
            "SELECT status FROM clusters WHERE id = ?1",
            [cluster.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    s.map(|s| {
        s.parse()
            .map_err(|()| StoreError::Corrupt(format!("cluster status {s:?}")))
    })
    .transpose()
}

/// `Ok(())` for a Running cluster, `Err(status)` for one being deleted or deleted; a cluster
/// that does not exist is an error.
pub fn require_running(
    c: &Connection,
    cluster: &DbClusterId,
) -> Result<std::result::Result<(), ClusterStatus>> {
    match status(c, cluster)? {
        Some(ClusterStatus::Running) => Ok(Ok(())),
        Some(other) => Ok(Err(other)),
        None => Err(StoreError::NotFound { what: "cluster" }),
    }
}

fn set_status(
    c: &Connection,
    cluster: &DbClusterId,
    status: ClusterStatus,
    retention: Option<RetentionOnClusterDeletion>,
    deleted_at: Option<Timestamp>,
    job: Option<&BackupJob>,
) -> Result<()> {
    c.execute(
        "UPDATE clusters SET status = ?2, deletion_retention = ?3, deleted_at = ?4,
             deletion_job = ?5
         WHERE id = ?1",
        params![
            cluster.as_str(),
            status.as_str(),
            retention.map(RetentionOnClusterDeletion::as_str),
            deleted_at.map(secs),
            job.map(|j| db_id(j.id))
        ],
    )?;
    Ok(())
}

/// Hides every listed set of `cluster` that is not detached; their data is removed like a
/// deletion's.
fn hide_attached_sets(c: &Connection, cluster: &DbClusterId) -> Result<()> {
    c.execute(
        "UPDATE backup_sets SET deleting = 1
         WHERE cluster_id = ?1 AND deleting = 0 AND detached = 0",
        [cluster.as_str()],
    )?;
    Ok(())
}

fn detach(c: &Connection, set: &BackupSet) -> Result<()> {
    c.execute(
        "UPDATE backup_sets SET detached = 1 WHERE id = ?1",
        [db_id(set.id)],
    )?;
    Ok(())
}

fn active_job(c: &Connection, cluster: &DbClusterId) -> Result<Option<BackupJob>> {
    Ok(c.query_row(
        &format!(
            "SELECT {JOB_COLUMNS} FROM backup_jobs
             WHERE cluster_id = ?1 AND status IN {NON_TERMINAL} ORDER BY id LIMIT 1"
        ),
        [cluster.as_str()],
        job_from,
    )
    .optional()?)
}

/// The check (Running, no queued or running job) and the switch happen in one write
/// transaction, and CreateBackup and the scheduler check the status in theirs: no job can
/// slip in between. `retention` overrides the cluster's policy for this deletion.
pub fn begin_deletion(
    c: &mut Connection,
    cluster: &DbClusterId,
    retention: Option<RetentionOnClusterDeletion>,
    now: Timestamp,
) -> Result<std::result::Result<ClusterDeletion, DeletionRefusal>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Err(status) = require_running(&tx, cluster)? {
        return Ok(Err(DeletionRefusal::NotRunning(status)));
    }
    if let Some(job) = active_job(&tx, cluster)? {
        return Ok(Err(DeletionRefusal::ActiveJob(job)));
    }
    let retention = match retention {
        Some(r) => r,
        None => policies::get(&tx, cluster)?.0.on_cluster_deletion,
    };
    let sets = sets::sets_of(&tx, cluster)?;
    let outcome = match retention {
        RetentionOnClusterDeletion::Latest => {
            let job = jobs::insert(
                &tx,
                cluster,
                JobMode::Automated,
                TaskAction::TempBackupTask,
                // The final set is kept alone: it must not need the sets deleted with it.
                BackupKind::Full,
                None,
                now,
            )?;
            set_status(
                &tx,
                cluster,
                ClusterStatus::Deleting,
                Some(retention),
                None,
                Some(&job),
            )?;
            ClusterDeletion::Pending { job, doomed: sets }
        }
        RetentionOnClusterDeletion::All | RetentionOnClusterDeletion::None => {
            let (kept, deleted) = split_on_deletion(retention, sets);
            for s in &kept {
                detach(&tx, s)?;
            }
            hide_attached_sets(&tx, cluster)?;
            set_status(
                &tx,
                cluster,
                ClusterStatus::Deleted,
                Some(retention),
                Some(now),
                None,
            )?;
            ClusterDeletion::Deleted {
                retention,
                kept,
                deleted,
            }
        }
    };
    tx.commit()?;
    Ok(Ok(outcome))
}

/// Called inside the transaction that ends `job`: if it is the final backup of a LATEST
/// deletion, a finished one releases the cluster (its set detached, every other set hidden
/// for deletion) and a failed one aborts the deletion (the cluster runs again, nothing is
/// deleted). Crash recovery ends jobs through the same path, so a cluster never stays
/// `Deleting` once its job has ended.
pub fn after_job_end(c: &Connection, job: &BackupJob, set: Option<&BackupSet>) -> Result<()> {
    let row: Option<(String, Option<i64>, Option<String>)> = c
        .query_row(
            "SELECT status, deletion_job, deletion_retention FROM clusters WHERE id = ?1",
            [job.cluster_id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((status, Some(deletion_job), retention)) = row else {
        return Ok(());
    };
    if status != ClusterStatus::Deleting.as_str() || deletion_job != db_id(job.id) {
        return Ok(());
    }
    let retention = retention.and_then(|r| RetentionOnClusterDeletion::parse(&r));
    match final_set(job, set) {
        Some(s) => {
            detach(c, s)?;
            hide_attached_sets(c, &job.cluster_id)?;
            set_status(
                c,
                &job.cluster_id,
                ClusterStatus::Deleted,
                retention,
                job.ended_at,
                Some(job),
            )
        }
        None => set_status(c, &job.cluster_id, ClusterStatus::Running, None, None, None),
    }
}

/// The account check, the cluster row and its default policy are one transaction: a cluster
/// never exists without its policy or its account.
fn create(c: &Connection, sealer: &Sealer, spec: &NewCluster, now: Timestamp) -> Result<Cluster> {
    tenants::require_account(c, &spec.account)?;
    // Random ids can collide; a few tries make that vanishingly unlikely to surface.
    for _ in 0..8 {
        let id = ids::cluster_id();
        let password = sealer.seal_opt(&password_place(&id), spec.password.as_deref())?;
        let inserted = c.execute(
            "INSERT OR IGNORE INTO clusters (id, account_id, region, engine, host, port,
                 user_name, password, database, description, created_at, tls_mode,
                 tls_ca_file)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                id,
                spec.account.as_str(),
                spec.region,
                spec.engine,
                spec.host,
                spec.port,
                spec.user,
                password,
                spec.database,
                spec.description,
                secs(now),
                spec.tls_mode.as_str(),
                spec.tls_ca_file
            ],
        )?;
        if inserted == 1 {
            // The schedule starts now: no slot before the cluster existed is due.
            policies::insert_default(c, &id, Some(now))?;
            let mut cluster =
                c.query_row("SELECT * FROM clusters WHERE id = ?1", [&id], cluster_from)?;
            cluster.spec.password.clone_from(&spec.password);
            return Ok(cluster);
        }
    }
    Err(StoreError::Conflict("cluster id"))
}

/// A cluster in any state, its password opened. Cached: most calls name a cluster.
pub(super) fn get(c: &Connection, sealer: &Sealer, id: &DbClusterId) -> Result<Option<Cluster>> {
    let cluster = c
        .prepare_cached("SELECT * FROM clusters WHERE id = ?1")?
        .query_row([id.as_str()], cluster_from)
        .optional()?;
    cluster
        .map(|mut c| {
            let place = password_place(c.id.as_str());
            c.spec.password = sealer.open_opt(&place, c.spec.password.take())?;
            Ok(c)
        })
        .transpose()
}

/// Whether a Deleted cluster's release is unfinished (an SQL expression over `c`).
const RELEASING: &str = "(c.status = 'Deleted' AND (
        EXISTS (SELECT 1 FROM backup_sets s WHERE s.cluster_id = c.id AND s.deleting = 1)
        OR EXISTS (SELECT 1 FROM wal_objects w WHERE w.cluster_id = c.id)))";

fn opened(sealer: &Sealer, mut c: Cluster) -> Result<Cluster> {
    let place = password_place(c.id.as_str());
    c.spec.password = sealer.open_opt(&place, c.spec.password.take())?;
    Ok(c)
}

fn account_clusters(
    c: &Connection,
    sealer: &Sealer,
    account: &AccountId,
) -> Result<Vec<ListedCluster>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT c.*, {RELEASING} AS releasing FROM clusters c
         WHERE c.account_id = ?1 AND (c.status <> 'Deleted' OR {RELEASING})
         ORDER BY c.created_at DESC, c.id"
    ))?;
    let rows = stmt.query_map([account.as_str()], |r| {
        Ok((cluster_from(r)?, r.get::<_, bool>("releasing")?))
    })?;
    rows.map(|row| {
        let (cluster, releasing) = row?;
        Ok(ListedCluster {
            cluster: opened(sealer, cluster)?,
            releasing,
        })
    })
    .collect()
}

fn released_with_wal(c: &Connection, sealer: &Sealer) -> Result<Vec<Cluster>> {
    let mut stmt = c.prepare_cached(
        "SELECT c.* FROM clusters c WHERE c.status = 'Deleted'
             AND EXISTS (SELECT 1 FROM wal_objects w WHERE w.cluster_id = c.id)
         ORDER BY c.id",
    )?;
    let rows = stmt.query_map([], cluster_from)?;
    rows.map(|row| opened(sealer, row?)).collect()
}

impl ClusterStore for SqliteStore {
    fn account_clusters(&self, account: &AccountId) -> Result<Vec<ListedCluster>> {
        self.read(|c| account_clusters(c, &self.sealer, account))
    }

    fn released_with_wal(&self) -> Result<Vec<Cluster>> {
        self.read(|c| released_with_wal(c, &self.sealer))
    }

    fn create_cluster(&self, spec: &NewCluster, now: Timestamp) -> Result<Cluster> {
        self.write(|tx| create(tx, &self.sealer, spec, now))
    }

    fn cluster(&self, id: &DbClusterId) -> Result<Option<Cluster>> {
        self.read(|c| get(c, &self.sealer, id))
    }

    fn begin_cluster_deletion(
        &self,
        cluster: &DbClusterId,
        retention: Option<RetentionOnClusterDeletion>,
        now: Timestamp,
    ) -> Result<std::result::Result<ClusterDeletion, DeletionRefusal>> {
        self.with(|c| begin_deletion(c, cluster, retention, now))
    }

    fn backup_policy(&self, cluster: &DbClusterId) -> Result<(BackupPolicy, Option<Timestamp>)> {
        self.with(|c| policies::get(c, cluster))
    }

    fn modify_backup_policy(
        &self,
        cluster: &DbClusterId,
        change: &PolicyChange,
    ) -> Result<std::result::Result<BackupPolicy, ClusterStatus>> {
        self.write(|tx| policies::modify(tx, cluster, change))
    }

    fn schedules(&self) -> Result<Vec<(DbClusterId, BackupPolicy, Option<Timestamp>)>> {
        self.with(|c| policies::all(c))
    }

    fn schedule_automated_job(
        &self,
        cluster: &DbClusterId,
        slot: Timestamp,
        kind: BackupKind,
        now: Timestamp,
    ) -> Result<Option<BackupJob>> {
        self.with(|c| policies::schedule(c, cluster, slot, kind, now))
    }

    fn set_full_backup_every(
        &self,
        cluster: &DbClusterId,
        every: Option<FullBackupEvery>,
    ) -> Result<std::result::Result<(), ClusterStatus>> {
        self.with(|c| policies::set_full_backup_every(c, cluster, every))
    }
}
