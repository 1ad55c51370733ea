//! Backup policies and exactly-once scheduling of automated jobs in PostgreSQL. Only Running
//! clusters are scheduled or changed.

use super::{clusters, jobs};
use crate::rows::secs;
use crate::rules::{decode_policy, encode_policy};
use crate::{Result, StoreError};
use jiff::Timestamp;
use polarbackup_model::policy::{BackupPolicy, FullBackupEvery, PolicyChange};
use polarbackup_model::{BackupJob, BackupKind, ClusterStatus, DbClusterId, JobMode, TaskAction};
use postgres::GenericClient;

/// A cluster's policy (the default when none was ever stored) and its last scheduled slot.
pub fn get(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
) -> Result<(BackupPolicy, Option<Timestamp>)> {
    let row = c
        .query_opt(
            "SELECT policy, last_slot FROM backup_policies WHERE cluster_id = $1",
            &[&cluster.as_str()],
        )?
        .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?;
    decode_policy(cluster, row)
}

/// Inserts the default policy of a cluster that has none, with its schedule starting at
/// `last_slot`.
pub fn insert_default(
    c: &mut impl GenericClient,
    cluster: &str,
    last_slot: Option<Timestamp>,
) -> Result<()> {
    c.execute(
        "INSERT INTO backup_policies (cluster_id, policy, last_slot) VALUES ($1, $2, $3)",
        &[
            &cluster,
            &encode_policy(&BackupPolicy::default())?,
            &last_slot.map(secs),
        ],
    )?;
    Ok(())
}

/// Reads, changes and writes a Running cluster's policy in the caller's transaction.
pub fn modify(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    change: &PolicyChange,
) -> Result<std::result::Result<BackupPolicy, ClusterStatus>> {
    if let Err(status) = clusters::require_running(c, cluster)? {
        return Ok(Err(status));
    }
    let (mut policy, _) = get(c, cluster)?;
    policy.apply(*change);
    c.execute(
        "INSERT INTO backup_policies (cluster_id, policy) VALUES ($1, $2)
         ON CONFLICT (cluster_id) DO UPDATE SET policy = excluded.policy",
        &[&cluster.as_str(), &encode_policy(&policy)?],
    )?;
    Ok(Ok(policy))
}

/// Every Running cluster with its policy and last slot, in one query.
pub fn all(
    c: &mut impl GenericClient,
) -> Result<Vec<(DbClusterId, BackupPolicy, Option<Timestamp>)>> {
    let rows = c.query(
        "SELECT c.id, p.policy, p.last_slot FROM clusters c
         LEFT JOIN backup_policies p ON p.cluster_id = c.id
         WHERE c.status = 'Running' ORDER BY c.id",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get(0)?;
            let policy: Option<String> = r.try_get(1)?;
            let last: Option<i64> = r.try_get(2)?;
            let cluster = DbClusterId::parse(&id)
                .map_err(|_| StoreError::Corrupt(format!("cluster id {id:?}")))?;
            let (policy, last) = decode_policy(&cluster, policy.map(|p| (p, last)))?;
            Ok((cluster, policy, last))
        })
        .collect()
}

/// Queues the automated job for `slot` unless that slot (or a later one) was already taken or
/// the cluster is no longer Running, in the caller's (serializable) transaction.
pub fn schedule(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    slot: Timestamp,
    kind: BackupKind,
    now: Timestamp,
) -> Result<Option<BackupJob>> {
    if clusters::require_running(c, cluster)?.is_err() {
        return Ok(None);
    }
    let last: Option<Option<i64>> = c
        .query_opt(
            "SELECT last_slot FROM backup_policies WHERE cluster_id = $1",
            &[&cluster.as_str()],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    if last.flatten().is_some_and(|l| l >= secs(slot)) {
        return Ok(None);
    }
    if last.is_none() {
        insert_default(c, cluster.as_str(), None)?;
    }
    c.execute(
        "UPDATE backup_policies SET last_slot = $2 WHERE cluster_id = $1",
        &[&cluster.as_str(), &secs(slot)],
    )?;
    let job = jobs::insert(
        c,
        cluster,
        JobMode::Automated,
        TaskAction::NormalBackupTask,
        kind,
        None,
        now,
    )?;
    Ok(Some(job))
}

/// Sets a Running cluster's schedule of full backups, in the caller's (serializable)
/// transaction with the status check.
pub fn set_full_backup_every(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    every: Option<FullBackupEvery>,
) -> Result<std::result::Result<(), ClusterStatus>> {
    if let Err(status) = clusters::require_running(c, cluster)? {
        return Ok(Err(status));
    }
    c.execute(
        "UPDATE clusters SET full_backup_every = $2 WHERE id = $1",
        &[&cluster.as_str(), &every.map(FullBackupEvery::as_str)],
    )?;
    Ok(Ok(()))
}
