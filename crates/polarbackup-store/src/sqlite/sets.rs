//! Backup sets in SQLite: listing with filters and pages, and two-phase deletion.

use super::rows::{db_id, secs, set_from, SET_COLUMNS};
use crate::records::{DeleteRefusal, SetFilter, SetPage};
use crate::Result;
use polarbackup_model::{BackupJobId, BackupSet, BackupSetStatus, DbClusterId, JobMode};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

pub fn list(c: &Connection, cluster: &DbClusterId, f: &SetFilter) -> Result<SetPage> {
    let where_clause = "WHERE cluster_id = ?1 AND deleting = 0
           AND (?2 IS NULL OR id = ?2)
           AND (?3 IS NULL OR status = ?3)
           AND (?4 IS NULL OR mode = ?4)
           AND start_time >= ?5 AND start_time <= ?6";
    let args = params![
        cluster.as_str(),
        f.id.map(db_id),
        f.status.map(BackupSetStatus::as_str),
        f.mode.map(JobMode::as_str),
        secs(f.start),
        secs(f.end)
    ];
    let total: u64 = c.query_row(
        &format!("SELECT count(*) FROM backup_sets {where_clause}"),
        args,
        |r| r.get(0),
    )?;
    let offset = u64::from(f.page_number.saturating_sub(1)) * u64::from(f.page_size);
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SET_COLUMNS} FROM backup_sets {where_clause}
         ORDER BY start_time DESC, id DESC LIMIT ?7 OFFSET ?8"
    ))?;
    let rows = stmt.query_map(
        params![
            cluster.as_str(),
            f.id.map(db_id),
            f.status.map(BackupSetStatus::as_str),
            f.mode.map(JobMode::as_str),
            secs(f.start),
            secs(f.end),
            f.page_size,
            i64::try_from(offset).unwrap_or(i64::MAX)
        ],
        set_from,
    )?;
    Ok(SetPage {
        sets: rows.collect::<rusqlite::Result<Vec<_>>>()?,
        total,
    })
}

/// Checks every id first, then hides them all at once (`deleting = 1`). The caller removes
/// the data and then calls [`forget`]; a crash in between leaves a hidden row that the next
/// start finishes deleting, never a listed set without data.
pub fn begin_delete(
    c: &mut Connection,
    cluster: &DbClusterId,
    ids: &[BackupJobId],
) -> Result<std::result::Result<Vec<BackupSet>, DeleteRefusal>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut sets = Vec::with_capacity(ids.len());
    for &id in ids {
        let set = tx
            .query_row(
                &format!(
                    "SELECT {SET_COLUMNS} FROM backup_sets
                     WHERE id = ?1 AND cluster_id = ?2 AND deleting = 0"
                ),
                params![db_id(id), cluster.as_str()],
                set_from,
            )
            .optional()?;
        match set {
            Some(s) if s.status != BackupSetStatus::Success => {
                return Ok(Err(DeleteRefusal::NotFound(id)))
            }
            Some(s) if s.mode == JobMode::Automated => {
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
