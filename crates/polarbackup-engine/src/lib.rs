//! polarbackup's backup engine for PostgreSQL: streamed base backups into the repository,
//! verification, restore, and continuous WAL archiving (`archive`). `pg` is the
//! replication-protocol client it builds on.

mod archive;
mod backup;
mod error;
pub mod pg;
mod prereq;
mod progress;
mod restore;
mod sql;
mod wal;

pub use archive::{
    archive, drop_archive_slot, ArchiveEnd, ArchiveRequest, Recorded, WalSink,
    DEFAULT_PARTIAL_INTERVAL,
};
pub use backup::{backup, BackupRequest, BackupSummary};
pub use error::EngineError;
pub use progress::{Phase, ProgressSink};
pub use restore::{restore, RestoreRequest, RestoreSummary};
