//! The decisions both backends make the same way, apart from their SQL: which job updates are
//! legal, how a policy is stored, what a cluster deletion keeps, which WAL object a new one
//! replaces, and DescribeBackupLogs' whole-second bounds.

use crate::records::DeleteRefusal;
use crate::{ids, Result, StoreError, TenantStore};
use jiff::Timestamp;
use polarbackup_model::policy::{BackupPolicy, RetentionOnClusterDeletion};
use polarbackup_model::{
    AccessKey, AccessKeyId, AccountId, BackupJob, BackupJobId, BackupSet, BackupSetStatus,
    DbClusterId, JobMode, JobStatus, KeyKind, LogBackupPolicy, LogRetention, NewWalObject,
    RamUserId, WalObject, WalObjectKind,
};
use std::sync::atomic::{AtomicI64, Ordering};

/// A fresh key (an RSA one when given its public PEM) imported into `store`; random ids can
/// collide, and a few tries make that vanishingly unlikely to surface.
pub fn new_key(
    store: &impl TenantStore,
    account: &AccountId,
    user: Option<&RamUserId>,
    rsa_public_key: Option<&str>,
    now: Timestamp,
) -> Result<AccessKey> {
    for _ in 0..8 {
        let key = AccessKey {
            id: AccessKeyId::parse(&ids::access_key_id())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            account: account.clone(),
            user: user.cloned(),
            kind: if rsa_public_key.is_some() {
                KeyKind::Rsa
            } else {
                KeyKind::Hmac
            },
            secret: rsa_public_key.map_or_else(ids::access_key_secret, str::to_owned),
            active: true,
            created_at: now,
        };
        match store.import_key(&key) {
            Err(StoreError::Conflict(_)) => continue,
            other => return other.map(|()| key),
        }
    }
    Err(StoreError::Conflict("access key id"))
}

/// Whether DeleteBackup may take set `id` (as found among the cluster's listed sets, detached
/// ones for a `released` cluster): only a successful one, and an automated one only once the
/// cluster is released.
pub fn deletable(
    id: BackupJobId,
    set: Option<BackupSet>,
    released: bool,
) -> std::result::Result<BackupSet, DeleteRefusal> {
    match set {
        Some(s) if s.status != BackupSetStatus::Success => Err(DeleteRefusal::NotFound(id)),
        Some(s) if s.mode == JobMode::Automated && !released => Err(DeleteRefusal::Automated(id)),
        Some(s) => Ok(s),
        None => Err(DeleteRefusal::NotFound(id)),
    }
}

/// The refusal of a DeleteBackup whose `taken` sets include the base of a set that stays:
/// `children` are `(parent, child)` pairs of every listed set (not being deleted) whose parent
/// is among `taken`. The first taken set, in order, with a child outside `taken` is refused.
pub fn dependency(
    taken: &[BackupSet],
    children: &[(BackupJobId, BackupJobId)],
) -> Option<DeleteRefusal> {
    taken.iter().find_map(|s| {
        let mut staying: Vec<BackupJobId> = children
            .iter()
            .filter(|(parent, child)| *parent == s.id && !taken.iter().any(|t| t.id == *child))
            .map(|(_, child)| *child)
            .collect();
        staying.sort_unstable();
        staying.dedup();
        (!staying.is_empty()).then_some(DeleteRefusal::Dependency {
            id: s.id,
            children: staying,
        })
    })
}

/// Of the `expired` ids, those retention may hide now: `sets` are the listed sets of every
/// cluster they belong to (parents never cross clusters), and a set a kept incremental set is
/// built on stays ([`polarbackup_model::policy::spare_parents`]).
pub fn expirable(sets: &[BackupSet], expired: &[BackupJobId]) -> Vec<BackupJobId> {
    polarbackup_model::policy::spare_parents(sets, expired)
}

/// [`crate::JobStore::job_counts`] on either backend (`count(*)` is an integer on both).
pub const JOB_COUNTS: &str = "SELECT cluster_id, status, count(*) AS n FROM backup_jobs
     GROUP BY cluster_id, status ORDER BY cluster_id, status";

/// [`crate::WalStore::recovery_overview`]'s statements, the same on either backend: the
/// Running clusters with their log retention, then their available sets, WAL objects and gaps,
/// each ordered by cluster; [`overview::deal`] hands them to their clusters.
pub mod overview {
    use super::decode_log_policy;
    use crate::records::{ClusterOverview, RecoveryInputs};
    use crate::rows::{GAP_COLUMNS, SET_COLUMNS, WAL_COLUMNS};
    use crate::Result;
    use jiff::Timestamp;
    use polarbackup_model::{BackupSet, DbClusterId, WalGap, WalObject};
    use std::collections::HashMap;

    const RUNNING: &str = "SELECT id FROM clusters WHERE status = 'Running'";

    pub const CLUSTERS: &str = "SELECT c.id, c.created_at, p.retention_days
         FROM clusters c LEFT JOIN log_backup_policies p ON p.cluster_id = c.id
         WHERE c.status = 'Running' ORDER BY c.id";

    /// Listed, `Success` and not found corrupt: [`polarbackup_model::BackupSet::is_available`]
    /// in SQL, so the failed sets a long history holds are never read.
    pub fn sets() -> String {
        format!(
            "SELECT {SET_COLUMNS} FROM backup_sets
             WHERE deleting = 0 AND detached = 0 AND status = 'Success'
               AND corrupt_reason IS NULL AND cluster_id IN ({RUNNING})
             ORDER BY cluster_id, id"
        )
    }

    pub fn wal() -> String {
        format!(
            "SELECT {WAL_COLUMNS} FROM wal_objects WHERE cluster_id IN ({RUNNING})
             ORDER BY cluster_id, start_lsn, timeline, id"
        )
    }

    pub fn gaps() -> String {
        format!(
            "SELECT {GAP_COLUMNS} FROM wal_gaps WHERE cluster_id IN ({RUNNING})
             ORDER BY cluster_id, detected_us, id"
        )
    }

    /// The overview from its statements' rows (read in one snapshot): each set, object and gap goes
    /// to its cluster. A set the SQL read as available is held to the model's rule as well.
    pub fn deal(
        clusters: Vec<(DbClusterId, Timestamp, Option<i64>)>,
        sets: Vec<BackupSet>,
        wal: Vec<WalObject>,
        gaps: Vec<WalGap>,
    ) -> Result<Vec<ClusterOverview>> {
        let mut out = Vec::with_capacity(clusters.len());
        let mut index = HashMap::with_capacity(clusters.len());
        for (cluster, created_at, days) in clusters {
            let log_policy = decode_log_policy(&cluster, days)?;
            index.insert(cluster.clone(), out.len());
            out.push(ClusterOverview {
                cluster,
                created_at,
                log_policy,
                available: RecoveryInputs {
                    sets: Vec::new(),
                    wal: Vec::new(),
                    gaps: Vec::new(),
                },
            });
        }
        for set in sets.into_iter().filter(BackupSet::is_available) {
            if let Some(&i) = index.get(&set.cluster_id) {
                out[i].available.sets.push(set);
            }
        }
        for object in wal {
            if let Some(&i) = index.get(&object.object.cluster_id) {
                out[i].available.wal.push(object);
            }
        }
        for gap in gaps {
            if let Some(&i) = index.get(&gap.cluster_id) {
                out[i].available.gaps.push(gap);
            }
        }
        Ok(out)
    }
}

/// Queued or running: the statuses a job can still leave (an SQL list).
pub const NON_TERMINAL: &str = "('NoStart','Preparing','Waiting','Uploading','Checking')";

/// Refuses any write that would move a stored job backwards or change an ended one.
pub fn check_forward(stored: &BackupJob, job: &BackupJob) -> Result<()> {
    let illegal = if stored.status.is_terminal() && stored != job {
        Some("the job has already ended")
    } else if job.status < stored.status && job.status != JobStatus::Failed {
        Some("the status would go backwards")
    } else if job.process < stored.process {
        Some("Process would decrease")
    } else {
        None
    };
    match illegal {
        Some(reason) => Err(StoreError::IllegalJobUpdate {
            id: job.id.0,
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

/// A write on a job is its lease holder's: `holder` (a worker's id; `None` for a job no worker
/// holds, as tests and tools write) must be the stored `owner`, read in the writing
/// transaction. So a worker whose job recovery or another worker took over writes nothing more.
pub fn check_holder(id: BackupJobId, owner: Option<&str>, holder: Option<&str>) -> Result<()> {
    if owner == holder {
        return Ok(());
    }
    Err(StoreError::LeaseLost { id: id.0 })
}

/// The job crash recovery ends, if it may take `stored` over at `now`: started, not ended, and
/// its lease (`expires`, in seconds) lapsed. `None` when its worker ended or renewed it, or
/// another server recovered it first.
pub fn take_over(
    mut stored: BackupJob,
    expires: Option<i64>,
    reason: &str,
    now: Timestamp,
) -> Option<(BackupJob, BackupSet)> {
    let lapsed = expires.is_none_or(|e| e < crate::rows::secs(now));
    if stored.status == JobStatus::NoStart || stored.status.is_terminal() || !lapsed {
        return None;
    }
    stored.fail(reason, now).ok()?;
    let set = failed_set(&stored, now);
    Some((stored, set))
}

/// The set a failed job records: listed by DescribeBackups as `Failed`, never usable, its data
/// removed (a failed set's id is never among [`crate::SetStore::known_backup_ids`]).
pub fn failed_set(job: &BackupJob, now: Timestamp) -> BackupSet {
    BackupSet {
        id: job.id,
        cluster_id: job.cluster_id.clone(),
        mode: job.mode,
        status: BackupSetStatus::Failed,
        start_time: job.start_time,
        end_time: now,
        consistent_time: None,
        size: 0,
        stored_size: 0,
        comment: None,
        wal: None,
        corrupt: None,
        parent: None,
    }
}

/// Only an ended job records its set.
pub fn check_ended(job: &BackupJob) -> Result<()> {
    if job.status.is_terminal() {
        return Ok(());
    }
    Err(StoreError::IllegalJobUpdate {
        id: job.id.0,
        reason: "only an ended job can record its backup set".into(),
    })
}

/// A stored backup-policy row (or none: the default) as a policy and a last slot.
pub fn decode_policy(
    cluster: &DbClusterId,
    row: Option<(String, Option<i64>)>,
) -> Result<(BackupPolicy, Option<Timestamp>)> {
    match row {
        None => Ok((BackupPolicy::default(), None)),
        Some((json, last)) => {
            let policy = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("backup policy of {cluster}: {e}")))?;
            let last = last
                .map(|s| {
                    Timestamp::from_second(s)
                        .map_err(|e| StoreError::Corrupt(format!("last slot of {cluster}: {e}")))
                })
                .transpose()?;
            Ok((policy, last))
        }
    }
}

pub fn encode_policy(policy: &BackupPolicy) -> Result<String> {
    serde_json::to_string(policy).map_err(|e| StoreError::Corrupt(format!("backup policy: {e}")))
}

/// A stored log retention (none: the default).
pub fn decode_log_policy(cluster: &DbClusterId, days: Option<i64>) -> Result<LogBackupPolicy> {
    match days {
        None => Ok(LogBackupPolicy::default()),
        Some(d) => LogRetention::from_days(d)
            .map(|retention| LogBackupPolicy { retention })
            .map_err(|_| StoreError::Corrupt(format!("log retention of {cluster}: {d}"))),
    }
}

/// `ALL`/`NONE`: the sets kept (detached) and those deleted. ALL keeps every usable set; a
/// failed set has no data worth keeping.
pub fn split_on_deletion(
    retention: RetentionOnClusterDeletion,
    sets: Vec<BackupSet>,
) -> (Vec<BackupSet>, Vec<BackupSet>) {
    sets.into_iter().partition(|s| {
        retention == RetentionOnClusterDeletion::All && s.status == BackupSetStatus::Success
    })
}

/// The set a LATEST deletion's final backup keeps: its own successful one, if it finished.
pub fn final_set<'a>(job: &BackupJob, set: Option<&'a BackupSet>) -> Option<&'a BackupSet> {
    set.filter(|s| {
        job.status == JobStatus::Finished && s.id == job.id && s.status == BackupSetStatus::Success
    })
}

/// What recording `o` does to the objects already at its place (a segment or partial: same
/// timeline and start; a history file: same name): `None` refuses it (one there reaches as far,
/// or the history file exists), else the partials it replaces.
pub fn wal_replacement(o: &NewWalObject, here: Vec<WalObject>) -> Option<Vec<WalObject>> {
    match o.kind {
        WalObjectKind::History => here.is_empty().then(Vec::new),
        WalObjectKind::Segment | WalObjectKind::Partial => {
            if here.iter().any(|w| w.object.end >= o.end) {
                return None;
            }
            Some(
                here.into_iter()
                    .filter(|w| w.object.kind == WalObjectKind::Partial)
                    .collect(),
            )
        }
    }
}

/// Expired nonces a purge deletes at most, so no signed request waits on a long DELETE.
pub const NONCE_PURGE_BATCH: usize = 1000;
/// How long a store handle waits between purges (seconds of the callers' clock).
const NONCE_PURGE_EVERY: i64 = 60;

/// When a store handle purges expired nonces: one call a minute (not every signed request,
/// which on a shared store would be a DELETE per request on every server), and at once again
/// after a full batch. A use never needs the purge: an expired row is taken over in place.
#[derive(Debug)]
pub struct NoncePurge {
    /// The second from which the next call purges.
    next: AtomicI64,
}

impl Default for NoncePurge {
    fn default() -> Self {
        Self {
            next: AtomicI64::new(i64::MIN),
        }
    }
}

impl NoncePurge {
    /// Whether this call purges: true for one caller once `now` has reached the next purge.
    pub fn due(&self, now: Timestamp) -> bool {
        let s = crate::rows::secs(now);
        let next = self.next.load(Ordering::Relaxed);
        s >= next
            && self
                .next
                .compare_exchange(
                    next,
                    s.saturating_add(NONCE_PURGE_EVERY),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// A purge deleted `n` rows; a full batch may have left more, so the next call purges too.
    pub fn purged(&self, n: usize) {
        if n >= NONCE_PURGE_BATCH {
            self.next.store(i64::MIN, Ordering::Relaxed);
        }
    }
}

const SECOND: i64 = 1_000_000;

/// The first microsecond of the second holding `t`.
fn second_start(t: Timestamp) -> i64 {
    t.as_microsecond().div_euclid(SECOND) * SECOND
}

/// DescribeBackupLogs compares to the whole second, as it shows times: an object meets
/// `from..=to` when it starts before the end of `to`'s second and ends within or after
/// `from`'s. Returns (start before, end at or after), in microseconds.
pub fn wal_page_bounds(from: Timestamp, to: Timestamp) -> (i64, i64) {
    (second_start(to).saturating_add(SECOND), second_start(from))
}

/// A page's offset, from its number (from 1) and size.
pub fn page_offset(page_number: u32, page_size: u32) -> i64 {
    let offset = u64::from(page_number.saturating_sub(1)) * u64::from(page_size);
    i64::try_from(offset).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::{NoncePurge, NONCE_PURGE_BATCH};
    use jiff::Timestamp;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("time")
    }

    #[test]
    fn nonces_are_purged_once_a_minute_and_again_after_a_full_batch() {
        let p = NoncePurge::default();
        assert!(p.due(t(0)), "the first call purges");
        assert!(!p.due(t(0)) && !p.due(t(59)), "then not for a minute");
        assert!(p.due(t(60)));
        p.purged(NONCE_PURGE_BATCH - 1);
        assert!(!p.due(t(61)), "a short batch left nothing behind");
        p.purged(NONCE_PURGE_BATCH);
        assert!(p.due(t(61)), "a full batch may have");
    }
}
