//! How the engine tells its caller where a backup or restore stands.

use std::future::Future;
use std::pin::Pin;

/// A backup's phases, matching the job lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected; checking prerequisites and starting the backup.
    Preparing,
    /// Waiting for the database: the checkpoint that starts the backup.
    Waiting,
    /// Data flowing into the repository: bytes received of the server's estimate.
    Uploading { done: u64, total: u64 },
    /// Re-reading and verifying everything stored: stored bytes verified of the total.
    Checking { done: u64, total: u64 },
}

/// Receives progress. Calls are awaited, so a slow sink slows the backup instead of losing
/// phase changes.
pub trait ProgressSink: Send + Sync {
    fn report(&self, phase: Phase) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Forwards only changes of at least one part in a thousand, so a stream of small chunks
/// does not become a stream of writes.
pub(crate) struct Throttle {
    last_permille: Option<u64>,
}

impl Throttle {
    pub fn new() -> Self {
        Self {
            last_permille: None,
        }
    }

    pub fn due(&mut self, done: u64, total: u64) -> bool {
        let permille = done
            .saturating_mul(1000)
            .checked_div(total)
            .unwrap_or(0)
            .min(1000);
        if self.last_permille == Some(permille) {
            return false;
        }
        self.last_permille = Some(permille);
        true
    }
}
