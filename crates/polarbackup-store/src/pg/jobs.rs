//! Backup jobs in PostgreSQL: creation (with idempotency tokens and the manual limit), leases,
//! progress, and the atomic hand-over from a finished job to its backup set.

use super::{all, clusters, opt, PgStore};
use crate::records::{CreateJobOutcome, JobFilter, ManualJobRequest};
use crate::rows::{
    db_id, db_size, job_count_from, job_from, job_id, leased_from, secs, wal_columns, Leased,
    JOB_COLUMNS, LEASED_COLUMNS,
};
use crate::rules::{check_ended, check_forward, check_holder, take_over, NON_TERMINAL};
use crate::{JobStore, Result, StoreError};
use jiff::Timestamp;
use polarbackup_model::{
    BackupJob, BackupJobId, BackupKind, BackupSet, DbClusterId, JobMode, JobStatus, TaskAction,
};
use postgres::GenericClient;

pub fn insert(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    mode: JobMode,
    action: TaskAction,
    kind: BackupKind,
    comment: Option<&str>,
    now: Timestamp,
) -> Result<BackupJob> {
    job_from(&c.query_one(
        &format!(
            "INSERT INTO backup_jobs (cluster_id, mode, action, kind, status, process, start_time,
                 comment)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7) RETURNING {JOB_COLUMNS}"
        ),
        &[
            &cluster.as_str(),
            &mode.as_str(),
            &action.as_str(),
            &kind.as_str(),
            &JobStatus::NoStart.as_str(),
            &secs(now),
            &comment,
        ],
    )?)
}

fn load(c: &mut impl GenericClient, id: i64) -> Result<BackupJob> {
    opt(
        c,
        &format!("SELECT {JOB_COLUMNS} FROM backup_jobs WHERE id = $1"),
        &[&id],
        job_from,
    )?
    .ok_or(StoreError::NotFound { what: "backup job" })
}

/// A job with its lease, read inside the (serializable) transaction that a lease fences.
fn load_leased(c: &mut impl GenericClient, id: BackupJobId) -> Result<Leased> {
    opt(
        c,
        &format!("SELECT {LEASED_COLUMNS} FROM backup_jobs WHERE id = $1"),
        &[&db_id(id)],
        leased_from,
    )?
    .ok_or(StoreError::NotFound { what: "backup job" })
}

/// Checks, in the writing transaction, that `holder` holds the job and that `job` moves it
/// forward.
fn check_write(c: &mut impl GenericClient, job: &BackupJob, holder: Option<&str>) -> Result<()> {
    let stored = load_leased(c, job.id)?;
    check_holder(job.id, stored.owner.as_deref(), holder)?;
    check_forward(&stored.job, job)
}

/// The cluster's status, the ClientToken, the manual limit and the insert share one
/// serializable transaction: concurrent callers on any server cannot slip under the limit.
fn create_manual(
    c: &mut impl GenericClient,
    req: &ManualJobRequest,
    now: Timestamp,
    limit: u32,
) -> Result<CreateJobOutcome> {
    if let Err(status) = clusters::require_running(c, &req.cluster)? {
        return Ok(CreateJobOutcome::ClusterNotRunning(status));
    }
    if let Some(token) = &req.client_token {
        let seen = c.query_opt(
            "SELECT fingerprint, job_id FROM client_tokens
             WHERE account_id = $1 AND action = 'CreateBackup' AND token = $2",
            &[&req.account.as_str(), token],
        )?;
        if let Some(row) = seen {
            let fingerprint: String = row.try_get(0)?;
            if fingerprint != req.fingerprint {
                return Ok(CreateJobOutcome::TokenMismatch);
            }
            return Ok(CreateJobOutcome::Existing(load(c, row.try_get(1)?)?));
        }
    }
    let in_use: i64 = c
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM backup_sets
                         WHERE cluster_id = $1 AND mode = 'Manual' AND status = 'Success'
                           AND deleting = 0)
                      + (SELECT count(*) FROM backup_jobs
                         WHERE cluster_id = $1 AND mode = 'Manual' AND status IN {NON_TERMINAL})"
            ),
            &[&req.cluster.as_str()],
        )?
        .try_get(0)?;
    if in_use >= i64::from(limit) {
        return Ok(CreateJobOutcome::LimitReached);
    }
    let job = insert(
        c,
        &req.cluster,
        JobMode::Manual,
        TaskAction::NormalBackupTask,
        req.kind,
        req.comment.as_deref(),
        now,
    )?;
    if let Some(token) = &req.client_token {
        c.execute(
            "INSERT INTO client_tokens (account_id, action, token, fingerprint, job_id, created_at)
             VALUES ($1, 'CreateBackup', $2, $3, $4, $5)",
            &[
                &req.account.as_str(),
                token,
                &req.fingerprint,
                &db_id(job.id),
                &secs(now),
            ],
        )?;
    }
    Ok(CreateJobOutcome::Created(job))
}

fn write_state(c: &mut impl GenericClient, job: &BackupJob) -> Result<()> {
    c.execute(
        "UPDATE backup_jobs SET status = $2, process = $3, ended_at = $4, failure_reason = $5,
             lease_owner = CASE WHEN $4::bigint IS NULL THEN lease_owner END,
             lease_expires = CASE WHEN $4::bigint IS NULL THEN lease_expires END
         WHERE id = $1",
        &[
            &db_id(job.id),
            &job.status.as_str(),
            &i64::from(job.process),
            &job.ended_at.map(secs),
            &job.failure_reason,
        ],
    )?;
    Ok(())
}

fn insert_set(c: &mut impl GenericClient, s: &BackupSet) -> Result<()> {
    let wal = wal_columns(s.wal.as_ref())?;
    c.execute(
        "INSERT INTO backup_sets (id, cluster_id, mode, status, start_time, end_time,
             consistent_time, size, stored_size, comment, wal_timeline, wal_start, wal_end,
             parent_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &db_id(s.id),
            &s.cluster_id.as_str(),
            &s.mode.as_str(),
            &s.status.as_str(),
            &secs(s.start_time),
            &secs(s.end_time),
            &s.consistent_time.map(secs),
            &db_size(s.size),
            &db_size(s.stored_size),
            &s.comment,
            &wal[0],
            &wal[1],
            &wal[2],
            &s.parent.map(db_id),
        ],
    )?;
    Ok(())
}

/// Ends a job and records its set (if any) in one transaction, settling a cluster deletion
/// whose final backup it is; the caller checked the write.
fn record_end(c: &mut impl GenericClient, job: &BackupJob, set: Option<&BackupSet>) -> Result<()> {
    write_state(c, job)?;
    if let Some(s) = set {
        insert_set(c, s)?;
    }
    clusters::after_job_end(c, job, set)
}

/// Crash recovery's takeover: the lapsed lease is read and the job ended in one serializable
/// transaction, so a concurrent end by its worker or another server's recovery makes one of
/// them retry and find the job ended.
fn fail_abandoned(
    c: &mut impl GenericClient,
    id: BackupJobId,
    reason: &str,
    now: Timestamp,
) -> Result<Option<BackupJob>> {
    let stored = load_leased(c, id)?;
    let Some((job, set)) = take_over(stored.job, stored.expires, reason, now) else {
        return Ok(None);
    };
    record_end(c, &job, Some(&set))?;
    Ok(Some(job))
}

fn list(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    filter: &JobFilter,
) -> Result<Vec<BackupJob>> {
    all(
        c,
        &format!(
            "SELECT {JOB_COLUMNS} FROM backup_jobs
             WHERE cluster_id = $1
               AND ($2::bigint IS NULL OR id = $2)
               AND ($3::text IS NULL OR mode = $3)
               AND (ended_at IS NULL OR ended_at >= $4)
             ORDER BY start_time DESC, id DESC"
        ),
        &[
            &cluster.as_str(),
            &filter.job_id.map(db_id),
            &filter.mode.map(JobMode::as_str),
            &secs(filter.ended_since),
        ],
        job_from,
    )
}

/// Claims the oldest queued job whose cluster has no other job under a live lease.
fn claim(
    c: &mut impl GenericClient,
    worker: &str,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<Option<BackupJob>> {
    let next = c.query_opt(
        &format!(
            "SELECT j.id FROM backup_jobs j
             WHERE j.status = 'NoStart' AND (j.lease_expires IS NULL OR j.lease_expires < $1)
               AND NOT EXISTS (
                 SELECT 1 FROM backup_jobs o
                 WHERE o.cluster_id = j.cluster_id AND o.id <> j.id
                   AND o.status IN {NON_TERMINAL} AND o.lease_expires >= $1)
             ORDER BY j.id LIMIT 1"
        ),
        &[&secs(now)],
    )?;
    let Some(row) = next else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0)?;
    c.execute(
        "UPDATE backup_jobs SET lease_owner = $2, lease_expires = $3 WHERE id = $1",
        &[&id, &worker, &secs(lease_until)],
    )?;
    load(c, id).map(Some)
}

impl JobStore for PgStore {
    fn insert_job(
        &self,
        cluster: &DbClusterId,
        mode: JobMode,
        action: TaskAction,
        now: Timestamp,
    ) -> Result<BackupJob> {
        let cluster = cluster.clone();
        self.write(move |tx| insert(tx, &cluster, mode, action, BackupKind::Full, None, now))
    }

    fn create_manual_job(
        &self,
        req: &ManualJobRequest,
        now: Timestamp,
        limit: u32,
    ) -> Result<CreateJobOutcome> {
        let req = req.clone();
        self.write(move |tx| create_manual(tx, &req, now, limit))
    }

    fn update_job(&self, job: &BackupJob, holder: Option<&str>) -> Result<()> {
        let (job, holder) = (job.clone(), holder.map(str::to_owned));
        self.write(move |tx| {
            check_write(tx, &job, holder.as_deref())?;
            write_state(tx, &job)
        })
    }

    fn end_job(
        &self,
        job: &BackupJob,
        set: Option<&BackupSet>,
        holder: Option<&str>,
    ) -> Result<()> {
        check_ended(job)?;
        let (job, set, holder) = (job.clone(), set.cloned(), holder.map(str::to_owned));
        self.write(move |tx| {
            check_write(tx, &job, holder.as_deref())?;
            record_end(tx, &job, set.as_ref())
        })
    }

    fn list_jobs(&self, cluster: &DbClusterId, filter: &JobFilter) -> Result<Vec<BackupJob>> {
        let (cluster, filter) = (cluster.clone(), filter.clone());
        self.read(move |c| list(c, &cluster, &filter))
    }

    fn job_counts(&self) -> Result<Vec<(DbClusterId, JobStatus, u64)>> {
        self.read(|c| all(c, crate::rules::JOB_COUNTS, &[], job_count_from))
    }

    fn claim_job(
        &self,
        worker: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<BackupJob>> {
        let worker = worker.to_owned();
        self.write(move |tx| claim(tx, &worker, lease_until, now))
    }

    fn renew_lease(&self, job: BackupJobId, worker: &str, lease_until: Timestamp) -> Result<bool> {
        let worker = worker.to_owned();
        self.write(move |tx| {
            let n = tx.execute(
                &format!(
                    "UPDATE backup_jobs SET lease_expires = $3
                     WHERE id = $1 AND lease_owner = $2 AND status IN {NON_TERMINAL}"
                ),
                &[&db_id(job), &worker, &secs(lease_until)],
            )?;
            Ok(n == 1)
        })
    }

    fn abandoned_jobs(&self, now: Timestamp) -> Result<Vec<BackupJob>> {
        self.read(move |c| {
            all(
                c,
                &format!(
                    "SELECT {JOB_COLUMNS} FROM backup_jobs
                     WHERE status IN {NON_TERMINAL} AND status <> 'NoStart'
                       AND (lease_expires IS NULL OR lease_expires < $1)
                     ORDER BY id"
                ),
                &[&secs(now)],
                job_from,
            )
        })
    }

    fn fail_abandoned_job(
        &self,
        id: BackupJobId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<BackupJob>> {
        let reason = reason.to_owned();
        self.write(move |tx| fail_abandoned(tx, id, &reason, now))
    }
}

/// A job id read from a row (for the sets module).
pub fn id_from(row: &postgres::Row) -> Result<BackupJobId> {
    job_id::<postgres::Row>(row.try_get(0)?)
}
