//! Backup sets in SQLite: listing with filters and pages (a live cluster's sets, or a released
//! cluster's detached ones), and two-phase deletion.

use super::clusters;
use super::rows::{db_id, secs, set_from, SET_COLUMNS};
use crate::records::{DeleteRefusal, SetFilter, SetPage};
use crate::{Result, StoreError};
use polarbackup_model::{
    BackupJobId, BackupSet, BackupSetStatus, ClusterStatus, DbClusterId, JobMode,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// One page of the sets of `cluster` that are (`detached`) or are not detached.
pub fn list(
    c: &Connection,
    cluster: &DbClusterId,
    f: &SetFilter,
    detached: bool,
) -> Result<SetPage> {
    let where_clause = "WHERE cluster_id = ?1 AND deleting = 0 AND detached = ?2
           AND (?3 IS NULL OR id = ?3)
           AND (?4 IS NULL OR status = ?4)
           AND (?5 IS NULL OR mode = ?5)
           AND start_time >= ?6 AND start_time <= ?7";
    let offset = u64::from(f.page_number.saturating_sub(1)) * u64::from(f.page_size);
    let args = params![
        cluster.as_str(),
        detached,
        f.id.map(db_id),
        f.status.map(BackupSetStatus::as_str),
        f.mode.map(JobMode::as_str),
        secs(f.start),
        secs(f.end),
        f.page_size,
        i64::try_from(offset).unwrap_or(i64::MAX)
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
pub fn detached_count(c: &Connection, cluster: &DbClusterId) -> Result<u64> {
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
pub fn begin_delete(
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
        match set {
            Some(s) if s.status != BackupSetStatus::Success => {
                return Ok(Err(DeleteRefusal::NotFound(id)))
            }
            Some(s) if s.mode == JobMode::Automated && !released => {
                return Ok(Err(DeleteRefusal::Automated(id)))
            }
            Some(s) => sets.push(s),
            None => return Ok(Err(DeleteRefusal::NotFound(id))),
        }
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

pub fn get(c: &Connection, id: BackupJobId) -> Result<Option<BackupSet>> {
    Ok(c.query_row(
        &format!("SELECT {SET_COLUMNS} FROM backup_sets WHERE id = ?1 AND deleting = 0"),
        [db_id(id)],
        set_from,
    )
    .optional()?)
}

pub fn pending_deletions(c: &Connection) -> Result<Vec<BackupSet>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {SET_COLUMNS} FROM backup_sets WHERE deleting = 1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([], set_from)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn forget(c: &Connection, id: BackupJobId) -> Result<()> {
    c.execute(
        "DELETE FROM backup_sets WHERE id = ?1 AND deleting = 1",
        [db_id(id)],
    )?;
    Ok(())
}

/// Every set id still known (listed or being deleted): repository objects of any other id are
/// orphans.
pub fn known_ids(c: &Connection) -> Result<Vec<BackupJobId>> {
    let mut stmt = c.prepare(
        "SELECT id FROM backup_sets UNION SELECT id FROM backup_jobs
         WHERE status IN ('NoStart','Preparing','Waiting','Uploading','Checking')",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
    rows.map(|r| Ok(BackupJobId(u64::try_from(r?).unwrap_or(0))))
        .collect()
}
