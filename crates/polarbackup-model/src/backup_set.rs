//! Backup sets: what a finished (or failed) job leaves behind, as DescribeBackups shows it, and
//! the chains incremental sets form through their `parent`: which sets are usable as a base
//! ([`chain_available`]) and which one a new incremental backup builds on ([`choose_parent`]).

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
    /// The set this one is incremental on (restoring it needs that one, and so on down to a
    /// full set); `None` for a full set.
    pub parent: Option<BackupJobId>,
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

/// Whether `set` can be restored: it and every ancestor (through `parent`, looked up in `sets`)
/// is available. An ancestor missing from `sets` (deleted), unavailable (failed, corrupt) or a
/// loop in the parents breaks the chain.
pub fn chain_available(set: &BackupSet, sets: &[BackupSet]) -> bool {
    let mut current = set;
    // A chain longer than the number of sets can only be a loop.
    for _ in 0..=sets.len() {
        if !current.is_available() {
            return false;
        }
        let Some(parent) = current.parent else {
            return true;
        };
        match sets.iter().find(|s| s.id == parent) {
            Some(p) => current = p,
            None => return false,
        }
    }
    false
}

/// The base for a new incremental backup of the cluster whose sets are `sets`: the newest (by
/// `end_time`, then id) successful, available set with a WAL range whose whole chain is
/// available. `None`: there is none, so the job takes a full backup.
pub fn choose_parent(sets: &[BackupSet]) -> Option<&BackupSet> {
    sets.iter()
        .filter(|s| s.wal.is_some() && chain_available(s, sets))
        .max_by_key(|s| (s.end_time, s.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DbClusterId;

    fn set(id: u64, end: i64, parent: Option<u64>) -> BackupSet {
        BackupSet {
            id: BackupJobId(id),
            cluster_id: DbClusterId::parse("pc-abcdefghij12345").expect("valid id"),
            mode: JobMode::Automated,
            status: BackupSetStatus::Success,
            start_time: Timestamp::from_second(end - 10).expect("time"),
            end_time: Timestamp::from_second(end).expect("time"),
            consistent_time: Some(Timestamp::from_second(end).expect("time")),
            size: 1,
            stored_size: 1,
            comment: None,
            wal: Some(WalRange {
                timeline: 1,
                start: Lsn(end as u64 * 100),
                end: Lsn(end as u64 * 100 + 50),
            }),
            corrupt: None,
            parent: parent.map(BackupJobId),
        }
    }

    fn ids(s: Option<&BackupSet>) -> Option<u64> {
        s.map(|s| s.id.0)
    }

    #[test]
    fn a_chain_is_available_only_down_to_an_available_full_set() {
        let mut sets = vec![
            set(1, 100, None),
            set(2, 200, Some(1)),
            set(3, 300, Some(2)),
        ];
        assert!(sets.iter().all(|s| chain_available(s, &sets)));
        sets[0].corrupt = Some("chunk 7 digest mismatch".into());
        assert!(!chain_available(&sets[0], &sets));
        assert!(!chain_available(&sets[1], &sets));
        assert!(!chain_available(&sets[2], &sets));
        sets[0].corrupt = None;
        sets[1].status = BackupSetStatus::Failed;
        assert!(chain_available(&sets[0], &sets));
        assert!(!chain_available(&sets[2], &sets));
    }

    #[test]
    fn a_missing_parent_or_a_loop_breaks_the_chain() {
        let sets = vec![set(2, 200, Some(1)), set(3, 300, Some(2))];
        assert!(!chain_available(&sets[1], &sets), "set 1 is gone");
        let looped = vec![set(4, 400, Some(5)), set(5, 500, Some(4))];
        assert!(!chain_available(&looped[0], &looped));
        let selfish = vec![set(6, 600, Some(6))];
        assert!(!chain_available(&selfish[0], &selfish));
    }

    #[test]
    fn the_parent_is_the_newest_set_whose_chain_is_available() {
        let mut sets = vec![
            set(1, 100, None),
            set(2, 200, Some(1)),
            set(3, 300, Some(2)),
        ];
        assert_eq!(ids(choose_parent(&sets)), Some(3));
        // The newest is corrupt: the one before it.
        sets[2].corrupt = Some("bad".into());
        assert_eq!(ids(choose_parent(&sets)), Some(2));
        // A broken ancestor rules out everything built on it; a newer full set is fine.
        sets[0].corrupt = Some("bad".into());
        assert_eq!(ids(choose_parent(&sets)), None);
        sets.push(set(4, 150, None));
        assert_eq!(ids(choose_parent(&sets)), Some(4));
        // A failed set, or one without a WAL range (recorded before it was kept), is no base.
        let mut failed = set(5, 900, None);
        failed.status = BackupSetStatus::Failed;
        let mut no_wal = set(6, 950, None);
        no_wal.wal = None;
        sets.push(failed);
        sets.push(no_wal);
        assert_eq!(ids(choose_parent(&sets)), Some(4));
        assert_eq!(ids(choose_parent(&[])), None);
    }

    #[test]
    fn ties_on_end_time_go_to_the_larger_id() {
        let sets = vec![set(8, 100, None), set(7, 100, None)];
        assert_eq!(ids(choose_parent(&sets)), Some(8));
    }
}
