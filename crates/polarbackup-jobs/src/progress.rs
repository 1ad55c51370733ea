//! Progress reporting: phase changes are written at once, percentage updates at most every
//! quarter second, and Process never goes backwards.

use jiff::Timestamp;
use polarbackup_model::{BackupJob, Clock, JobStatus};
use polarbackup_store::JobStore;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::warn;

const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(250);

struct State {
    job: BackupJob,
    last_write: Option<Instant>,
}

/// A job's live state, shared by the engine (writer) and the worker (which ends the job).
#[derive(Clone)]
pub struct Progress {
    state: Arc<Mutex<State>>,
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
}

impl Progress {
    pub fn new(job: BackupJob, store: Arc<dyn JobStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                job,
                last_write: None,
            })),
            store,
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn job(&self) -> BackupJob {
        self.lock().job.clone()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Enters a phase (persisted immediately). `process` is clamped into the phase's band.
    pub async fn phase(&self, status: JobStatus, process: u8) -> Result<(), String> {
        self.set(status, process, true).await
    }

    /// Reports the fraction done of the current phase, mapped onto its band of Process.
    pub async fn fraction(&self, done: u64, total: u64) -> Result<(), String> {
        let status = self.lock().job.status;
        let (lo, hi) = status.process_range();
        let f = if total == 0 {
            0.0
        } else {
            (done as f64 / total as f64).clamp(0.0, 1.0)
        };
        let process = lo + ((f64::from(hi - lo)) * f).floor() as u8;
        self.set(status, process, false).await
    }

    async fn set(&self, status: JobStatus, process: u8, force: bool) -> Result<(), String> {
        let snapshot = {
            let mut st = self.lock();
            let now = self.clock.now();
            let before = st.job.clone();
            if status == before.status {
                // Same phase: only forward. The job in memory always moves (the worker ends
                // the job from it); the store hears of it at most every interval.
                let (lo, hi) = status.process_range();
                let p = process.clamp(lo, hi);
                if p <= before.process {
                    return Ok(());
                }
                st.job.advance(status, p, now).map_err(|e| e.to_string())?;
                let due = st
                    .last_write
                    .is_none_or(|t| t.elapsed() >= MIN_WRITE_INTERVAL);
                if !force && !due {
                    return Ok(());
                }
            } else {
                st.job
                    .advance(status, process, now)
                    .map_err(|e| e.to_string())?;
            }
            st.last_write = Some(Instant::now());
            st.job.clone()
        };
        let store = self.store.clone();
        let written = tokio::task::spawn_blocking(move || store.update_job(&snapshot)).await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                warn!(error = %e, "could not record progress");
                Err(format!("the metadata store failed: {e}"))
            }
            Err(e) => Err(format!("progress writer failed: {e}")),
        }
    }
}
