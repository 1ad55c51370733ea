//! polarbackup's backup engine for PostgreSQL: streamed base backups into the repository,
//! verification, restore (full, and to a point in time), continuous WAL archiving (`archive`),
//! and `xlog`, a reader of PostgreSQL's WAL. `pg` is the replication-protocol client it builds
//! on.

mod archive;
mod backup;
mod error;
mod extract;
mod incremental;
mod partial;
pub mod pg;
mod pitr;
mod prereq;
mod progress;
pub mod replay;
mod restore;
mod sql;
mod stall;
mod wal;
pub mod xlog;

pub use archive::{
    archive, drop_archive_slot, ArchiveEnd, ArchivePosition, ArchiveRequest, Recorded, WalSink,
    DEFAULT_PARTIAL_INTERVAL,
};
pub use backup::{backup, BackupRequest, BackupSummary};
pub use error::EngineError;
pub use pitr::{restore_to_point, ConfiguredTarget, PitrRequest, PitrSummary, WAL_DIR};
pub use progress::{Phase, ProgressSink};
pub use restore::{restore, RestoreRequest, RestoreSummary};
pub use stall::DEFAULT_STALL;
