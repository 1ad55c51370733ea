//! Progress deadlines: a database that stops sending (SIGSTOPped, partitioned, hung) fails
//! the work waiting on it after `--stall-secs` instead of holding its job slot forever.

use crate::EngineError;
use std::future::Future;
use std::time::Duration;

/// The default of `--stall-secs`: long enough for a slow checkpoint or size estimate.
pub const DEFAULT_STALL: Duration = Duration::from_secs(120);

/// A deadline on each wait for the database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub limit: Duration,
    /// What stalls when it runs out, for the reason ("backup", "WAL stream").
    pub what: &'static str,
}

impl Deadline {
    pub fn new(limit: Duration, what: &'static str) -> Deadline {
        Deadline { limit, what }
    }

    /// The error when the database was silent for the whole limit.
    pub fn stalled(&self) -> EngineError {
        EngineError::Stalled {
            secs: self.limit.as_secs(),
            what: self.what,
        }
    }

    /// Runs `fut`, a wait for the database, failing it as stalled once the limit passes.
    pub async fn wait<T>(
        &self,
        fut: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        match tokio::time::timeout(self.limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(self.stalled()),
        }
    }
}
