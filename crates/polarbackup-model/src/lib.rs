//! Domain types shared by every polarbackup crate: identifiers, tenants, clusters, backup jobs,
//! clocks. No IO.

pub mod backup_set;
pub mod clock;
pub mod cluster;
pub mod ids;
pub mod job;
pub mod log_backup;
pub mod lsn;
pub mod policy;
pub mod tenant;

pub use backup_set::{chain_available, choose_parent, BackupSet, BackupSetStatus, WalRange};
pub use clock::{AdvanceError, Clock, ManualClock, OffsetClock, SystemClock};
pub use cluster::{Cluster, ClusterStatus, NewCluster, TlsMode};
pub use ids::{AccessKeyId, AccountId, BackupJobId, DbClusterId, IdError, RamUserId};
pub use job::{BackupJob, BackupKind, JobMode, JobStatus, TaskAction, TransitionError};
pub use log_backup::{
    BackupLogId, LogBackupPolicy, LogRetention, NewWalObject, WalGap, WalObject, WalObjectKind,
};
pub use lsn::Lsn;
pub use tenant::{AccessKey, Account, KeyKind, RamUser};
