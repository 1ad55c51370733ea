//! Log backups in PostgreSQL: the log-backup policy, the archiver's lease on each cluster, the
//! WAL objects it stored (a longer partial or the whole segment replaces a partial) and the
//! gaps it found. [`WalStore`] for [`PgStore`].

use super::{all, clusters, sets, PgStore};
use crate::records::{ClusterOverview, RecoveryInputs, WalFilter, WalPage, WalRecorded};
use crate::rows::{
    db_log_id, db_lsn, db_size, gap_from, micros, overview_cluster_from, secs, set_from,
    wal_object_from, GAP_COLUMNS, WAL_COLUMNS,
};
use crate::rules::{decode_log_policy, page_offset, wal_page_bounds, wal_replacement};
use crate::{Result, StoreError, WalStore};
use jiff::Timestamp;
use polarbackup_model::{
    BackupLogId, ClusterStatus, DbClusterId, LogBackupPolicy, LogRetention, NewWalObject, WalGap,
    WalObject, WalObjectKind,
};
use postgres::GenericClient;

fn select(
    c: &mut impl GenericClient,
    condition: &str,
    params: super::Params<'_>,
) -> Result<Vec<WalObject>> {
    all(
        c,
        &format!("SELECT {WAL_COLUMNS} FROM wal_objects WHERE {condition}"),
        params,
        wal_object_from,
    )
}

fn by_lsn(c: &mut impl GenericClient, cluster: &DbClusterId) -> Result<Vec<WalObject>> {
    select(
        c,
        "cluster_id = $1 ORDER BY start_lsn, timeline, id",
        &[&cluster.as_str()],
    )
}

fn modify(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    retention: LogRetention,
) -> Result<std::result::Result<LogBackupPolicy, ClusterStatus>> {
    if let Err(status) = clusters::require_running(c, cluster)? {
        return Ok(Err(status));
    }
    c.execute(
        "INSERT INTO log_backup_policies (cluster_id, retention_days) VALUES ($1, $2)
         ON CONFLICT (cluster_id) DO UPDATE SET retention_days = excluded.retention_days",
        &[&cluster.as_str(), &retention.as_days()],
    )?;
    Ok(Ok(LogBackupPolicy { retention }))
}

/// Takes the lease when nobody holds it, `worker` already does, or the holder's lapsed.
fn claim(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    worker: &str,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    if clusters::require_running(c, cluster)?.is_err() {
        return Ok(false);
    }
    let changed = c.execute(
        "INSERT INTO wal_archivers (cluster_id, worker, lease_until) VALUES ($1, $2, $3)
         ON CONFLICT (cluster_id) DO UPDATE
             SET worker = excluded.worker, lease_until = excluded.lease_until
             WHERE wal_archivers.worker = excluded.worker OR wal_archivers.lease_until < $4",
        &[&cluster.as_str(), &worker, &secs(lease_until), &secs(now)],
    )?;
    Ok(changed == 1)
}

fn holds_lease(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    worker: &str,
    now: Timestamp,
) -> Result<bool> {
    Ok(c.query_one(
        "SELECT EXISTS (SELECT 1 FROM wal_archivers a JOIN clusters c ON c.id = a.cluster_id
                            WHERE a.cluster_id = $1 AND a.worker = $2 AND a.lease_until >= $3
                              AND c.status = 'Running')",
        &[&cluster.as_str(), &worker, &secs(now)],
    )?
    .try_get(0)?)
}

fn insert(c: &mut impl GenericClient, o: &NewWalObject) -> Result<WalObject> {
    wal_object_from(&c.query_one(
        &format!(
            "INSERT INTO wal_objects (cluster_id, timeline, kind, name, start_lsn, end_lsn, size,
                 stored_size, key, digest, start_us, end_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             RETURNING {WAL_COLUMNS}"
        ),
        &[
            &o.cluster_id.as_str(),
            &i64::from(o.timeline),
            &o.kind.as_str(),
            &o.name,
            &db_lsn(o.start)?,
            &db_lsn(o.end)?,
            &db_size(o.size),
            &db_size(o.stored_size),
            &o.key,
            &o.digest,
            &micros(o.start_time),
            &micros(o.end_time),
        ],
    )?)
}

/// Records `o` under the lease of `worker`, in the caller's transaction; see
/// [`WalStore::record_wal`].
fn record(
    c: &mut impl GenericClient,
    worker: &str,
    o: &NewWalObject,
    now: Timestamp,
) -> Result<Option<WalRecorded>> {
    if !holds_lease(c, &o.cluster_id, worker, now)? {
        return Ok(None);
    }
    if let Some(existing) = select(c, "key = $1", &[&o.key])?.pop() {
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
            "cluster_id = $1 AND kind = 'history' AND name = $2",
            &[&o.cluster_id.as_str(), &o.name],
        )?,
        WalObjectKind::Segment | WalObjectKind::Partial => select(
            c,
            "cluster_id = $1 AND timeline = $2 AND start_lsn = $3
             AND kind IN ('segment', 'partial') ORDER BY id",
            &[
                &o.cluster_id.as_str(),
                &i64::from(o.timeline),
                &db_lsn(o.start)?,
            ],
        )?,
    };
    let Some(replaced) = wal_replacement(o, here) else {
        return Ok(Some(WalRecorded {
            recorded: None,
            replaced: Vec::new(),
        }));
    };
    let ids: Vec<i64> = replaced.iter().map(|p| db_log_id(p.id)).collect();
    c.execute("DELETE FROM wal_objects WHERE id = ANY($1)", &[&ids])?;
    Ok(Some(WalRecorded {
        recorded: Some(insert(c, o)?),
        replaced,
    }))
}

/// One page of DescribeBackupLogs and the count, in the caller's snapshot.
fn page(c: &mut impl GenericClient, cluster: &DbClusterId, f: &WalFilter) -> Result<WalPage> {
    let condition = "cluster_id = $1 AND start_us < $2 AND end_us >= $3";
    let (before, after) = wal_page_bounds(f.from, f.to);
    let cluster = cluster.as_str();
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM wal_objects WHERE {condition}"),
            &[&cluster, &before, &after],
        )?
        .try_get(0)?;
    let objects = select(
        c,
        &format!("{condition} ORDER BY start_us, id LIMIT $4 OFFSET $5"),
        &[
            &cluster,
            &before,
            &after,
            &i64::from(f.page_size),
            &page_offset(f.page_number, f.page_size),
        ],
    )?;
    Ok(WalPage {
        objects,
        total: u64::try_from(total).unwrap_or(0),
    })
}

fn gaps_of(c: &mut impl GenericClient, cluster: &DbClusterId) -> Result<Vec<WalGap>> {
    all(
        c,
        &format!(
            "SELECT {GAP_COLUMNS} FROM wal_gaps WHERE cluster_id = $1 ORDER BY detected_us, id"
        ),
        &[&cluster.as_str()],
        gap_from,
    )
}

fn insert_gap(c: &mut impl GenericClient, gap: &WalGap) -> Result<()> {
    if clusters::status(c, &gap.cluster_id)?.is_none() {
        return Err(StoreError::NotFound { what: "cluster" });
    }
    c.execute(
        "INSERT INTO wal_gaps (cluster_id, timeline, from_lsn, to_lsn, detected_us, reason)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &gap.cluster_id.as_str(),
            &i64::from(gap.timeline),
            &db_lsn(gap.from)?,
            &db_lsn(gap.to)?,
            &micros(gap.detected_at),
            &gap.reason,
        ],
    )?;
    Ok(())
}

impl WalStore for PgStore {
    fn log_backup_policy(&self, cluster: &DbClusterId) -> Result<LogBackupPolicy> {
        let cluster = cluster.clone();
        self.read(move |c| {
            let days = c
                .query_opt(
                    "SELECT retention_days FROM log_backup_policies WHERE cluster_id = $1",
                    &[&cluster.as_str()],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            decode_log_policy(&cluster, days)
        })
    }

    fn modify_log_backup_policy(
        &self,
        cluster: &DbClusterId,
        retention: LogRetention,
    ) -> Result<std::result::Result<LogBackupPolicy, ClusterStatus>> {
        let cluster = cluster.clone();
        self.write(move |tx| modify(tx, &cluster, retention))
    }

    fn claim_archiver(
        &self,
        cluster: &DbClusterId,
        worker: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let (cluster, worker) = (cluster.clone(), worker.to_owned());
        self.write(move |tx| claim(tx, &cluster, &worker, lease_until, now))
    }

    fn release_archiver(&self, cluster: &DbClusterId, worker: &str) -> Result<()> {
        let (cluster, worker) = (cluster.clone(), worker.to_owned());
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM wal_archivers WHERE cluster_id = $1 AND worker = $2",
                &[&cluster.as_str(), &worker],
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
        let (worker, object) = (worker.to_owned(), object.clone());
        self.write(move |tx| record(tx, &worker, &object, now))
    }

    fn wal_objects(&self, cluster: &DbClusterId) -> Result<Vec<WalObject>> {
        let cluster = cluster.clone();
        self.read(move |c| by_lsn(c, &cluster))
    }

    fn wal_page(&self, cluster: &DbClusterId, filter: &WalFilter) -> Result<WalPage> {
        let (cluster, filter) = (cluster.clone(), filter.clone());
        self.snapshot(move |tx| page(tx, &cluster, &filter))
    }

    fn wal_object(&self, id: BackupLogId) -> Result<Option<WalObject>> {
        self.read(move |c| Ok(select(c, "id = $1", &[&db_log_id(id)])?.pop()))
    }

    fn remove_wal(&self, cluster: &DbClusterId, ids: &[BackupLogId]) -> Result<Vec<WalObject>> {
        let cluster = cluster.clone();
        let ids: Vec<i64> = ids.iter().copied().map(db_log_id).collect();
        self.write(move |tx| {
            let mut removed = all(
                tx,
                &format!(
                    "DELETE FROM wal_objects WHERE cluster_id = $1 AND id = ANY($2)
                     RETURNING {WAL_COLUMNS}"
                ),
                &[&cluster.as_str(), &ids],
                wal_object_from,
            )?;
            // In the order asked, as the SQLite store returns them.
            removed.sort_by_key(|w| ids.iter().position(|&i| i == db_log_id(w.id)));
            Ok(removed)
        })
    }

    fn recovery_inputs(&self, cluster: &DbClusterId) -> Result<RecoveryInputs> {
        let cluster = cluster.clone();
        self.snapshot(move |tx| {
            Ok(RecoveryInputs {
                sets: sets::sets_of(tx, &cluster)?,
                wal: by_lsn(tx, &cluster)?,
                gaps: gaps_of(tx, &cluster)?,
            })
        })
    }

    fn recovery_overview(&self) -> Result<Vec<ClusterOverview>> {
        use crate::rules::overview;
        self.snapshot(|tx| {
            let clusters = all(tx, overview::CLUSTERS, &[], overview_cluster_from)?;
            let sets = all(tx, &overview::sets(), &[], set_from)?;
            let wal = all(tx, &overview::wal(), &[], wal_object_from)?;
            let gaps = all(tx, &overview::gaps(), &[], gap_from)?;
            overview::deal(clusters, sets, wal, gaps)
        })
    }

    fn record_gap(&self, worker: &str, gap: &WalGap, now: Timestamp) -> Result<bool> {
        let (worker, gap) = (worker.to_string(), gap.clone());
        self.write(move |tx| {
            if !holds_lease(tx, &gap.cluster_id, &worker, now)? {
                return Ok(false);
            }
            insert_gap(tx, &gap)?;
            Ok(true)
        })
    }

    fn gaps(&self, cluster: &DbClusterId) -> Result<Vec<WalGap>> {
        let cluster = cluster.clone();
        self.read(move |c| gaps_of(c, &cluster))
    }
}
