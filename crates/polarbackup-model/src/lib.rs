//! Domain types shared by every polarbackup crate: identifiers, backup jobs, clusters' lifecycle,
//! clocks. No IO.

pub mod backup_set;
pub mod clock;
pub mod cluster;
pub mod ids;
pub mod job;
pub mod policy;

pub use backup_set::{BackupSet, BackupSetStatus};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cluster::ClusterStatus;
pub use ids::{AccessKeyId, AccountId, BackupJobId, DbClusterId, IdError};
pub use job::{BackupJob, JobMode, JobStatus, TaskAction, TransitionError};
