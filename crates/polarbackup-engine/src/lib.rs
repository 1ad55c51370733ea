//! polarbackup's backup engine for PostgreSQL: streamed base backups into the repository,
//! verification, and restore. `pg` is the replication-protocol client it builds on.

mod backup;
mod error;
pub mod pg;
mod prereq;
mod progress;
mod restore;
mod wal;
pub mod xlog;

pub use backup::{backup, BackupRequest, BackupSummary};
pub use error::EngineError;
pub use progress::{Phase, ProgressSink};
pub use restore::{restore, RestoreRequest, RestoreSummary};
