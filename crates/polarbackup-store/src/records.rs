//! Plain records the store hands out, with secrets redacted from Debug output.

use jiff::Timestamp;
use polarbackup_model::policy::RetentionOnClusterDeletion;
use polarbackup_model::{
    AccessKeyId, AccountId, BackupJob, BackupJobId, BackupSet, BackupSetStatus, ClusterStatus,
    DbClusterId, JobMode,
};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: AccessKeyId,
    pub account: AccountId,
    /// The RAM user the key belongs to; `None` for the account's own key.
    pub user: Option<String>,
    pub kind: KeyKind,
    /// The HMAC secret; for an RSA key, the public key (PEM).
    pub secret: String,
    pub active: bool,
    pub created_at: Timestamp,
}

/// How requests signed with a key are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// V1 and the V3 HMAC algorithms, with a shared secret.
    Hmac,
    /// ACS3-RSA-SHA256 only: the caller signs with its private key, the server keeps the public one.
    Rsa,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Hmac => "hmac",
            KeyKind::Rsa => "rsa",
        }
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("account", &self.account)
            .field("user", &self.user)
            .field("kind", &self.kind)
            .field("secret", &"<redacted>")
            .field("active", &self.active)
            .finish()
    }
}

/// What `admin cluster create` registers: where the backup engine will connect.
#[derive(Clone, PartialEq, Eq)]
pub struct NewCluster {
    pub account: AccountId,
    pub region: String,
    pub engine: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: Option<String>,
    pub description: Option<String>,
    /// libpq's sslmode: `disable`, `prefer`, `require` or `verify-full`.
    pub tls_mode: String,
    pub tls_ca_file: Option<String>,
}

impl fmt::Debug for NewCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewCluster")
            .field("account", &self.account)
            .field("region", &self.region)
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("description", &self.description)
            .field("tls_mode", &self.tls_mode)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub id: DbClusterId,
    pub spec: NewCluster,
    pub created_at: Timestamp,
    pub status: ClusterStatus,
    /// When it became `Deleted`.
    pub deleted_at: Option<Timestamp>,
    /// The retention its deletion applies (set once deletion begins).
    pub deletion_retention: Option<RetentionOnClusterDeletion>,
    /// The final `TempBackupTask` of a `LATEST` deletion.
    pub deletion_job: Option<BackupJobId>,
}

/// What [`crate::Store::begin_cluster_deletion`] did, in one transaction.
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

/// CreateBackup as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualJobRequest {
    pub cluster: DbClusterId,
    pub account: AccountId,
    pub client_token: Option<String>,
    /// What the token must keep meaning: a digest of the call's parameters.
    pub fingerprint: String,
    pub comment: Option<String>,
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

/// A job a worker now holds the lease on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub job: BackupJob,
    pub comment: Option<String>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteRefusal {
    /// Unknown, not this cluster's, not finished, or already being deleted.
    NotFound(BackupJobId),
    /// Automated sets belong to the retention policy (while the cluster runs).
    Automated(BackupJobId),
    /// The cluster is being deleted.
    ClusterNotRunning(ClusterStatus),
}

/// A RAM user: an identity inside an account whose calls policies govern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamUser {
    pub id: String,
    pub account: AccountId,
    pub name: String,
    pub created_at: Timestamp,
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
