//! Store calls from async code: run on the blocking pool, and retried with a bounded backoff
//! where a transient failure must not fail a job.

use crate::error::JobError;
use polarbackup_store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, JobError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(JobError::Internal(format!("store task failed: {e}"))),
    }
}

/// How patiently a store call is retried: at most `attempts` calls, waiting `first` after the
/// first failure and twice as long after each next one, up to `cap`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    attempts: u32,
    first: Duration,
    cap: Duration,
}

impl Backoff {
    /// A progress write holds up the engine, and the next write carries the same state: four
    /// calls over 0.7 s.
    pub(crate) const PROGRESS: Backoff = Backoff {
        attempts: 4,
        first: Duration::from_millis(100),
        cap: Duration::from_secs(2),
    };
    /// A job's end is worth waiting for (else recovery fails a finished backup): ten calls over
    /// about 11 s, well inside the 30 s lease that the heartbeat keeps renewing meanwhile.
    pub(crate) const END: Backoff = Backoff {
        attempts: 10,
        ..Backoff::PROGRESS
    };

    fn delay(&self, failures: u32) -> Duration {
        let doubled = self
            .first
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        doubled.min(self.cap)
    }
}

/// Calls `f` until it succeeds, fails in a way retrying cannot fix, or `policy` runs out. When
/// `stop` fires (shutdown, a lost lease) it gives up at once, so shutdown never waits on a
/// store; once `stop` has fired, `f` is still called once.
pub(crate) async fn retrying<T, F>(
    policy: Backoff,
    stop: &CancellationToken,
    f: F,
) -> Result<T, JobError>
where
    T: Send + 'static,
    F: Fn() -> Result<T, StoreError> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let mut failures = 0;
    loop {
        let call = f.clone();
        let error = match blocking(move || call()).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        failures += 1;
        if !error.is_transient() || failures >= policy.attempts || stop.is_cancelled() {
            return Err(error);
        }
        warn!(error = %error, failures, "store call failed; retrying");
        tokio::select! {
            () = stop.cancelled() => return Err(error),
            () = tokio::time::sleep(policy.delay(failures)) => {}
        }
    }
}

/// Reads a refused write of a claimed job as what it means: another holds its lease, or the
/// stored job ended or moved past this worker's copy, so someone else owns it now.
pub(crate) fn job_write(e: JobError) -> JobError {
    match e {
        JobError::Store(StoreError::LeaseLost { .. } | StoreError::IllegalJobUpdate { .. }) => {
            JobError::LeaseLost
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn delays_double_up_to_the_cap() {
        let ms = |n| Backoff::END.delay(n).as_millis();
        let delays: Vec<_> = (1..Backoff::END.attempts).map(ms).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 2000, 2000, 2000, 2000]);
        let total: Duration = (1..Backoff::PROGRESS.attempts)
            .map(|n| Backoff::PROGRESS.delay(n))
            .sum();
        assert_eq!(total, Duration::from_millis(700));
    }
}
