//! Backup jobs in SQLite: creation (with idempotency tokens and the manual limit), leases,
//! progress, and the atomic hand-over from a finished job to its backup set.

use super::clusters;
use super::rows::{
    db_id, db_size, job_count_from, job_from, leased_from, secs, wal_columns, Leased, JOB_COLUMNS,
    LEASED_COLUMNS,
};
use super::SqliteStore;
use crate::records::{CreateJobOutcome, JobFilter, ManualJobRequest};
use crate::rules::{check_ended, check_forward, check_holder, take_over};
use crate::{JobStore, Result, StoreError};
use jiff::Timestamp;
use polarbackup_model::{
    BackupJob, BackupJobId, BackupKind, BackupSet, DbClusterId, JobMode, JobStatus, TaskAction,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

pub use crate::rules::NON_TERMINAL;

pub fn insert(
    c: &Connection,
    cluster: &DbClusterId,
    mode: JobMode,
    action: TaskAction,
    kind: BackupKind,
    comment: Option<&str>,
    now: Timestamp,
) -> Result<BackupJob> {
    Ok(c.query_row(
        &format!(
            "INSERT INTO backup_jobs (cluster_id, mode, action, kind, status, process, start_time,
                 comment)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7) RETURNING {JOB_COLUMNS}"
        ),
        params![
            cluster.as_str(),
            mode.as_str(),
            action.as_str(),
            kind.as_str(),
            JobStatus::NoStart.as_str(),
            secs(now),
            comment
        ],
        job_from,
    )?)
}

fn load(c: &Connection, id: BackupJobId) -> Result<BackupJob> {
    c.query_row(
        &format!("SELECT {JOB_COLUMNS} FROM backup_jobs WHERE id = ?1"),
        [db_id(id)],
        job_from,
    )
    .optional()?
    .ok_or(StoreError::NotFound { what: "backup job" })
}

/// A job with its lease, read inside the transaction that a lease fences.
fn load_leased(c: &Connection, id: BackupJobId) -> Result<Leased> {
    c.query_row(
        &format!("SELECT {LEASED_COLUMNS} FROM backup_jobs WHERE id = ?1"),
        [db_id(id)],
        leased_from,
    )
    .optional()?
    .ok_or(StoreError::NotFound { what: "backup job" })
}

/// Checks, in the writing transaction, that `holder` holds the job and that `job` moves it
/// forward.
fn check_write(c: &Connection, job: &BackupJob, holder: Option<&str>) -> Result<()> {
    let stored = load_leased(c, job.id)?;
    check_holder(job.id, stored.owner.as_deref(), holder)?;
    check_forward(&stored.job, job)
}

/// The cluster's status, ClientToken, the manual-backup limit and the insert happen in one
/// write transaction, so two concurrent CreateBackup calls cannot both slip under the limit
/// and none can slip in once a deletion has begun.
fn create_manual(
    c: &mut Connection,
    req: &ManualJobRequest,
    now: Timestamp,
    limit: u32,
) -> Result<CreateJobOutcome> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Err(status) = clusters::require_running(&tx, &req.cluster)? {
        return Ok(CreateJobOutcome::ClusterNotRunning(status));
    }
    if let Some(token) = &req.client_token {
        let seen: Option<(String, i64)> = tx
            .query_row(
                "SELECT fingerprint, job_id FROM client_tokens
                 WHERE account_id = ?1 AND action = 'CreateBackup' AND token = ?2",
                params![req.account.as_str(), token],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((fingerprint, job_id)) = seen {
            if fingerprint != req.fingerprint {
                return Ok(CreateJobOutcome::TokenMismatch);
            }
            let job = load(&tx, BackupJobId(u64::try_from(job_id).unwrap_or(0)))?;
            return Ok(CreateJobOutcome::Existing(job));
        }
    }
    let in_use: u32 = tx.query_row(
        &format!(
            "SELECT (SELECT count(*) FROM backup_sets
                     WHERE cluster_id = ?1 AND mode = 'Manual' AND status = 'Success' AND deleting = 0)
                  + (SELECT count(*) FROM backup_jobs
                     WHERE cluster_id = ?1 AND mode = 'Manual' AND status IN {NON_TERMINAL})"
        ),
        [req.cluster.as_str()],
        |r| r.get(0),
    )?;
    if in_use >= limit {
        return Ok(CreateJobOutcome::LimitReached);
    }
    let job = insert(
        &tx,
        &req.cluster,
        JobMode::Manual,
        TaskAction::NormalBackupTask,
        req.kind,
        req.comment.as_deref(),
        now,
    )?;
    if let Some(token) = &req.client_token {
        tx.execute(
            "INSERT INTO client_tokens (account_id, action, token, fingerprint, job_id, created_at)
             VALUES (?1, 'CreateBackup', ?2, ?3, ?4, ?5)",
            params![
                req.account.as_str(),
                token,
                req.fingerprint,
                db_id(job.id),
                secs(now)
            ],
        )?;
    }
    tx.commit()?;
    Ok(CreateJobOutcome::Created(job))
}

fn write_state(c: &Connection, job: &BackupJob) -> Result<()> {
    c.execute(
        "UPDATE backup_jobs SET status = ?2, process = ?3, ended_at = ?4, failure_reason = ?5,
             lease_owner = CASE WHEN ?4 IS NULL THEN lease_owner END,
             lease_expires = CASE WHEN ?4 IS NULL THEN lease_expires END
         WHERE id = ?1",
        params![
            db_id(job.id),
            job.status.as_str(),
            job.process,
            job.ended_at.map(secs),
            job.failure_reason
        ],
    )?;
    Ok(())
}

fn update(c: &mut Connection, job: &BackupJob, holder: Option<&str>) -> Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    check_write(&tx, job, holder)?;
    write_state(&tx, job)?;
    tx.commit()?;
    Ok(())
}

/// Ends a job and records its backup set (if any) in one transaction: a set is never listed
/// without its job having ended, and a job never ends without its set. The final backup of a
/// cluster deletion settles the deletion in the same transaction.
fn end(
    c: &mut Connection,
    job: &BackupJob,
    set: Option<&BackupSet>,
    holder: Option<&str>,
) -> Result<()> {
    check_ended(job)?;
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    check_write(&tx, job, holder)?;
    record_end(&tx, job, set)?;
    tx.commit()?;
    Ok(())
}

/// The job's end, its set, and what the end settles; the caller checked the write.
fn record_end(tx: &Connection, job: &BackupJob, set: Option<&BackupSet>) -> Result<()> {
    write_state(tx, job)?;
    if let Some(s) = set {
        let wal = wal_columns(s.wal.as_ref())?;
        tx.execute(
            "INSERT INTO backup_sets (id, cluster_id, mode, status, start_time, end_time,
                 consistent_time, size, stored_size, comment, wal_timeline, wal_start, wal_end,
                 parent_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                db_id(s.id),
                s.cluster_id.as_str(),
                s.mode.as_str(),
                s.status.as_str(),
                secs(s.start_time),
                secs(s.end_time),
                s.consistent_time.map(secs),
                db_size(s.size),
                db_size(s.stored_size),
                s.comment,
                wal[0],
                wal[1],
                wal[2],
                s.parent.map(db_id)
            ],
        )?;
    }
    clusters::after_job_end(tx, job, set)
}

/// Crash recovery's takeover: the check that the lease lapsed and the job's end share one
/// IMMEDIATE transaction, so its worker's end and other servers' recoveries come before it or
/// find the job ended.
fn fail_abandoned(
    c: &mut Connection,
    id: BackupJobId,
    reason: &str,
    now: Timestamp,
) -> Result<Option<BackupJob>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = load_leased(&tx, id)?;
    let Some((job, set)) = take_over(stored.job, stored.expires, reason, now) else {
        return Ok(None);
    };
    record_end(&tx, &job, Some(&set))?;
    tx.commit()?;
    Ok(Some(job))
}

fn list(c: &Connection, cluster: &DbClusterId, filter: &JobFilter) -> Result<Vec<BackupJob>> {
    // Two ranges of `backup_jobs_by_cluster_end` (not ended; ended since), so the cluster's
    // older history is never read. Named: left to itself the planner scans the by-start index
    // for the first part, to save a sort of a few rows (at 100 jobs a cluster, 3x slower).
    // Built once: DescribeBackupTasks runs it on every call.
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {JOB_COLUMNS} FROM backup_jobs INDEXED BY backup_jobs_by_cluster_end
             WHERE cluster_id = ?1 AND ended_at IS NULL
               AND (?2 IS NULL OR id = ?2) AND (?3 IS NULL OR mode = ?3)
             UNION ALL
             SELECT {JOB_COLUMNS} FROM backup_jobs INDEXED BY backup_jobs_by_cluster_end
             WHERE cluster_id = ?1 AND ended_at >= ?4
               AND (?2 IS NULL OR id = ?2) AND (?3 IS NULL OR mode = ?3)
             ORDER BY start_time DESC, id DESC"
        )
    });
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(
        params![
            cluster.as_str(),
            filter.job_id.map(db_id),
            filter.mode.map(JobMode::as_str),
            secs(filter.ended_since)
        ],
        job_from,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Claims the oldest queued job whose cluster has no other job under a live lease.
fn claim(
    c: &mut Connection,
    worker: &str,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<Option<BackupJob>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let next: Option<i64> = tx
        .query_row(
            &format!(
                "SELECT j.id FROM backup_jobs j
                 WHERE j.status = 'NoStart' AND (j.lease_expires IS NULL OR j.lease_expires < ?1)
                   AND NOT EXISTS (
                     SELECT 1 FROM backup_jobs o
                     WHERE o.cluster_id = j.cluster_id AND o.id <> j.id
                       AND o.status IN {NON_TERMINAL} AND o.lease_expires >= ?1)
                 ORDER BY j.id LIMIT 1"
            ),
            [secs(now)],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = next else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE backup_jobs SET lease_owner = ?2, lease_expires = ?3 WHERE id = ?1",
        params![id, worker, secs(lease_until)],
    )?;
    let job = load(&tx, BackupJobId(u64::try_from(id).unwrap_or(0)))?;
    tx.commit()?;
    Ok(Some(job))
}

/// Extends a lease; false when the job is no longer this worker's (or has ended).
fn renew(c: &Connection, id: BackupJobId, worker: &str, lease_until: Timestamp) -> Result<bool> {
    let n = c.execute(
        &format!(
            "UPDATE backup_jobs SET lease_expires = ?3
             WHERE id = ?1 AND lease_owner = ?2 AND status IN {NON_TERMINAL}"
        ),
        params![db_id(id), worker, secs(lease_until)],
    )?;
    Ok(n == 1)
}

/// Jobs a worker started and then stopped heart-beating for: a crash, a kill, a lost store.
fn abandoned(c: &Connection, now: Timestamp) -> Result<Vec<BackupJob>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {JOB_COLUMNS} FROM backup_jobs
         WHERE status IN {NON_TERMINAL} AND status <> 'NoStart'
           AND (lease_expires IS NULL OR lease_expires < ?1)
         ORDER BY id"
    ))?;
    let rows = stmt.query_map([secs(now)], job_from)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

impl JobStore for SqliteStore {
    fn insert_job(
        &self,
        cluster: &DbClusterId,
        mode: JobMode,
        action: TaskAction,
        now: Timestamp,
    ) -> Result<BackupJob> {
        self.with(|c| insert(c, cluster, mode, action, BackupKind::Full, None, now))
    }

    fn create_manual_job(
        &self,
        req: &ManualJobRequest,
        now: Timestamp,
        limit: u32,
    ) -> Result<CreateJobOutcome> {
        self.with(|c| create_manual(c, req, now, limit))
    }

    fn update_job(&self, job: &BackupJob, holder: Option<&str>) -> Result<()> {
        self.with(|c| update(c, job, holder))
    }

    fn end_job(
        &self,
        job: &BackupJob,
        set: Option<&BackupSet>,
        holder: Option<&str>,
    ) -> Result<()> {
        self.with(|c| end(c, job, set, holder))
    }

    fn list_jobs(&self, cluster: &DbClusterId, filter: &JobFilter) -> Result<Vec<BackupJob>> {
        // DescribeBackupTasks on every call: from the cache while nothing was written.
        let version = self.cache.version(&self.path)?;
        self.list_jobs_at(version, cluster, filter)
    }

    fn list_jobs_read_with(
        &self,
        cluster: &DbClusterId,
        filter: &JobFilter,
        mark: Option<crate::ReadMark>,
    ) -> Result<Vec<BackupJob>> {
        // The call's caller records were read at `mark`: while nothing changed since, the
        // version need not be read again (half the cost of a cached call).
        match mark.and_then(|m| self.cache.stands_at(m)) {
            Some(version) => self.list_jobs_at(version, cluster, filter),
            None => self.list_jobs(cluster, filter),
        }
    }

    fn job_counts(&self) -> Result<Vec<(DbClusterId, JobStatus, u64)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(crate::rules::JOB_COUNTS)?;
            let rows = stmt.query_map([], job_count_from)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn claim_job(
        &self,
        worker: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<BackupJob>> {
        self.with(|c| claim(c, worker, lease_until, now))
    }

    fn renew_lease(&self, job: BackupJobId, worker: &str, lease_until: Timestamp) -> Result<bool> {
        self.with(|c| renew(c, job, worker, lease_until))
    }

    fn abandoned_jobs(&self, now: Timestamp) -> Result<Vec<BackupJob>> {
        self.with(|c| abandoned(c, now))
    }

    fn fail_abandoned_job(
        &self,
        id: BackupJobId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<BackupJob>> {
        self.with(|c| fail_abandoned(c, id, reason, now))
    }
}

impl SqliteStore {
    /// The listing from the cache, or read and kept there, at `version` (of the cache).
    fn list_jobs_at(
        &self,
        version: i64,
        cluster: &DbClusterId,
        filter: &JobFilter,
    ) -> Result<Vec<BackupJob>> {
        if let Some(hit) = self.cache.jobs(cluster, filter) {
            return Ok(hit);
        }
        let jobs = self.read(|c| list(c, cluster, filter))?;
        self.cache.keep_jobs(version, cluster, filter, &jobs);
        Ok(jobs)
    }
}
