//! Backup sets: what a finished (or failed) job leaves behind, as DescribeBackups shows it.

use crate::ids::{BackupJobId, DbClusterId};
use crate::job::JobMode;
use crate::lsn::Lsn;
use jiff::Timestamp;
use std::str::FromStr;

/// `BackupStatus` of a backup set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupSetStatus {
    Success,
    Failed,
}

impl BackupSetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::Failed => "Failed",
        }
    }
}

impl FromStr for BackupSetStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "Success" => Ok(Self::Success),
            "Failed" => Ok(Self::Failed),
            _ => Err(()),
        }
    }
}

/// One backup set. It shares its id with the job that produced it, so the CreateBackup
/// answer works both as a task id and as a backup-set id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSet {
    pub id: BackupJobId,
    pub cluster_id: DbClusterId,
    pub mode: JobMode,
    pub status: BackupSetStatus,
    pub start_time: Timestamp,
    pub end_time: Timestamp,
    /// The instant the restored database will reflect (end of the backup's WAL).
    pub consistent_time: Option<Timestamp>,
    /// Logical size: bytes of the database files and WAL in the set.
    pub size: u64,
    /// Bytes the set takes in the repository, after compression.
    pub stored_size: u64,
    pub comment: Option<String>,
    /// Where the backup sits in the WAL: what a point-in-time restore replays from. `None` for
    /// a failed set, and for sets recorded before it was kept.
    pub wal: Option<WalRange>,
    /// Why a re-read (`polarbackup verify`, the scrub) found the stored set corrupt: such a
    /// set is never restored from. `None` for a set not found corrupt.
    pub corrupt: Option<String>,
}

/// A full backup's place in the WAL: replay starts at `start` and the copy is consistent once
/// `end` is reached, on `timeline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRange {
    pub timeline: u32,
    pub start: Lsn,
    pub end: Lsn,
}

impl BackupSet {
    /// Usable for restore: verified, complete and not found corrupt since. Only such sets
    /// count as `IsAvail`, and only they are restored from.
    pub fn is_available(&self) -> bool {
        self.status == BackupSetStatus::Success && self.corrupt.is_none()
    }
}
