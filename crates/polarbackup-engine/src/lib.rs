//! polarbackup's backup engine for PostgreSQL: streamed base backups into the repository,
//! verification, restore (full, and to a point in time), and `xlog`, a reader of PostgreSQL's
//! WAL. `pg` is the replication-protocol client it builds on.

mod backup;
mod error;
pub mod pg;
mod pitr;
mod prereq;
mod progress;
mod restore;
mod wal;
pub mod xlog;

pub use backup::{backup, BackupRequest, BackupSummary};
pub use error::EngineError;
pub use pitr::{restore_to_point, ConfiguredTarget, PitrRequest, PitrSummary, WAL_DIR};
pub use progress::{Phase, ProgressSink};
pub use restore::{restore, RestoreRequest, RestoreSummary};
