//! Backup sets in SQLite: listing with filters and pages (a live cluster's sets, or a released
//! cluster's detached ones), two-phase deletion, and expiry. Detached sets never expire.

use super::clusters;
use super::rows::{db_id, secs, set_from, SET_COLUMNS};
use super::SqliteStore;
use crate::records::{DeleteRefusal, SetFilter, SetPage};
use crate::rules::{deletable, dependency, expirable, page_offset};
use crate::{Result, SetStore, StoreError};
use jiff::Timestamp;
use polarbackup_model::{
    BackupJobId, BackupSet, BackupSetStatus, ClusterStatus, DbClusterId, JobMode,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// One page of the sets of `cluster` that are (`detached`) or are not detached.
fn list(c: &Connection, cluster: &DbClusterId, f: &SetFilter, detached: bool) -> Result<SetPage> {
    let where_clause = "WHERE cluster_id = ?1 AND deleting = 0 AND detached = ?2
           AND (?3 IS NULL OR id = ?3)
           AND (?4 IS NULL OR status = ?4)
           AND (?5 IS NULL OR mode = ?5)
           AND start_time >= ?6 AND start_time <= ?7";
    let args = params![
        cluster.as_str(),
        detached,
        f.id.map(db_id),
        f.status.map(BackupSetStatus::as_str),
        f.mode.map(JobMode::as_str),
        secs(f.start),
        secs(f.end),
        f.page_size,
        page_offset(f.page_number, f.page_size)
    ];
    // The count binds the seven filter parameters; the page adds LIMIT and OFFSET.
    let total: u64 = c.query_row(
        &format!("SELECT count(*) FROM backup_sets {where_clause}"),
        &args[..7],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SET_COLUMNS} FROM backup_sets {where_clause}
         ORDER BY start_time DESC, id DESC LIMIT ?8 OFFSET ?9"
    ))?;
    let rows = stmt.query_map(args, set_from)?;
    Ok(SetPage {
        sets: rows.collect::<rusqlite::Result<Vec<_>>>()?,
        total,
    })
}

/// Detached sets a released cluster still has (not being deleted).
fn detached_count(c: &Connection, cluster: &DbClusterId) -> Result<u64> {
    Ok(c.query_row(
        "SELECT count(*) FROM backup_sets WHERE cluster_id = ?1 AND deleting = 0 AND detached = 1",
        [cluster.as_str()],
        |r| r.get(0),
    )?)
}

/// Checks every id first, then hides them all at once (`deleting = 1`). The caller removes
/// the data and then calls [`forget`]; a crash in between leaves a hidden row that the next
/// start finishes deleting, never a listed set without data. A Running cluster's manual sets
/// qualify; a released cluster's detached sets qualify whatever their mode (they no longer
/// expire); nothing of a cluster being deleted does.
fn begin_delete(
    c: &mut Connection,
    cluster: &DbClusterId,
    ids: &[BackupJobId],
) -> Result<std::result::Result<Vec<BackupSet>, DeleteRefusal>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let released = match clusters::status(&tx, cluster)? {
        Some(ClusterStatus::Running) => false,
        Some(ClusterStatus::Deleted) => true,
        Some(s @ ClusterStatus::Deleting) => return Ok(Err(DeleteRefusal::ClusterNotRunning(s))),
        None => return Err(StoreError::NotFound { what: "cluster" }),
    };
    let mut sets = Vec::with_capacity(ids.len());
    for &id in ids {
        let set = tx
            .query_row(
                &format!(
                    "SELECT {SET_COLUMNS} FROM backup_sets
                     WHERE id = ?1 AND cluster_id = ?2 AND deleting = 0 AND detached = ?3"
                ),
                params![db_id(id), cluster.as_str(), released],
                set_from,
            )
            .optional()?;
        match deletable(id, set, released) {
            Ok(s) => sets.push(s),
            Err(refusal) => return Ok(Err(refusal)),
        }
    }
    if let Some(refusal) = dependency(&sets, &children(&tx, &sets)?) {
        return Ok(Err(refusal));
    }
    for s in &sets {
        tx.execute(
            "UPDATE backup_sets SET deleting = 1 WHERE id = ?1",
            [db_id(s.id)],
        )?;
    }
    tx.commit()?;
    Ok(Ok(sets))
}

/// `(parent, child)` for every set not being deleted whose parent is one of `sets`.
fn children(c: &Connection, sets: &[BackupSet]) -> Result<Vec<(BackupJobId, BackupJobId)>> {
    let mut stmt =
        c.prepare_cached("SELECT id FROM backup_sets WHERE parent_id = ?1 AND deleting = 0")?;
    let mut out = Vec::new();
    for s in sets {
        let rows = stmt.query_map([db_id(s.id)], |r| r.get::<_, i64>(0))?;
        for child in rows {
            out.push((s.id, BackupJobId(u64::try_from(child?).unwrap_or(0))));
        }
    }
    Ok(out)
}

fn get(c: &Connection, id: BackupJobId) -> Result<Option<BackupSet>> {
    Ok(c.query_row(
        &format!("SELECT {SET_COLUMNS} FROM backup_sets WHERE id = ?1 AND deleting = 0"),
        [db_id(id)],
        set_from,
    )
    .optional()?)
}

fn pending_deletions(c: &Connection) -> Result<Vec<BackupSet>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {SET_COLUMNS} FROM backup_sets WHERE deleting = 1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([], set_from)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn forget(c: &Connection, id: BackupJobId) -> Result<()> {
    c.execute(
        "DELETE FROM backup_sets WHERE id = ?1 AND deleting = 1",
        [db_id(id)],
    )?;
    Ok(())
}

/// Every usable set id (listed, detached or being deleted) and every job not ended:
/// repository objects of any other id (a failed set's included) are orphans.
fn known_ids(c: &Connection) -> Result<Vec<BackupJobId>> {
    let mut stmt = c.prepare(
        "SELECT id FROM backup_sets WHERE status <> 'Failed' UNION SELECT id FROM backup_jobs
         WHERE status IN ('NoStart','Preparing','Waiting','Uploading','Checking') ORDER BY 1",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
    rows.map(|r| Ok(BackupJobId(u64::try_from(r?).unwrap_or(0))))
        .collect()
}

/// All listed sets of a cluster that are not detached, for retention and deletion.
pub fn sets_of(c: &Connection, cluster: &DbClusterId) -> Result<Vec<BackupSet>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {SET_COLUMNS} FROM backup_sets
         WHERE cluster_id = ?1 AND deleting = 0 AND detached = 0 ORDER BY id"
    ))?;
    let rows = stmt.query_map([cluster.as_str()], set_from)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Hides expired sets (never a detached one, nor one a kept incremental set is built on, read
/// in the same transaction); the workers remove their data and then their rows.
fn expire(c: &mut Connection, ids: &[BackupJobId]) -> Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut clusters: Vec<DbClusterId> = Vec::new();
    for id in ids {
        let set = get(&tx, *id)?;
        if let Some(s) = set.filter(|s| !clusters.contains(&s.cluster_id)) {
            clusters.push(s.cluster_id);
        }
    }
    let mut sets = Vec::new();
    for cluster in &clusters {
        sets.extend(sets_of(&tx, cluster)?);
    }
    for id in &expirable(&sets, ids) {
        tx.execute(
            "UPDATE backup_sets SET deleting = 1
             WHERE id = ?1 AND mode = 'Automated' AND detached = 0",
            [db_id(*id)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn verifiable(c: &Connection) -> Result<Vec<BackupSet>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {SET_COLUMNS} FROM backup_sets
         WHERE deleting = 0 AND status = 'Success' ORDER BY id"
    ))?;
    let rows = stmt.query_map([], set_from)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Marks a listed successful set corrupt, keeping the first reason; false when none.
fn mark_corrupt(c: &Connection, id: BackupJobId, reason: &str, now: i64) -> Result<bool> {
    let n = c.execute(
        "UPDATE backup_sets SET corrupt_reason = coalesce(corrupt_reason, ?2),
             corrupt_at = coalesce(corrupt_at, ?3)
         WHERE id = ?1 AND deleting = 0 AND status = 'Success'",
        params![db_id(id), reason, now],
    )?;
    Ok(n > 0)
}

/// The scrub's claim; see [`SetStore::claim_scrub`].
fn claim_scrub(
    c: &mut Connection,
    worker: &str,
    verified_before: i64,
    lease_until: i64,
    now: i64,
) -> Result<Option<BackupSet>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let set = tx
        .query_row(
            &format!(
                "SELECT {SET_COLUMNS} FROM backup_sets
                 WHERE deleting = 0 AND status = 'Success' AND corrupt_reason IS NULL
                   AND coalesce(verified_at, end_time) <= ?1
                   AND (scrub_until IS NULL OR scrub_until < ?2)
                 ORDER BY coalesce(verified_at, end_time), id LIMIT 1"
            ),
            params![verified_before, now],
            set_from,
        )
        .optional()?;
    if let Some(s) = &set {
        tx.execute(
            "UPDATE backup_sets SET scrub_owner = ?2, scrub_until = ?3 WHERE id = ?1",
            params![db_id(s.id), worker, lease_until],
        )?;
    }
    tx.commit()?;
    Ok(set)
}

fn end_scrub(c: &Connection, id: BackupJobId, worker: &str, now: i64) -> Result<bool> {
    let n = c.execute(
        "UPDATE backup_sets SET verified_at = ?3, scrub_owner = NULL, scrub_until = NULL
         WHERE id = ?1 AND scrub_owner = ?2",
        params![db_id(id), worker, now],
    )?;
    Ok(n > 0)
}

impl SetStore for SqliteStore {
    fn list_backup_sets(&self, cluster: &DbClusterId, filter: &SetFilter) -> Result<SetPage> {
        self.with(|c| list(c, cluster, filter, false))
    }

    fn list_detached_sets(&self, cluster: &DbClusterId, filter: &SetFilter) -> Result<SetPage> {
        self.with(|c| list(c, cluster, filter, true))
    }

    fn detached_set_count(&self, cluster: &DbClusterId) -> Result<u64> {
        self.with(|c| detached_count(c, cluster))
    }

    fn backup_set(&self, id: BackupJobId) -> Result<Option<BackupSet>> {
        self.with(|c| get(c, id))
    }

    fn cluster_sets(&self, cluster: &DbClusterId) -> Result<Vec<BackupSet>> {
        self.with(|c| sets_of(c, cluster))
    }

    fn begin_delete_sets(
        &self,
        cluster: &DbClusterId,
        ids: &[BackupJobId],
    ) -> Result<std::result::Result<Vec<BackupSet>, DeleteRefusal>> {
        self.with(|c| begin_delete(c, cluster, ids))
    }

    fn expire_sets(&self, ids: &[BackupJobId]) -> Result<()> {
        self.with(|c| expire(c, ids))
    }

    fn pending_deletions(&self) -> Result<Vec<BackupSet>> {
        self.with(|c| pending_deletions(c))
    }

    fn forget_set(&self, id: BackupJobId) -> Result<()> {
        self.with(|c| forget(c, id))
    }

    fn known_backup_ids(&self) -> Result<Vec<BackupJobId>> {
        self.with(|c| known_ids(c))
    }

    fn verifiable_sets(&self) -> Result<Vec<BackupSet>> {
        self.with(|c| verifiable(c))
    }

    fn mark_set_corrupt(&self, id: BackupJobId, reason: &str, now: Timestamp) -> Result<bool> {
        self.with(|c| mark_corrupt(c, id, reason, secs(now)))
    }

    fn claim_scrub(
        &self,
        worker: &str,
        verified_before: Timestamp,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<BackupSet>> {
        self.with(|c| {
            claim_scrub(
                c,
                worker,
                secs(verified_before),
                secs(lease_until),
                secs(now),
            )
        })
    }

    fn end_scrub(&self, id: BackupJobId, worker: &str, now: Timestamp) -> Result<bool> {
        self.with(|c| end_scrub(c, id, worker, secs(now)))
    }
}
