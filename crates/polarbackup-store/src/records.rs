//! The store's own request and outcome records; the domain records (clusters, keys, users,
//! jobs, sets) live in the model.

use jiff::Timestamp;
use polarbackup_model::policy::RetentionOnClusterDeletion;
use polarbackup_model::{
    AccessKey, AccountId, BackupJob, BackupJobId, BackupKind, BackupSet, BackupSetStatus, Cluster,
    ClusterStatus, DbClusterId, JobMode, LogBackupPolicy, RamUser, WalGap, WalObject,
};
use std::sync::Arc;

/// What authenticating and authorizing one call reads, in one snapshot
/// ([`crate::Store::caller_records`]): the key, its RAM user and that user's policies, and the
/// cluster the call names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerRecords {
    pub key: AccessKey,
    /// The key's RAM user; `None` for an account's own key, and for a user key whose user is
    /// gone (which must then not act at all).
    pub user: Option<RamUser>,
    /// The policies attached to `user` (none without one). Shared, as is `cluster`: the
    /// records of a key are handed out for every call it signs.
    pub attachments: Arc<[Attachment]>,
    /// The cluster asked about, in any account and any state; `None` when it is not stored.
    pub cluster: Option<Arc<Cluster>>,
    /// Where the handle that read them stood (a backend that keeps reads in memory): a later
    /// read of the same call ([`crate::JobStore::list_jobs_read_with`]) may skip the check for
    /// changes made since while the handle still stands there.
    pub mark: Option<ReadMark>,
}

/// A handle's position in the changes to its store, as [`CallerRecords::mark`] keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    pub(crate) handle: u64,
    pub(crate) version: i64,
}

/// What [`crate::ClusterStore::begin_cluster_deletion`] did, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterDeletion {
    /// `ALL` or `NONE`: the cluster is `Deleted`. `kept` are detached (never expire);
    /// `deleted` are hidden and wait for their data to be removed (`pending_deletions`).
    Deleted {
        retention: RetentionOnClusterDeletion,
        kept: Vec<BackupSet>,
        deleted: Vec<BackupSet>,
    },
    /// `LATEST`: the cluster is `Deleting` until `job` (a queued `TempBackupTask`) ends. If it
    /// finishes, its set is kept and `doomed` are deleted; if it fails, the cluster is
    /// `Running` again and nothing is deleted.
    Pending {
        job: BackupJob,
        doomed: Vec<BackupSet>,
    },
}

/// A cluster as the cluster APIs (DescribeDBClusters, DescribeDBClusterAttribute) show it
/// ([`crate::ClusterStore::account_clusters`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCluster {
    pub cluster: Cluster,
    /// `Deleted` in the store, but the workers have not finished releasing it: sets hidden for
    /// deletion still hold data, or archived WAL is still recorded. Shown as `Deleting`.
    pub releasing: bool,
}

/// Why a cluster deletion did not start; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionRefusal {
    /// The cluster is being deleted or is deleted already.
    NotRunning(ClusterStatus),
    /// A backup job of the cluster is queued or running.
    ActiveJob(BackupJob),
}

/// Which jobs DescribeBackupTasks wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    pub job_id: Option<BackupJobId>,
    pub mode: Option<JobMode>,
    /// Jobs that ended before this instant are history and not listed.
    pub ended_since: Timestamp,
}

/// A manual backup (CreateBackup, `admin backup`) as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualJobRequest {
    pub cluster: DbClusterId,
    pub account: AccountId,
    pub client_token: Option<String>,
    /// What the token must keep meaning: a digest of the call's parameters.
    pub fingerprint: String,
    pub comment: Option<String>,
    /// Full (CreateBackup) or Incremental (`admin backup --type incremental`).
    pub kind: BackupKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateJobOutcome {
    Created(BackupJob),
    /// The same ClientToken with the same parameters: the job it created before.
    Existing(BackupJob),
    /// The same ClientToken with different parameters.
    TokenMismatch,
    /// The cluster already has the maximum number of manual backups.
    LimitReached,
    /// The cluster is being deleted or is deleted.
    ClusterNotRunning(ClusterStatus),
}

/// Which backup sets DescribeBackups wants; start and end bound the set's start time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetFilter {
    pub id: Option<BackupJobId>,
    pub status: Option<BackupSetStatus>,
    pub mode: Option<JobMode>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub page_size: u32,
    /// From 1.
    pub page_number: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPage {
    pub sets: Vec<BackupSet>,
    /// All matching sets, on every page.
    pub total: u64,
}

/// Why DeleteBackup refuses; nothing is deleted when any id is refused. A released cluster's
/// detached sets are deletable whatever their mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteRefusal {
    /// Unknown, not this cluster's, not finished, or already being deleted.
    NotFound(BackupJobId),
    /// Automated sets belong to the retention policy (while the cluster runs).
    Automated(BackupJobId),
    /// The cluster is being deleted.
    ClusterNotRunning(ClusterStatus),
    /// Set `id` is the base of incremental sets (`children`, ascending) that are not deleted
    /// with it: they would become unrestorable.
    Dependency {
        id: BackupJobId,
        children: Vec<BackupJobId>,
    },
}

/// A custom policy as stored: the document is kept verbatim, validated by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub account: AccountId,
    pub name: String,
    pub document: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    System,
    Custom,
}

impl PolicyKind {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        [Self::System, Self::Custom]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "System",
            Self::Custom => "Custom",
        }
    }
}

/// A policy attached to a user, with its document for custom ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub kind: PolicyKind,
    pub name: String,
    /// `None` for system policies, which are built into the binary.
    pub document: Option<String>,
}

/// Which WAL objects DescribeBackupLogs lists: those whose span meets `from..=to`, compared to
/// the whole second as the API shows times (an object starting at 20.4 s meets `to` = 20 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalFilter {
    pub from: Timestamp,
    pub to: Timestamp,
    pub page_size: u32,
    /// From 1.
    pub page_number: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalPage {
    pub objects: Vec<WalObject>,
    /// All matching objects, on every page.
    pub total: u64,
}

/// What [`crate::WalStore::record_wal`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecorded {
    /// The object as recorded; `None` when a longer one was already recorded at its place
    /// (its data is then the caller's to delete).
    pub recorded: Option<WalObject>,
    /// Objects it replaced: their data is the caller's to delete.
    pub replaced: Vec<WalObject>,
}

/// A Running cluster as [`crate::WalStore::recovery_overview`] reads it: what a metrics scrape
/// shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOverview {
    pub cluster: DbClusterId,
    pub created_at: Timestamp,
    pub log_policy: LogBackupPolicy,
    /// Its available sets only ([`BackupSet::is_available`], listed): the last backup and the
    /// recovery window need no other (a chain through an unavailable set is broken either way).
    pub available: RecoveryInputs,
}

/// What [`crate::WalStore::recovery_inputs`] reads in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryInputs {
    pub sets: Vec<BackupSet>,
    pub wal: Vec<WalObject>,
    pub gaps: Vec<WalGap>,
}
