//! The crate's one error type, `RepoError`.

/// Everything that can go wrong in the repository. Bad data never panics; it becomes `Corrupt`.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The storage backend failed (I/O error, disk full, network, permissions).
    #[error("storage error at {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backup, archive or file does not exist (or has no committed manifest).
    #[error("not found: {0}")]
    NotFound(String),
    /// A backup id, archive or file name is already in use.
    #[error("already exists: {0}")]
    Exists(String),
    /// A stored object or the manifest does not match what was recorded.
    /// `object` is the path relative to the repository root.
    #[error("corrupt object {object}: {reason}")]
    Corrupt { object: String, reason: String },
    /// A manifest written by a newer (or unknown) repository format.
    #[error("unsupported repository format version {0}")]
    UnsupportedFormat(u32),
    /// A backup id, archive or file name that cannot be used as a path component.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        kind: &'static str,
        name: String,
        reason: &'static str,
    },
    /// `RepoConfig` or the repository location is unusable.
    #[error("invalid repository config: {0}")]
    InvalidConfig(String),
    /// The writer was used out of order, or an earlier error left it unusable.
    #[error("invalid writer state: {0}")]
    InvalidState(String),
    /// A bug or a crashed worker task.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RepoError {
    pub(crate) fn storage(path: &str, source: opendal::Error) -> Self {
        RepoError::Storage {
            path: path.to_owned(),
            source: Box::new(source),
        }
    }

    pub(crate) fn corrupt(object: &str, reason: impl Into<String>) -> Self {
        RepoError::Corrupt {
            object: object.to_owned(),
            reason: reason.into(),
        }
    }

    /// Maps a join failure of one of our worker tasks.
    pub(crate) fn join(err: tokio::task::JoinError) -> Self {
        if err.is_cancelled() {
            RepoError::Internal("worker task was cancelled".into())
        } else {
            RepoError::Internal(format!("worker task panicked: {err}"))
        }
    }
}
