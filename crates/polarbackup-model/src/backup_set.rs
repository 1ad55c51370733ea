//! Backup sets: what a finished (or failed) job leaves behind, as DescribeBackups shows it.

use crate::ids::{BackupJobId, DbClusterId};
use crate::job::JobMode;
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
}

impl BackupSet {
    /// Usable for restore: verified and complete. Only such sets count as `IsAvail`.
    pub fn is_available(&self) -> bool {
        self.status == BackupSetStatus::Success
    }
}
