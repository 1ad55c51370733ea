//! The jobs crate's one error type: what stopped a job's work or bookkeeping, told apart
//! because the worker acts differently on each.

use polarbackup_store::StoreError;

/// Why a job's work or bookkeeping stopped. The worker acts on the case:
///
/// | case | the job |
/// |---|---|
/// | `Store` | not failed: a transient failure is retried with backoff; a progress write that keeps failing is skipped, an end that does is left to crash recovery |
/// | `Cancelled` | the server is stopping: ends Failed if the store answers at once, else recovery ends it on the next start |
/// | `LeaseLost` | recovery or another worker owns it now: the work stops, nothing more is written or removed |
/// | `Backup`, `Internal` (or a `Store` error the executor returns) | ends Failed with this error as its reason, its data removed |
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The metadata store failed; usually transient (busy, locked, I/O).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server is shutting down.
    #[error("the backup was cancelled: the server is shutting down")]
    Cancelled,
    /// The job's lease ran out and crash recovery or another worker took the job: the store
    /// refused this worker's write (`StoreError::LeaseLost`), or the lease was not renewed.
    #[error("the job was taken over by crash recovery or another worker")]
    LeaseLost,
    /// The backup failed (the database, the engine or the repository). The text becomes the
    /// job's failure reason, so it must never contain a secret.
    #[error("{0}")]
    Backup(String),
    /// A bug: a store task panicked, or a progress report broke the job's state machine.
    #[error("internal error: {0}")]
    Internal(String),
}

impl JobError {
    /// Whether trying the same store call again may succeed. A refused job write is not
    /// transient: the stored job moved on without this worker (see [`JobError::LeaseLost`]).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            JobError::Store(e) => match e {
                // A lost connection or a failed handshake may well work the next time.
                StoreError::Sqlite(_)
                | StoreError::Postgres(_)
                | StoreError::Tls(_)
                | StoreError::Io(_) => true,
                StoreError::NotFound { .. }
                | StoreError::Conflict(_)
                | StoreError::Corrupt(_)
                | StoreError::TooNew { .. }
                | StoreError::IllegalJobUpdate { .. }
                | StoreError::LeaseLost { .. }
                | StoreError::NotEmpty { .. }
                | StoreError::MasterKey(_) => false,
            },
            JobError::Cancelled
            | JobError::LeaseLost
            | JobError::Backup(_)
            | JobError::Internal(_) => false,
        }
    }
}
