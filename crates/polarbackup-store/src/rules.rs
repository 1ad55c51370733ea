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
