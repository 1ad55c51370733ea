//! The store's one error type.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// From the PostgreSQL client: never carries the password (the client does not put it in
    /// its errors).
    #[error("metadata store: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("metadata store TLS: {0}")]
    Tls(String),
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
    /// A write on a job by a worker that no longer holds its lease (crash recovery or another
    /// worker took the job over), or by nobody while a worker holds it: nothing was written.
    #[error("job {id}: the writer does not hold the job's lease")]
    LeaseLost { id: u64 },
    /// The master key is missing, malformed, or not the one that sealed the store's secrets.
    /// Never carries a key or a secret.
    #[error("{0}")]
    MasterKey(String),
    /// A migration's target already holds metadata.
    #[error("the target metadata store is not empty: it has {what}")]
    NotEmpty { what: &'static str },
}

impl StoreError {
    /// A PostgreSQL serialization failure or deadlock: the transaction did nothing and may be
    /// run again.
    pub(crate) fn is_transient(&self) -> bool {
        use postgres::error::SqlState;
        match self {
            Self::Postgres(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
            ),
            _ => false,
        }
    }

    /// The store could not write for want of space (SQLite's `SQLITE_FULL`, an `ENOSPC` from
    /// the file system, PostgreSQL's `disk_full`): a condition of the host, not of the request,
    /// which the API answers with 503 ServiceUnavailable rather than 500.
    pub fn is_out_of_space(&self) -> bool {
        use postgres::error::SqlState;
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            Self::Postgres(e) => e.code() == Some(&SqlState::DISK_FULL),
            Self::Io(e) => e.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_space_is_recognised_and_other_failures_are_not() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(StoreError::Sqlite(full).is_out_of_space());
        let enospc = std::io::Error::from_raw_os_error(28);
        assert!(StoreError::Io(enospc).is_out_of_space());
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(!StoreError::Sqlite(busy).is_out_of_space());
        assert!(!StoreError::Corrupt("x".into()).is_out_of_space());
    }
}
