//! Log backups: the WAL objects archived for a cluster, the gaps between them, the log-backup
//! policy, and what they make restorable (the recovery window and the plan of a restore).

mod policy;
mod recovery;

pub use crate::backup_set::chain_available;
pub use policy::{LogBackupPolicy, LogRetention, LogRetentionError};
pub use recovery::{
    expired_wal, plan_restore, recovery_window, PlanError, RecoveryTarget, RecoveryWindow,
    RestorePlan,
};

use crate::ids::DbClusterId;
use crate::lsn::Lsn;
use jiff::Timestamp;
use std::fmt;

/// `BackupLogId`: a stored WAL object's id, increasing and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackupLogId(pub u64);

impl BackupLogId {
    /// Decimal digits, as the API shows them; 0 is never an id.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().filter(|&n| n > 0).map(Self)
    }
}

impl fmt::Display for BackupLogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a stored WAL object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalObjectKind {
    /// A whole segment: `[start, end)` is exactly one segment.
    Segment,
    /// The head of a segment, `[start, end)` with `start` at the segment's start: the segment
    /// still being written (replaced as it grows, then by the whole `Segment`), or the last
    /// one of a timeline that ended inside it.
    Partial,
    /// A timeline history file (`0000000N.history`): `start` = `end` = where timeline N began.
    History,
}

impl WalObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Segment => "segment",
            Self::Partial => "partial",
            Self::History => "history",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "segment" => Some(Self::Segment),
            "partial" => Some(Self::Partial),
            "history" => Some(Self::History),
            _ => None,
        }
    }
}

/// A WAL object the archiver stored and is about to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWalObject {
    pub cluster_id: DbClusterId,
    pub timeline: u32,
    pub kind: WalObjectKind,
    /// PostgreSQL's file name: `000000010000000000000003`, the same for a partial (the
    /// kind tells them apart), `00000002.history`.
    pub name: String,
    pub start: Lsn,
    pub end: Lsn,
    /// Raw bytes (what PostgreSQL reads); a partial's is `end - start`.
    pub size: u64,
    /// Bytes in the repository, after compression.
    pub stored_size: u64,
    /// Repository key of the object.
    pub key: String,
    /// BLAKE3 of the raw bytes, lower-case hex.
    pub digest: String,
    /// The server's clock (from the replication stream) when it sent the first and the last
    /// WAL in the object.
    pub start_time: Timestamp,
    pub end_time: Timestamp,
}

/// A recorded WAL object: one `BackupLog` item of DescribeBackupLogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalObject {
    pub id: BackupLogId,
    pub object: NewWalObject,
}

/// A stretch of WAL that is missing from the archive and never will be there. A restore never
/// replays across one: the window starts again at the first full backup after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalGap {
    pub cluster_id: DbClusterId,
    pub timeline: u32,
    /// The archive is complete up to `from`; the WAL from `from` to `to` is lost.
    pub from: Lsn,
    pub to: Lsn,
    pub detected_at: Timestamp,
    /// Why, for operators (slot invalidated, WAL removed, …).
    pub reason: String,
}

/// The replication slot polarbackup owns on a cluster: `polarbackup_` and the cluster id with
/// `-` as `_` (slot names allow lower-case letters, digits and underscores).
pub fn slot_name(cluster: &DbClusterId) -> String {
    format!("polarbackup_{}", cluster.as_str().replace('-', "_"))
}
