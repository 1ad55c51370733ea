//! Background work: a pool of workers that claim backup jobs from the store under a lease,
//! run them through an [`Executor`] (the backup engine), report progress, and recover from
//! crashes and deletions on every start.

mod deletions;
mod executor;
mod progress;
pub mod scheduler;
mod worker;

pub use deletions::remove_marked_sets;
pub use executor::{BoxFuture, Completed, Executor, JobContext};
pub use progress::Progress;
pub use tokio_util::sync::CancellationToken;
pub use worker::{start, WorkerConfig};

/// Runs a store call on the blocking pool; errors become the reasons jobs and logs carry.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, polarbackup_store::StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("store task failed: {e}")),
    }
}
