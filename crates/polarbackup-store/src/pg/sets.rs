//! Backup sets in PostgreSQL: listing with filters and pages (a live cluster's sets, or a
//! released cluster's detached ones), two-phase deletion, and expiry.

use super::{all, clusters, jobs, opt, PgStore};
use crate::records::{DeleteRefusal, SetFilter, SetPage};
use crate::rows::{db_id, secs, set_from, SET_COLUMNS};
use crate::rules::{deletable, dependency, expirable, page_offset, NON_TERMINAL};
use crate::{Result, SetStore, StoreError};
use jiff::Timestamp;
use polarbackup_model::{
    BackupJobId, BackupSet, BackupSetStatus, ClusterStatus, DbClusterId, JobMode,
};
use postgres::GenericClient;

/// One page of the sets of `cluster` that are (`detached`) or are not detached, with the
/// count, in the caller's snapshot.
fn list(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    f: &SetFilter,
    detached: bool,
) -> Result<SetPage> {
    let where_clause = "WHERE cluster_id = $1 AND deleting = 0 AND detached = $2
           AND ($3::bigint IS NULL OR id = $3)
           AND ($4::text IS NULL OR status = $4)
           AND ($5::text IS NULL OR mode = $5)
           AND start_time >= $6 AND start_time <= $7";
    let (cluster, detached) = (cluster.as_str(), i64::from(detached));
    let (id, status, mode) = (
        f.id.map(db_id),
        f.status.map(BackupSetStatus::as_str),
        f.mode.map(JobMode::as_str),
    );
    let (start, end) = (secs(f.start), secs(f.end));
    let (limit, offset) = (
        i64::from(f.page_size),
        page_offset(f.page_number, f.page_size),
    );
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM backup_sets {where_clause}"),
            &[&cluster, &detached, &id, &status, &mode, &start, &end],
        )?
        .try_get(0)?;
    let sets = all(
        c,
        &format!(
            "SELECT {SET_COLUMNS} FROM backup_sets {where_clause}
             ORDER BY start_time DESC, id DESC LIMIT $8 OFFSET $9"
        ),
        &[
            &cluster, &detached, &id, &status, &mode, &start, &end, &limit, &offset,
        ],
        set_from,
    )?;
    Ok(SetPage {
        sets,
        total: u64::try_from(total).unwrap_or(0),
    })
}

/// Checks every id first, then hides them all at once; see the SQLite store for the protocol.
fn begin_delete(
    c: &mut impl GenericClient,
    cluster: &DbClusterId,
    ids: &[BackupJobId],
) -> Result<std::result::Result<Vec<BackupSet>, DeleteRefusal>> {
    let released = match clusters::status(c, cluster)? {
        Some(ClusterStatus::Running) => false,
        Some(ClusterStatus::Deleted) => true,
        Some(s @ ClusterStatus::Deleting) => return Ok(Err(DeleteRefusal::ClusterNotRunning(s))),
        None => return Err(StoreError::NotFound { what: "cluster" }),
    };
    let mut sets = Vec::with_capacity(ids.len());
    for &id in ids {
        let set = opt(
            c,
            &format!(
                "SELECT {SET_COLUMNS} FROM backup_sets
                 WHERE id = $1 AND cluster_id = $2 AND deleting = 0 AND detached = $3"
            ),
            &[&db_id(id), &cluster.as_str(), &i64::from(released)],
            set_from,
        )?;
        match deletable(id, set, released) {
            Ok(s) => sets.push(s),
            Err(refusal) => return Ok(Err(refusal)),
        }
    }
    if let Some(refusal) = dependency(&sets, &children(c, &sets)?) {
        return Ok(Err(refusal));
    }
    for s in &sets {
        c.execute(
            "UPDATE backup_sets SET deleting = 1 WHERE id = $1",
            &[&db_id(s.id)],
        )?;
    }
    Ok(Ok(sets))
}

/// `(parent, child)` for every set not being deleted whose parent is one of `sets`.
fn children(
    c: &mut impl GenericClient,
    sets: &[BackupSet],
) -> Result<Vec<(BackupJobId, BackupJobId)>> {
    let parents: Vec<i64> = sets.iter().map(|s| db_id(s.id)).collect();
    let rows = c.query(
        "SELECT parent_id, id FROM backup_sets WHERE parent_id = ANY($1) AND deleting = 0",
        &[&parents],
    )?;
    rows.iter()
        .map(|r| {
            let parent: i64 = r.try_get(0)?;
            let child: i64 = r.try_get(1)?;
            Ok((
                BackupJobId(u64::try_from(parent).unwrap_or(0)),
                BackupJobId(u64::try_from(child).unwrap_or(0)),
            ))
        })
        .collect()
}

/// Hides expired sets (never a detached one, nor one a kept incremental set is built on, read
/// in the same serializable transaction).
fn expire(c: &mut impl GenericClient, ids: &[BackupJobId]) -> Result<()> {
    let wanted: Vec<i64> = ids.iter().copied().map(db_id).collect();
    let clusters: Vec<String> = c
        .query(
            "SELECT DISTINCT cluster_id FROM backup_sets WHERE id = ANY($1) AND deleting = 0",
            &[&wanted],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let mut sets = Vec::new();
    for cluster in clusters {
        let cluster = DbClusterId::parse(&cluster)
            .map_err(|_| StoreError::Corrupt(format!("cluster id {cluster:?}")))?;
        sets.extend(sets_of(c, &cluster)?);
    }
    let ids: Vec<i64> = expirable(&sets, ids).into_iter().map(db_id).collect();
    c.execute(
        "UPDATE backup_sets SET deleting = 1
         WHERE id = ANY($1) AND mode = 'Automated' AND detached = 0",
        &[&ids],
    )?;
    Ok(())
}

/// All listed sets of a cluster that are not detached, for retention and deletion.
pub fn sets_of(c: &mut impl GenericClient, cluster: &DbClusterId) -> Result<Vec<BackupSet>> {
    all(
        c,
        &format!(
            "SELECT {SET_COLUMNS} FROM backup_sets
             WHERE cluster_id = $1 AND deleting = 0 AND detached = 0 ORDER BY id"
        ),
        &[&cluster.as_str()],
        set_from,
    )
}

impl SetStore for PgStore {
    fn list_backup_sets(&self, cluster: &DbClusterId, filter: &SetFilter) -> Result<SetPage> {
        let (cluster, filter) = (cluster.clone(), filter.clone());
        self.snapshot(move |tx| list(tx, &cluster, &filter, false))
    }

    fn list_detached_sets(&self, cluster: &DbClusterId, filter: &SetFilter) -> Result<SetPage> {
        let (cluster, filter) = (cluster.clone(), filter.clone());
        self.snapshot(move |tx| list(tx, &cluster, &filter, true))
    }

    fn detached_set_count(&self, cluster: &DbClusterId) -> Result<u64> {
        let cluster = cluster.clone();
        self.read(move |c| {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM backup_sets
                     WHERE cluster_id = $1 AND deleting = 0 AND detached = 1",
                    &[&cluster.as_str()],
                )?
                .try_get(0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn backup_set(&self, id: BackupJobId) -> Result<Option<BackupSet>> {
        self.read(move |c| {
            opt(
                c,
                &format!("SELECT {SET_COLUMNS} FROM backup_sets WHERE id = $1 AND deleting = 0"),
                &[&db_id(id)],
                set_from,
            )
        })
    }

    fn cluster_sets(&self, cluster: &DbClusterId) -> Result<Vec<BackupSet>> {
        let cluster = cluster.clone();
        self.read(move |c| sets_of(c, &cluster))
    }

    fn begin_delete_sets(
        &self,
        cluster: &DbClusterId,
        ids: &[BackupJobId],
    ) -> Result<std::result::Result<Vec<BackupSet>, DeleteRefusal>> {
        let (cluster, ids) = (cluster.clone(), ids.to_vec());
        self.write(move |tx| begin_delete(tx, &cluster, &ids))
    }

    fn expire_sets(&self, ids: &[BackupJobId]) -> Result<()> {
        let ids = ids.to_vec();
        self.write(move |tx| expire(tx, &ids))
    }

    fn pending_deletions(&self) -> Result<Vec<BackupSet>> {
        self.read(|c| {
            all(
                c,
                &format!("SELECT {SET_COLUMNS} FROM backup_sets WHERE deleting = 1 ORDER BY id"),
                &[],
                set_from,
            )
        })
    }

    fn forget_set(&self, id: BackupJobId) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM backup_sets WHERE id = $1 AND deleting = 1",
                &[&db_id(id)],
            )?;
            Ok(())
        })
    }

    fn verifiable_sets(&self) -> Result<Vec<BackupSet>> {
        self.read(|c| {
            all(
                c,
                &format!(
                    "SELECT {SET_COLUMNS} FROM backup_sets
                     WHERE deleting = 0 AND status = 'Success' ORDER BY id"
                ),
                &[],
                set_from,
            )
        })
    }

    fn mark_set_corrupt(&self, id: BackupJobId, reason: &str, now: Timestamp) -> Result<bool> {
        let (reason, now) = (reason.to_owned(), secs(now));
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE backup_sets SET corrupt_reason = coalesce(corrupt_reason, $2),
                     corrupt_at = coalesce(corrupt_at, $3)
                 WHERE id = $1 AND deleting = 0 AND status = 'Success'",
                &[&db_id(id), &reason, &now],
            )?;
            Ok(n > 0)
        })
    }

    fn claim_scrub(
        &self,
        worker: &str,
        verified_before: Timestamp,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<BackupSet>> {
        let worker = worker.to_owned();
        let (before, until, now) = (secs(verified_before), secs(lease_until), secs(now));
        // SERIALIZABLE (retried): two servers claiming at once cannot both get one set.
        self.write(move |tx| {
            let set = opt(
                tx,
                &format!(
                    "SELECT {SET_COLUMNS} FROM backup_sets
                     WHERE deleting = 0 AND status = 'Success' AND corrupt_reason IS NULL
                       AND coalesce(verified_at, end_time) <= $1
                       AND (scrub_until IS NULL OR scrub_until < $2)
                     ORDER BY coalesce(verified_at, end_time), id LIMIT 1"
                ),
                &[&before, &now],
                set_from,
            )?;
            if let Some(s) = &set {
                tx.execute(
                    "UPDATE backup_sets SET scrub_owner = $2, scrub_until = $3 WHERE id = $1",
                    &[&db_id(s.id), &worker, &until],
                )?;
            }
            Ok(set)
        })
    }

    fn end_scrub(&self, id: BackupJobId, worker: &str, now: Timestamp) -> Result<bool> {
        let (worker, now) = (worker.to_owned(), secs(now));
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE backup_sets SET verified_at = $3, scrub_owner = NULL, scrub_until = NULL
                 WHERE id = $1 AND scrub_owner = $2",
                &[&db_id(id), &worker, &now],
            )?;
            Ok(n > 0)
        })
    }

    fn known_backup_ids(&self) -> Result<Vec<BackupJobId>> {
        self.read(|c| {
            all(
                c,
                &format!(
                    "SELECT id FROM backup_sets WHERE status <> 'Failed'
                     UNION SELECT id FROM backup_jobs WHERE status IN {NON_TERMINAL}
                     ORDER BY 1"
                ),
                &[],
                jobs::id_from,
            )
        })
    }
}
