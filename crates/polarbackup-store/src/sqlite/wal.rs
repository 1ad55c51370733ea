//! Log backups in SQLite: the log-backup policy, the archiver's lease on each cluster, the WAL
//! objects it stored (a longer partial or the whole segment replaces a partial) and the gaps
//! it found. [`WalStore`] for [`SqliteStore`].

use super::clusters;
use super::rows::{
    db_log_id, db_lsn, db_size, gap_from, micros, overview_cluster_from, secs, set_from,
    wal_object_from, GAP_COLUMNS, WAL_COLUMNS,
};
use super::SqliteStore;
use crate::records::{ClusterOverview, RecoveryInputs, WalFilter, WalPage, WalRecorded};
use crate::rules::{decode_log_policy, page_offset, wal_page_bounds, wal_replacement};
use crate::{Result, StoreError, WalStore};
use jiff::Timestamp;
use polarbackup_model::{
    BackupLogId, ClusterStatus, DbClusterId, LogBackupPolicy, LogRetention, NewWalObject, WalGap,
    WalObject, WalObjectKind,
};
use rusqlite::{params, Connection, OptionalExtension};

/// A cluster's policy; no row is the default.
fn policy(c: &Connection, cluster: &DbClusterId) -> Result<LogBackupPolicy> {
    let days: Option<i64> = c
        .query_row(
            "SELECT retention_days FROM log_backup_policies WHERE cluster_id = ?1",
            [cluster.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    decode_log_policy(cluster, days)
}

/// Sets a Running cluster's retention; the caller's write transaction holds the status check
/// and the write together.
fn modify(
    c: &Connection,
    cluster: &DbClusterId,
    retention: LogRetention,
) -> Result<std::result::Result<LogBackupPolicy, ClusterStatus>> {
    if let Err(status) = clusters::require_running(c, cluster)? {
        return Ok(Err(status));
    }
    c.execute(
        "INSERT INTO log_backup_policies (cluster_id, retention_days) VALUES (?1, ?2)
         ON CONFLICT (cluster_id) DO UPDATE SET retention_days = excluded.retention_days",
        params![cluster.as_str(), retention.as_days()],
    )?;
    Ok(Ok(LogBackupPolicy { retention }))
}

/// Takes the lease when nobody holds it, `worker` already does, or the holder's lapsed; the
/// upsert's condition is the whole check, so two claimers cannot both win.
fn claim(
    c: &Connection,
    cluster: &DbClusterId,
    worker: &str,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    if clusters::require_running(c, cluster)?.is_err() {
        return Ok(false);
    }
    let changed = c.execute(
        "INSERT INTO wal_archivers (cluster_id, worker, lease_until) VALUES (?1, ?2, ?3)
         ON CONFLICT (cluster_id) DO UPDATE
             SET worker = excluded.worker, lease_until = excluded.lease_until
             WHERE wal_archivers.worker = excluded.worker OR wal_archivers.lease_until < ?4",
        params![cluster.as_str(), worker, secs(lease_until), secs(now)],
    )?;
    Ok(changed == 1)
}

fn holds_lease(
    c: &Connection,
    cluster: &DbClusterId,
    worker: &str,
    now: Timestamp,
) -> Result<bool> {
    Ok(c.query_row(
        "SELECT EXISTS (SELECT 1 FROM wal_archivers a JOIN clusters c ON c.id = a.cluster_id
                        WHERE a.cluster_id = ?1 AND a.worker = ?2 AND a.lease_until >= ?3
                          AND c.status = 'Running')",
        params![cluster.as_str(), worker, secs(now)],
        |r| r.get(0),
    )?)
}

fn select(c: &Connection, condition: &str, args: impl rusqlite::Params) -> Result<Vec<WalObject>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {WAL_COLUMNS} FROM wal_objects WHERE {condition}"
    ))?;
    let rows = stmt.query_map(args, wal_object_from)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn insert(c: &Connection, o: &NewWalObject) -> Result<WalObject> {
    c.execute(
        "INSERT INTO wal_objects (cluster_id, timeline, kind, name, start_lsn, end_lsn, size,
             stored_size, key, digest, start_us, end_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            o.cluster_id.as_str(),
            i64::from(o.timeline),
            o.kind.as_str(),
            o.name,
            db_lsn(o.start)?,
            db_lsn(o.end)?,
            db_size(o.size),
            db_size(o.stored_size),
            o.key,
            o.digest,
            micros(o.start_time),
            micros(o.end_time),
        ],
    )?;
    // Read back: the row is what every later read returns (times to the microsecond).
    select(c, "id = ?1", [c.last_insert_rowid()])?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("WAL object lost on insert".into()))
}

/// Records `o` under the lease of `worker`, in the caller's write transaction: nothing when the
/// lease is not held; the existing row for a key recorded before (a retry); otherwise a
/// segment or partial replaces the shorter partials at its place, or is refused when an
/// object there already reaches as far.
fn record(
    c: &Connection,
    worker: &str,
    o: &NewWalObject,
    now: Timestamp,
) -> Result<Option<WalRecorded>> {
    if !holds_lease(c, &o.cluster_id, worker, now)? {
        return Ok(None);
    }
    let refused = Some(WalRecorded {
        recorded: None,
        replaced: Vec::new(),
    });
    if let Some(existing) = select(c, "key = ?1", [&o.key])?.pop() {
        if existing.object.cluster_id != o.cluster_id {
            return Err(StoreError::Conflict("WAL object key"));
        }
        return Ok(Some(WalRecorded {
            recorded: Some(existing),
            replaced: Vec::new(),
        }));
    }
    let here = match o.kind {
        WalObjectKind::History => select(
            c,
            "cluster_id = ?1 AND kind = 'history' AND name = ?2",
            params![o.cluster_id.as_str(), o.name],
        )?,
        WalObjectKind::Segment | WalObjectKind::Partial => select(
            c,
            "cluster_id = ?1 AND timeline = ?2 AND start_lsn = ?3
             AND kind IN ('segment', 'partial') ORDER BY id",
            params![
                o.cluster_id.as_str(),
                i64::from(o.timeline),
                db_lsn(o.start)?
            ],
        )?,
    };
    let Some(replaced) = wal_replacement(o, here) else {
        return Ok(refused);
    };
    for p in &replaced {
        c.execute("DELETE FROM wal_objects WHERE id = ?1", [db_log_id(p.id)])?;
    }
    Ok(Some(WalRecorded {
        recorded: Some(insert(c, o)?),
        replaced,
    }))
}

/// Times are compared to the whole second, as DescribeBackupLogs shows them: an object that
/// starts within the second `to` or ends within the second `from` meets the range.
fn page(c: &Connection, cluster: &DbClusterId, f: &WalFilter) -> Result<WalPage> {
    let condition = "cluster_id = ?1 AND start_us < ?2 AND end_us >= ?3";
    let (before, after) = wal_page_bounds(f.from, f.to);
    let args = params![
        cluster.as_str(),
        before,
        after,
        f.page_size,
        page_offset(f.page_number, f.page_size)
    ];
    // The count binds the three filter parameters; the page adds LIMIT and OFFSET.
    let total: u64 = c.query_row(
        &format!("SELECT count(*) FROM wal_objects WHERE {condition}"),
        &args[..3],
        |r| r.get(0),
    )?;
    let objects = select(
        c,
        &format!("{condition} ORDER BY start_us, id LIMIT ?4 OFFSET ?5"),
        args,
    )?;
    Ok(WalPage { objects, total })
}

/// Deletes the listed objects of `cluster` and returns those that were there.
fn remove(c: &Connection, cluster: &DbClusterId, ids: &[BackupLogId]) -> Result<Vec<WalObject>> {
    let mut removed = Vec::with_capacity(ids.len());
    for &id in ids {
        let condition = "id = ?1 AND cluster_id = ?2";
        let args = params![db_log_id(id), cluster.as_str()];
        let found = select(c, condition, args)?;
        if !found.is_empty() {
            c.execute(&format!("DELETE FROM wal_objects WHERE {condition}"), args)?;
        }
        removed.extend(found);
    }
    Ok(removed)
}

fn insert_gap(c: &Connection, gap: &WalGap) -> Result<()> {
    if clusters::status(c, &gap.cluster_id)?.is_none() {
        return Err(StoreError::NotFound { what: "cluster" });
    }
    c.execute(
        "INSERT INTO wal_gaps (cluster_id, timeline, from_lsn, to_lsn, detected_us, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            gap.cluster_id.as_str(),
            i64::from(gap.timeline),
            db_lsn(gap.from)?,
            db_lsn(gap.to)?,
            micros(gap.detected_at),
            gap.reason,
        ],
    )?;
    Ok(())
}

/// Every row of a statement without parameters.
fn every<T>(
    c: &Connection,
    sql: &str,
    decode: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map([], decode)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn gaps_of(c: &Connection, cluster: &DbClusterId) -> Result<Vec<WalGap>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {GAP_COLUMNS} FROM wal_gaps WHERE cluster_id = ?1 ORDER BY detected_us, id"
    ))?;
    let rows = stmt.query_map([cluster.as_str()], gap_from)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

impl WalStore for SqliteStore {
    fn log_backup_policy(&self, cluster: &DbClusterId) -> Result<LogBackupPolicy> {
        self.with(|c| policy(c, cluster))
    }

    fn modify_log_backup_policy(
        &self,
        cluster: &DbClusterId,
        retention: LogRetention,
    ) -> Result<std::result::Result<LogBackupPolicy, ClusterStatus>> {
        self.write(|tx| modify(tx, cluster, retention))
    }

    fn claim_archiver(
        &self,
        cluster: &DbClusterId,
        worker: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.write(|tx| claim(tx, cluster, worker, lease_until, now))
    }

    fn release_archiver(&self, cluster: &DbClusterId, worker: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM wal_archivers WHERE cluster_id = ?1 AND worker = ?2",
                params![cluster.as_str(), worker],
            )?;
            Ok(())
        })
    }

    fn record_wal(
        &self,
        worker: &str,
        object: &NewWalObject,
        now: Timestamp,
    ) -> Result<Option<WalRecorded>> {
        self.write(|tx| record(tx, worker, object, now))
    }

    fn wal_objects(&self, cluster: &DbClusterId) -> Result<Vec<WalObject>> {
        self.with(|c| {
            select(
                c,
                "cluster_id = ?1 ORDER BY start_lsn, timeline, id",
                [cluster.as_str()],
            )
        })
    }

    fn wal_page(&self, cluster: &DbClusterId, filter: &WalFilter) -> Result<WalPage> {
        self.with(|c| page(c, cluster, filter))
    }

    fn wal_object(&self, id: BackupLogId) -> Result<Option<WalObject>> {
        self.with(|c| Ok(select(c, "id = ?1", [db_log_id(id)])?.pop()))
    }

    fn remove_wal(&self, cluster: &DbClusterId, ids: &[BackupLogId]) -> Result<Vec<WalObject>> {
        self.write(|tx| remove(tx, cluster, ids))
    }

    fn recovery_inputs(&self, cluster: &DbClusterId) -> Result<RecoveryInputs> {
        self.with(|c| {
            // A deferred transaction: one read snapshot across the three queries.
            let tx = c.transaction()?;
            let inputs = RecoveryInputs {
                sets: super::sets::sets_of(&tx, cluster)?,
                wal: select(
                    &tx,
                    "cluster_id = ?1 ORDER BY start_lsn, timeline, id",
                    [cluster.as_str()],
                )?,
                gaps: gaps_of(&tx, cluster)?,
            };
            tx.commit()?;
            Ok(inputs)
        })
    }

    fn recovery_overview(&self) -> Result<Vec<ClusterOverview>> {
        use crate::rules::overview;
        self.read(|c| {
            // One read snapshot across the statements, on a reader connection: a scrape of
            // many clusters never holds up the writer.
            let tx = c.unchecked_transaction()?;
            let clusters = every(&tx, overview::CLUSTERS, overview_cluster_from)?;
            let sets = every(&tx, &overview::sets(), set_from)?;
            let wal = every(&tx, &overview::wal(), wal_object_from)?;
            let gaps = every(&tx, &overview::gaps(), gap_from)?;
            tx.commit()?;
            overview::deal(clusters, sets, wal, gaps)
        })
    }

    fn record_gap(&self, worker: &str, gap: &WalGap, now: Timestamp) -> Result<bool> {
        self.write(|tx| {
            if !holds_lease(tx, &gap.cluster_id, worker, now)? {
                return Ok(false);
            }
            insert_gap(tx, gap)?;
            Ok(true)
        })
    }

    fn gaps(&self, cluster: &DbClusterId) -> Result<Vec<WalGap>> {
        self.with(|c| gaps_of(c, cluster))
    }
}
