//! Background work: a pool of workers that claim backup jobs from the store under a lease,
//! run them through an [`Executor`] (the backup engine), report progress, and recover from
//! crashes and deletions on every start; and the WAL archivers (`archiver`), one per cluster.

pub mod archiver;
mod busy;
mod deletions;
mod error;
mod executor;
mod lease;
mod progress;
pub mod scheduler;
mod store_call;
mod worker;

pub use busy::PoolStats;
pub use deletions::remove_marked_sets;
pub use error::JobError;
pub use executor::{BoxFuture, Completed, Executor, JobContext};
pub use progress::Progress;
pub use tokio_util::sync::CancellationToken;
pub use worker::{start, start_observed, PoolClocks, WorkerConfig};
