//! Backup policies, exactly-once scheduling of automated jobs, and expiry of old sets. Only
//! Running clusters are scheduled and expired; detached sets never expire.

use super::rows::{db_id, secs, set_from, ts, SET_COLUMNS};
use super::{clusters, jobs};
use crate::{Result, StoreError};
use jiff::Timestamp;
use polarbackup_model::policy::BackupPolicy;
use polarbackup_model::{
    BackupJob, BackupJobId, BackupSet, ClusterStatus, DbClusterId, JobMode, TaskAction,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// A stored policy row (or none) as a policy and a last slot.
fn decode(
    cluster: &DbClusterId,
    row: Option<(String, Option<i64>)>,
) -> Result<(BackupPolicy, Option<Timestamp>)> {
    match row {
        None => Ok((BackupPolicy::default(), None)),
        Some((json, last)) => {
            let policy = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("backup policy of {cluster}: {e}")))?;
            Ok((policy, last.map(ts).transpose()?))
        }
    }
}

/// A cluster's policy (the default when none was ever stored) and its last scheduled slot.
pub fn get(c: &Connection, cluster: &DbClusterId) -> Result<(BackupPolicy, Option<Timestamp>)> {
    let row = c
        .query_row(
            "SELECT policy, last_slot FROM backup_policies WHERE cluster_id = ?1",
            [cluster.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    decode(cluster, row)
}

/// Stores the policy of a Running cluster; refuses (changing nothing) one being deleted.
pub fn set(
    c: &mut Connection,
    cluster: &DbClusterId,
    policy: &BackupPolicy,
) -> Result<std::result::Result<(), ClusterStatus>> {
    let json = serde_json::to_string(policy)
        .map_err(|e| StoreError::Corrupt(format!("backup policy: {e}")))?;
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Err(status) = clusters::require_running(&tx, cluster)? {
        return Ok(Err(status));
    }
    tx.execute(
        "INSERT INTO backup_policies (cluster_id, policy) VALUES (?1, ?2)
         ON CONFLICT (cluster_id) DO UPDATE SET policy = excluded.policy",
        params![cluster.as_str(), json],
    )?;
    tx.commit()?;
    Ok(Ok(()))
}

/// Every Running cluster with its policy and last slot, for the scheduler, in one query: it
/// runs on every worker pass.
pub fn all(c: &Connection) -> Result<Vec<(DbClusterId, BackupPolicy, Option<Timestamp>)>> {
    let mut stmt = c.prepare_cached(
        "SELECT c.id, p.policy, p.last_slot FROM clusters c
         LEFT JOIN backup_policies p ON p.cluster_id = c.id
         WHERE c.status = 'Running' ORDER BY c.id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            let policy: Option<String> = r.get(1)?;
            let last: Option<i64> = r.get(2)?;
            Ok((r.get::<_, String>(0)?, policy.map(|p| (p, last))))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(id, row)| {
            let cluster = DbClusterId::parse(&id)
                .map_err(|_| StoreError::Corrupt(format!("cluster id {id:?}")))?;
            let (policy, last) = decode(&cluster, row)?;
            Ok((cluster, policy, last))
        })
        .collect()
}

/// Queues the automated job for `slot` unless that slot (or a later one) was already taken or
/// the cluster is no longer Running: the checks and the insert share one write transaction.
pub fn schedule(
    c: &mut Connection,
    cluster: &DbClusterId,
    slot: Timestamp,
    now: Timestamp,
) -> Result<Option<BackupJob>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if clusters::require_running(&tx, cluster)?.is_err() {
        return Ok(None);
    }
    let last: Option<Option<i64>> = tx
        .query_row(
            "SELECT last_slot FROM backup_policies WHERE cluster_id = ?1",
            [cluster.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    if last.flatten().is_some_and(|l| l >= secs(slot)) {
        return Ok(None);
    }
    if last.is_none() {
        let json = serde_json::to_string(&BackupPolicy::default())
            .map_err(|e| StoreError::Corrupt(format!("backup policy: {e}")))?;
        tx.execute(
            "INSERT INTO backup_policies (cluster_id, policy) VALUES (?1, ?2)",
            params![cluster.as_str(), json],
        )?;
    }
    tx.execute(
        "UPDATE backup_policies SET last_slot = ?2 WHERE cluster_id = ?1",
        params![cluster.as_str(), secs(slot)],
    )?;
    let job = jobs::insert(
        &tx,
        cluster,
        JobMode::Automated,
        TaskAction::NormalBackupTask,
        None,
        now,
    )?;
    tx.commit()?;
    Ok(Some(job))
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

/// Hides expired sets (never a detached one); the workers remove their data and then their
/// rows.
pub fn expire(c: &mut Connection, ids: &[BackupJobId]) -> Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for id in ids {
        tx.execute(
            "UPDATE backup_sets SET deleting = 1
             WHERE id = ?1 AND mode = 'Automated' AND detached = 0",
            [db_id(*id)],
        )?;
    }
    tx.commit()?;
    Ok(())
}
