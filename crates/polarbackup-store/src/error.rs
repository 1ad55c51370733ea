//! The store's one error type.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metadata store: {0}")]
    Io(#[from] std::io::Error),
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("metadata schema version {found} is newer than this binary supports ({supported})")]
    TooNew { found: i64, supported: i64 },
    #[error("job {id}: {reason}")]
    IllegalJobUpdate { id: u64, reason: String },
}
