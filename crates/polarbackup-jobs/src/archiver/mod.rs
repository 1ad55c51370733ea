//! Continuous log backup: one archiver per Running cluster across every server that shares
//! the store, held under a lease like a job, restarted with backoff when it fails, and WAL
//! retention by the log-backup policy.

mod retention;
mod seam;
mod sink;
mod supervisor;

pub use retention::remove_expired_wal;
pub use seam::{ArchiveContext, ArchiveEnd, WalArchiver};
pub use sink::{ArchiveSink, RecordOutcome};
pub use supervisor::{start_archivers, ArchiveConfig};
