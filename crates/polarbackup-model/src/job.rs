//! Backup jobs and their lifecycle: the phases of `BackupProgressStatus` and the rules between them.

use crate::ids::{BackupJobId, DbClusterId};
use jiff::Timestamp;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// `JobMode` (tasks) and `BackupMode` (filters): who asked for the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobMode {
    Automated,
    Manual,
}

impl JobMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automated => "Automated",
            Self::Manual => "Manual",
        }
    }
}

/// Case-sensitive, as the API documents its enumerations.
impl FromStr for JobMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "Automated" => Ok(Self::Automated),
            "Manual" => Ok(Self::Manual),
            _ => Err(()),
        }
    }
}

/// What a backup job was asked to take: a full copy, or one incremental on an earlier set.
/// CreateBackup's manual backups are always full (`admin backup --type` picks either); the
/// scheduler picks the kind of automated ones ([`crate::policy::kind_for_slot`]). An incremental job whose engine found no usable
/// base takes a full copy instead: its set then has no parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackupKind {
    #[default]
    Full,
    Incremental,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "Full",
            Self::Incremental => "Incremental",
        }
    }
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Case-sensitive, as stored.
impl FromStr for BackupKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "Full" => Ok(Self::Full),
            "Incremental" => Ok(Self::Incremental),
            _ => Err(()),
        }
    }
}

/// `TaskAction`: a regular backup, or a one-off the system takes before a destructive operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskAction {
    NormalBackupTask,
    TempBackupTask,
}

impl TaskAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NormalBackupTask => "NormalBackupTask",
            Self::TempBackupTask => "TempBackupTask",
        }
    }
}

impl FromStr for TaskAction {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "NormalBackupTask" => Ok(Self::NormalBackupTask),
            "TempBackupTask" => Ok(Self::TempBackupTask),
            _ => Err(()),
        }
    }
}

/// `BackupProgressStatus`. `Failed` is our documented extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobStatus {
    NoStart,
    Preparing,
    Waiting,
    Uploading,
    Checking,
    Finished,
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        Self::NoStart,
        Self::Preparing,
        Self::Waiting,
        Self::Uploading,
        Self::Checking,
        Self::Finished,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoStart => "NoStart",
            Self::Preparing => "Preparing",
            Self::Waiting => "Waiting",
            Self::Uploading => "Uploading",
            Self::Checking => "Checking",
            Self::Finished => "Finished",
            Self::Failed => "Failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Failed)
    }

    /// The band of `Process` values a job may show in this phase (DESIGN.md's lifecycle table).
    /// `Failed` keeps whatever value the job had.
    pub fn process_range(self) -> (u8, u8) {
        match self {
            Self::NoStart => (0, 0),
            Self::Preparing => (1, 5),
            Self::Waiting => (5, 5),
            Self::Uploading => (5, 90),
            Self::Checking => (90, 99),
            Self::Finished => (100, 100),
            Self::Failed => (0, 100),
        }
    }

    /// Which phases may follow this one. `Waiting` is optional: a backup that needs no
    /// wait goes straight from `Preparing` to `Uploading`.
    fn may_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        match (self, next) {
            (a, b) if a == b => !a.is_terminal(),
            (a, Failed) => !a.is_terminal(),
            (NoStart, Preparing)
            | (Preparing, Waiting)
            | (Preparing, Uploading)
            | (Waiting, Uploading)
            | (Uploading, Checking)
            | (Checking, Finished) => true,
            _ => false,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or(())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TransitionError {
    #[error("a job cannot go from {from} to {to}")]
    Illegal { from: JobStatus, to: JobStatus },
    #[error("progress cannot go back from {from} to {to}")]
    ProcessDecreased { from: u8, to: u8 },
}

/// One backup job, as the store keeps it and DescribeBackupTasks shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupJob {
    pub id: BackupJobId,
    pub cluster_id: DbClusterId,
    pub mode: JobMode,
    pub action: TaskAction,
    /// What was asked for; the set records what the engine really took (its `parent`).
    pub kind: BackupKind,
    pub status: JobStatus,
    pub process: u8,
    pub start_time: Timestamp,
    /// When the job reached `Finished` or `Failed`; drives the history window.
    pub ended_at: Option<Timestamp>,
    pub failure_reason: Option<String>,
    /// CreateBackup's `Comment`, carried to the backup set.
    pub comment: Option<String>,
}

impl BackupJob {
    /// A freshly recorded full-backup job, not yet claimed by a worker (set `kind` for an
    /// incremental one).
    pub fn new(
        id: BackupJobId,
        cluster_id: DbClusterId,
        mode: JobMode,
        action: TaskAction,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            cluster_id,
            mode,
            action,
            kind: BackupKind::Full,
            status: JobStatus::NoStart,
            process: 0,
            start_time: now,
            ended_at: None,
            failure_reason: None,
            comment: None,
        }
    }

    /// Moves the job to `to` with progress `process`. The value is clamped into the phase's
    /// band, but never below the current value: Process never decreases.
    pub fn advance(
        &mut self,
        to: JobStatus,
        process: u8,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        if to == JobStatus::Failed {
            return Err(TransitionError::Illegal {
                from: self.status,
                to,
            });
        }
        if !self.status.may_become(to) {
            return Err(TransitionError::Illegal {
                from: self.status,
                to,
            });
        }
        let (lo, hi) = to.process_range();
        let wanted = process.clamp(lo, hi);
        if wanted < self.process {
            return Err(TransitionError::ProcessDecreased {
                from: self.process,
                to: wanted,
            });
        }
        self.status = to;
        self.process = wanted;
        if to.is_terminal() {
            self.ended_at = Some(now);
        }
        Ok(())
    }

    /// Ends the job in `Failed`, keeping its last progress value.
    pub fn fail(
        &mut self,
        reason: impl Into<String>,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        if !self.status.may_become(JobStatus::Failed) {
            return Err(TransitionError::Illegal {
                from: self.status,
                to: JobStatus::Failed,
            });
        }
        self.status = JobStatus::Failed;
        self.failure_reason = Some(reason.into());
        self.ended_at = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobStatus::*;

    fn job() -> BackupJob {
        BackupJob::new(
            BackupJobId(1),
            DbClusterId::parse("pc-abcdefghij12345").expect("valid id"),
            JobMode::Manual,
            TaskAction::NormalBackupTask,
            Timestamp::UNIX_EPOCH,
        )
    }

    const T: Timestamp = Timestamp::UNIX_EPOCH;

    #[test]
    fn happy_path_reaches_finished_at_100() {
        let mut j = job();
        j.advance(Preparing, 1, T).expect("prep");
        j.advance(Waiting, 5, T).expect("wait");
        j.advance(Uploading, 40, T).expect("upload");
        j.advance(Uploading, 60, T).expect("more upload");
        j.advance(Checking, 95, T).expect("check");
        j.advance(Finished, 0, T).expect("finish");
        assert_eq!((j.status, j.process, j.ended_at), (Finished, 100, Some(T)));
    }

    #[test]
    fn waiting_is_optional() {
        let mut j = job();
        j.advance(Preparing, 2, T).expect("prep");
        j.advance(Uploading, 10, T).expect("upload");
    }

    #[test]
    fn illegal_transitions_are_refused() {
        for (path, bad) in [
            (vec![], Uploading),
            (vec![], Finished),
            (vec![Preparing], Checking),
            (vec![Preparing, Uploading], Preparing),
            (vec![Preparing, Uploading], Finished),
            (vec![Preparing, Uploading, Checking, Finished], Checking),
            (vec![Preparing, Uploading, Checking, Finished], Finished),
        ] {
            let mut j = job();
            for s in path {
                j.advance(s, 0, T).expect("legal step");
            }
            let from = j.status;
            assert_eq!(
                j.advance(bad, 50, T),
                Err(TransitionError::Illegal { from, to: bad })
            );
            assert_eq!(j.status, from);
        }
    }

    #[test]
    fn process_never_decreases_and_stays_in_band() {
        let mut j = job();
        j.advance(Preparing, 0, T).expect("prep");
        assert_eq!(j.process, 1);
        j.advance(Uploading, 99, T).expect("upload");
        assert_eq!(j.process, 90);
        let err = j.advance(Uploading, 50, T);
        assert_eq!(
            err,
            Err(TransitionError::ProcessDecreased { from: 90, to: 50 })
        );
        assert_eq!(j.process, 90);
    }

    #[test]
    fn failure_keeps_progress_and_is_terminal() {
        let mut j = job();
        j.advance(Preparing, 3, T).expect("prep");
        j.fail("connection refused", T).expect("fail");
        assert_eq!((j.status, j.process), (Failed, 3));
        assert_eq!(j.failure_reason.as_deref(), Some("connection refused"));
        assert!(j.fail("again", T).is_err());
        assert!(j.advance(Preparing, 3, T).is_err());
        assert!(
            job().advance(Failed, 0, T).is_err(),
            "Failed only through fail()"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(s));
        }
        assert!("finished".parse::<JobStatus>().is_err());
        assert!("manual".parse::<JobMode>().is_err());
        for k in [BackupKind::Full, BackupKind::Incremental] {
            assert_eq!(k.as_str().parse::<BackupKind>(), Ok(k));
        }
        assert!("full".parse::<BackupKind>().is_err());
        assert_eq!(
            job().kind,
            BackupKind::Full,
            "a new job is full unless asked"
        );
    }
}
