//! The engine's one error type. Messages become job failure reasons: clear, and never secret.

use crate::pg::PgError;
use polarbackup_repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// The role may not do what a backup needs.
    #[error("permission denied: {0}")]
    Permission(String),
    /// The server is not set up for backups (wal_level, free walsenders, version).
    #[error("prerequisite not met: {0}")]
    Prerequisite(String),
    /// The replication conversation failed mid-way (including a dropped connection).
    #[error("the replication connection to the database failed: {0}")]
    Stream(String),
    /// The archiver's sink (the metadata store) failed to record a WAL object or a gap.
    #[error("recording archived WAL: {0}")]
    Sink(String),
    #[error("backup repository: {0}")]
    Repo(#[from] RepoError),
    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The database sent nothing for the progress deadline (`--stall-secs`): stopped,
    /// partitioned, or hung. `what` names what stalled ("backup", "WAL stream").
    #[error("no data from the database for {secs} s; the {what} stalled")]
    Stalled { secs: u64, what: &'static str },
    #[error("the backup was cancelled")]
    Cancelled,
    #[error("restore: {0}")]
    Restore(String),
    /// A WAL object of the plan is gone from the repository: a running archiver replaced the
    /// partial segment by a longer copy after the plan was made. Planning again finds it.
    #[error("restore: the WAL object {0} was replaced while restoring; plan the restore again")]
    WalReplaced(String),
    /// WAL that cannot be read as WAL at all (not merely ending).
    #[error("unreadable WAL: {0}")]
    Wal(String),
}

impl EngineError {
    /// Classifies a replication-client error by when it happened.
    pub fn from_pg(e: PgError, connecting: bool) -> EngineError {
        if e.is_permission_denied() {
            return EngineError::Permission(e.to_string());
        }
        if e.is_auth_failed() || matches!(e, PgError::Auth(_) | PgError::Tls(_)) {
            return EngineError::Connect(e.to_string());
        }
        if e.is_too_many_connections() {
            return EngineError::Prerequisite(format!("no free connection or walsender: {e}"));
        }
        if connecting {
            EngineError::Connect(e.to_string())
        } else {
            EngineError::Stream(e.to_string())
        }
    }
}
