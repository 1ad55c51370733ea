//! The decisions both backends make the same way, apart from their SQL: which job updates are
//! legal, how a policy is stored, what a cluster deletion keeps, which WAL object a new one
//! replaces, and DescribeBackupLogs' whole-second bounds.

use crate::{Result, StoreError};
use jiff::Timestamp;
use polarbackup_model::policy::{BackupPolicy, RetentionOnClusterDeletion};
use polarbackup_model::{
    BackupJob, BackupSet, BackupSetStatus, DbClusterId, JobStatus, LogBackupPolicy, LogRetention,
    NewWalObject, WalObject, WalObjectKind,
};

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
