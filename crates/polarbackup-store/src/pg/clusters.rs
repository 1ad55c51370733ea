//! Clusters in PostgreSQL: registration, lifecycle, deletion with its backup retention, and
//! the end of a LATEST deletion's final backup, decided in the transaction that ends the job.
//! [`ClusterStore`] for [`PgStore`] (its policy half is in `policies`).

use super::{all, jobs, opt, policies, sets, tenants, PgStore};
use crate::records::{ClusterDeletion, DeletionRefusal, ListedCluster};
use crate::rows::{cluster_from, db_id, job_from, secs, JOB_COLUMNS};
use crate::rules::{final_set, split_on_deletion, NON_TERMINAL};
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
use postgres::GenericClient;

/// A cluster's lifecycle state; `None` when no such cluster was ever registered.
pub fn status(c: &mut impl GenericClient, cluster: &DbClusterId) -> Result<Option<ClusterStatus>> {
    let row = c.query_opt(
        "SELECT status FROM clusters WHERE id = $1",
        &[&cluster.as_str()],
    )?;
    row.map(|r| {
        let s: String = r.try_get(0)?;
        s.parse()
            .map_err(|()| StoreError::Corrupt(format!("cluster status {s:?}")))
    })
    .transpose()
}

/// `Ok(())` for a Running cluster, `Err(status)` for one being deleted or deleted; a cluster
/// that does not exist is an error.
pub fn require_running(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
) -> Result<std::result::Result<(), ClusterStatus>> {
    match status(c, cluster)? {
        Some(ClusterStatus::Running) => Ok(Ok(())),
        Some(other) => Ok(Err(other)),
        None => Err(StoreError::NotFound { what: "cluster" }),
    }
}

fn set_status(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    status: ClusterStatus,
    retention: Option<RetentionOnClusterDeletion>,
    deleted_at: Option<Timestamp>,
    job: Option<&BackupJob>,
) -> Result<()> {
    c.execute(
        "UPDATE clusters SET status = $2, deletion_retention = $3, deleted_at = $4,
             deletion_job = $5
         WHERE id = $1",
        &[
            &cluster.as_str(),
            &status.as_str(),
            &retention.map(RetentionOnClusterDeletion::as_str),
            &deleted_at.map(secs),
            &job.map(|j| db_id(j.id)),
        ],
    )?;
    Ok(())
}

/// Hides every listed set of `cluster` that is not detached.
fn hide_attached_sets(c: &mut impl GenericClient, cluster: &DbClusterId) -> Result<()> {
    c.execute(
        "UPDATE backup_sets SET deleting = 1
         WHERE cluster_id = $1 AND deleting = 0 AND detached = 0",
        &[&cluster.as_str()],
    )?;
    Ok(())
}

fn detach(c: &mut impl GenericClient, set: &BackupSet) -> Result<()> {
    c.execute(
        "UPDATE backup_sets SET detached = 1 WHERE id = $1",
        &[&db_id(set.id)],
    )?;
    Ok(())
}

fn active_job(c: &mut impl GenericClient, cluster: &DbClusterId) -> Result<Option<BackupJob>> {
    opt(
        c,
        &format!(
            "SELECT {JOB_COLUMNS} FROM backup_jobs
             WHERE cluster_id = $1 AND status IN {NON_TERMINAL} ORDER BY id LIMIT 1"
        ),
        &[&cluster.as_str()],
        job_from,
    )
}

/// The check (Running, no queued or running job) and the switch share one serializable
/// transaction, as do CreateBackup's and the scheduler's status checks.
fn begin_deletion(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    retention: Option<RetentionOnClusterDeletion>,
    now: Timestamp,
) -> Result<std::result::Result<ClusterDeletion, DeletionRefusal>> {
    if let Err(status) = require_running(c, cluster)? {
        return Ok(Err(DeletionRefusal::NotRunning(status)));
    }
    if let Some(job) = active_job(c, cluster)? {
        return Ok(Err(DeletionRefusal::ActiveJob(job)));
    }
    let retention = match retention {
        Some(r) => r,
        None => policies::get(c, cluster)?.0.on_cluster_deletion,
    };
    let sets = sets::sets_of(c, cluster)?;
    Ok(Ok(match retention {
        RetentionOnClusterDeletion::Latest => {
            let job = jobs::insert(
                c,
                cluster,
                JobMode::Automated,
                TaskAction::TempBackupTask,
                // The final set is kept alone: it must not need the sets deleted with it.
                BackupKind::Full,
                None,
                now,
            )?;
            set_status(
                c,
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
                detach(c, s)?;
            }
            hide_attached_sets(c, cluster)?;
            set_status(
                c,
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
    }))
}

/// Called inside the transaction that ends `job`: settles a LATEST deletion whose final
/// backup it is (released when it finished, running again when it failed).
pub fn after_job_end(
    c: &mut impl GenericClient,
    job: &BackupJob,
    set: Option<&BackupSet>,
) -> Result<()> {
    let row = c.query_opt(
        "SELECT status, deletion_job, deletion_retention FROM clusters WHERE id = $1",
        &[&job.cluster_id.as_str()],
    )?;
    let Some(row) = row else {
        return Ok(());
    };
    let (status, deletion_job, retention): (String, Option<i64>, Option<String>) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    if status != ClusterStatus::Deleting.as_str() || deletion_job != Some(db_id(job.id)) {
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

/// The account check, the cluster row and its default policy are one transaction.
fn create(
    c: &mut impl GenericClient,
    sealer: &Sealer,
    spec: &NewCluster,
    now: Timestamp,
) -> Result<Cluster> {
    tenants::require_account(c, &spec.account)?;
    // Random ids can collide; a few tries make that vanishingly unlikely to surface.
    for _ in 0..8 {
        let id = ids::cluster_id();
        let password = sealer.seal_opt(&password_place(&id), spec.password.as_deref())?;
        let inserted = opt(
            c,
            "INSERT INTO clusters (id, account_id, region, engine, host, port, user_name,
                 password, database, description, created_at, tls_mode, tls_ca_file)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT DO NOTHING RETURNING *",
            &[
                &id,
                &spec.account.as_str(),
                &spec.region,
                &spec.engine,
                &spec.host,
                &i64::from(spec.port),
                &spec.user,
                &password,
                &spec.database,
                &spec.description,
                &secs(now),
                &spec.tls_mode.as_str(),
                &spec.tls_ca_file,
            ],
            cluster_from,
        )?;
        if let Some(mut cluster) = inserted {
            // The schedule starts now: no slot before the cluster existed is due.
            policies::insert_default(c, &id, Some(now))?;
            cluster.spec.password.clone_from(&spec.password);
            return Ok(cluster);
        }
    }
    Err(StoreError::Conflict("cluster id"))
}

/// Whether a Deleted cluster's release is unfinished (an SQL expression over `c`).
const RELEASING: &str = "(c.status = 'Deleted' AND (
        EXISTS (SELECT 1 FROM backup_sets s WHERE s.cluster_id = c.id AND s.deleting = 1)
        OR EXISTS (SELECT 1 FROM wal_objects w WHERE w.cluster_id = c.id)))";

impl PgStore {
    fn opened(&self, mut c: Cluster) -> Result<Cluster> {
        let place = password_place(c.id.as_str());
        c.spec.password = self.sealer.open_opt(&place, c.spec.password.take())?;
        Ok(c)
    }
}

fn listed_from(r: &postgres::Row) -> Result<(Cluster, bool)> {
    Ok((cluster_from(r)?, r.try_get("releasing")?))
}

impl ClusterStore for PgStore {
    fn account_clusters(&self, account: &AccountId) -> Result<Vec<ListedCluster>> {
        let account = account.clone();
        let rows = self.read(move |c| {
            all(
                c,
                &format!(
                    "SELECT c.*, {RELEASING} AS releasing FROM clusters c
                     WHERE c.account_id = $1 AND (c.status <> 'Deleted' OR {RELEASING})
                     ORDER BY c.created_at DESC, c.id"
                ),
                &[&account.as_str()],
                listed_from,
            )
        })?;
        rows.into_iter()
            .map(|(cluster, releasing)| {
                Ok(ListedCluster {
                    cluster: self.opened(cluster)?,
                    releasing,
                })
            })
            .collect()
    }

    fn released_with_wal(&self) -> Result<Vec<Cluster>> {
        let rows = self.read(move |c| {
            all(
                c,
                "SELECT c.* FROM clusters c WHERE c.status = 'Deleted'
                     AND EXISTS (SELECT 1 FROM wal_objects w WHERE w.cluster_id = c.id)
                 ORDER BY c.id",
                &[],
                cluster_from,
            )
        })?;
        rows.into_iter().map(|c| self.opened(c)).collect()
    }

    fn create_cluster(&self, spec: &NewCluster, now: Timestamp) -> Result<Cluster> {
        let (spec, sealer) = (spec.clone(), self.sealer.clone());
        self.write(move |tx| create(tx, &sealer, &spec, now))
    }

    fn cluster(&self, id: &DbClusterId) -> Result<Option<Cluster>> {
        let id = id.clone();
        let cluster = self.read(move |c| {
            opt(
                c,
                "SELECT * FROM clusters WHERE id = $1",
                &[&id.as_str()],
                cluster_from,
            )
        })?;
        cluster
            .map(|mut c| {
                let place = password_place(c.id.as_str());
                c.spec.password = self.sealer.open_opt(&place, c.spec.password.take())?;
                Ok(c)
            })
            .transpose()
    }

    fn begin_cluster_deletion(
        &self,
        cluster: &DbClusterId,
        retention: Option<RetentionOnClusterDeletion>,
        now: Timestamp,
    ) -> Result<std::result::Result<ClusterDeletion, DeletionRefusal>> {
        let cluster = cluster.clone();
        self.write(move |tx| begin_deletion(tx, &cluster, retention, now))
    }

    fn backup_policy(&self, cluster: &DbClusterId) -> Result<(BackupPolicy, Option<Timestamp>)> {
        let cluster = cluster.clone();
        self.read(move |c| policies::get(c, &cluster))
    }

    fn modify_backup_policy(
        &self,
        cluster: &DbClusterId,
        change: &PolicyChange,
    ) -> Result<std::result::Result<BackupPolicy, ClusterStatus>> {
        let (cluster, change) = (cluster.clone(), *change);
        self.write(move |tx| policies::modify(tx, &cluster, &change))
    }

    fn schedules(&self) -> Result<Vec<(DbClusterId, BackupPolicy, Option<Timestamp>)>> {
        self.read(policies::all)
    }

    fn schedule_automated_job(
        &self,
        cluster: &DbClusterId,
        slot: Timestamp,
        kind: BackupKind,
        now: Timestamp,
    ) -> Result<Option<BackupJob>> {
        let cluster = cluster.clone();
        self.write(move |tx| policies::schedule(tx, &cluster, slot, kind, now))
    }

    fn set_full_backup_every(
        &self,
        cluster: &DbClusterId,
        every: Option<FullBackupEvery>,
    ) -> Result<std::result::Result<(), ClusterStatus>> {
        let cluster = cluster.clone();
        self.write(move |tx| policies::set_full_backup_every(tx, &cluster, every))
    }
}
