//! Continuous log backup: one archiver per Running cluster across every server that shares
//! the store, held under a lease like a job, restarted with backoff when it fails, and WAL
//! retention by the log-backup policy; and the release of a deleted cluster's WAL and slot.

mod release;
mod retention;
mod seam;
mod sink;
mod supervisor;

pub use release::{release_deleted_clusters, release_log_backup, LogRelease};
pub use retention::remove_expired_wal;
pub use seam::{ArchiveContext, ArchiveEnd, WalArchiver};
pub use sink::{ArchiveSink, RecordOutcome};
pub use supervisor::{start_archivers, ArchiveConfig};
