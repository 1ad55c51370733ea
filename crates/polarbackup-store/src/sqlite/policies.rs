//! Backup policies and exactly-once scheduling of automated jobs. Only Running clusters are
//! scheduled or changed.

use super::rows::secs;
use super::{clusters, jobs};
use crate::rules::{decode_policy, encode_policy};
use crate::{Result, StoreError};
use jiff::Timestamp;
use polarbackup_model::policy::{BackupPolicy, FullBackupEvery, PolicyChange};
use polarbackup_model::{BackupJob, BackupKind, ClusterStatus, DbClusterId, JobMode, TaskAction};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// A cluster's policy (the default when none was ever stored) and its last scheduled slot.
pub fn get(c: &Connection, cluster: &DbClusterId) -> Result<(BackupPolicy, Option<Timestamp>)> {
    let row = c
        .query_row(
            "SELECT policy, last_slot FROM backup_policies WHERE cluster_id = ?1",
            [cluster.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    decode_policy(cluster, row)
}

/// Inserts the default policy of a cluster that has none, with its schedule starting at
/// `last_slot`.
pub fn insert_default(c: &Connection, cluster: &str, last_slot: Option<Timestamp>) -> Result<()> {
    c.execute(
        "INSERT INTO backup_policies (cluster_id, policy, last_slot) VALUES (?1, ?2, ?3)",
        params![
            cluster,
            encode_policy(&BackupPolicy::default())?,
            last_slot.map(secs)
        ],
    )?;
    Ok(())
}

/// Reads, changes and writes a Running cluster's policy; the caller's write transaction makes
/// the three one step. Refuses (changing nothing) a cluster being deleted.
pub fn modify(
    c: &Connection,
    cluster: &DbClusterId,
    change: &PolicyChange,
) -> Result<std::result::Result<BackupPolicy, ClusterStatus>> {
    if let Err(status) = clusters::require_running(c, cluster)? {
        return Ok(Err(status));
    }
    let (mut policy, _) = get(c, cluster)?;
    policy.apply(*change);
    c.execute(
        "INSERT INTO backup_policies (cluster_id, policy) VALUES (?1, ?2)
         ON CONFLICT (cluster_id) DO UPDATE SET policy = excluded.policy",
        params![cluster.as_str(), encode_policy(&policy)?],
    )?;
    Ok(Ok(policy))
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
            let (policy, last) = decode_policy(&cluster, row)?;
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
    kind: BackupKind,
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
        insert_default(&tx, cluster.as_str(), None)?;
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
        kind,
        None,
        now,
    )?;
    tx.commit()?;
    Ok(Some(job))
}

/// Sets a Running cluster's schedule of full backups, the status checked in the same write
/// transaction.
pub fn set_full_backup_every(
    c: &mut Connection,
    cluster: &DbClusterId,
    every: Option<FullBackupEvery>,
) -> Result<std::result::Result<(), ClusterStatus>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Err(status) = clusters::require_running(&tx, cluster)? {
        return Ok(Err(status));
    }
    tx.execute(
        "UPDATE clusters SET full_backup_every = ?2 WHERE id = ?1",
        params![cluster.as_str(), every.map(FullBackupEvery::as_str)],
    )?;
    tx.commit()?;
    Ok(Ok(()))
}
