//! Progress reporting: phase changes are written at once, percentage updates at most every
//! quarter second, and Process never goes backwards. A store that fails is retried briefly,
//! then skipped; a lost lease stops every further write.

use crate::error::JobError;
use crate::lease::Lease;
use crate::store_call::{job_write, retrying, Backoff};
use jiff::Timestamp;
use polarbackup_model::{BackupJob, Clock, JobStatus};
use polarbackup_store::JobStore;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(250);

struct State {
    job: BackupJob,
    last_write: Option<Instant>,
}

/// A job's live state, shared by the engine (writer) and the worker (which ends the job).
#[derive(Clone)]
pub struct Progress {
    state: Arc<Mutex<State>>,
    /// One write at a time, each of the latest state: writes reach the store in order, so a
    /// refused one means the stored job moved on without this worker, never a reordering.
    writing: Arc<tokio::sync::Mutex<()>>,
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    lease: Lease,
    /// The worker that holds the job's lease (`None` outside the pool): every write is fenced
    /// by it in the store.
    holder: Option<Arc<str>>,
}

impl Progress {
    /// Progress of a job outside the worker pool, which no worker holds: never cancelled, its
    /// lease never lost.
    pub fn new(job: BackupJob, store: Arc<dyn JobStore>, clock: Arc<dyn Clock>) -> Self {
        Self::leased(job, store, clock, Lease::default(), None)
    }

    pub(crate) fn leased(
        job: BackupJob,
        store: Arc<dyn JobStore>,
        clock: Arc<dyn Clock>,
        lease: Lease,
        holder: Option<Arc<str>>,
    ) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                job,
                last_write: None,
            })),
            writing: Arc::default(),
            store,
            clock,
            lease,
            holder,
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
    /// A store that stays down is logged and skipped, since the next write carries the same
    /// state; [`JobError::LeaseLost`] means stop: the job is someone else's now.
    pub async fn phase(&self, status: JobStatus, process: u8) -> Result<(), JobError> {
        self.set(status, process, true).await
    }

    /// Reports the fraction done of the current phase, mapped onto its band of Process.
    pub async fn fraction(&self, done: u64, total: u64) -> Result<(), JobError> {
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

    async fn set(&self, status: JobStatus, process: u8, force: bool) -> Result<(), JobError> {
        if self.lease.is_lost() {
            return Err(JobError::LeaseLost);
        }
        {
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
                st.job.advance(status, p, now).map_err(internal)?;
                let due = st
                    .last_write
                    .is_none_or(|t| t.elapsed() >= MIN_WRITE_INTERVAL);
                if !force && !due {
                    return Ok(());
                }
            } else {
                st.job.advance(status, process, now).map_err(internal)?;
                // Every phase in the log, however short: Checking may last milliseconds, too
                // little for a poller of DescribeBackupTasks to see.
                info!(job = %st.job.id, %status, process = st.job.process, "job entered a phase");
            }
            st.last_write = Some(Instant::now());
        }
        let _writing = self.writing.lock().await;
        let snapshot = self.job();
        let store = self.store.clone();
        let holder = self.holder.clone();
        let written = retrying(Backoff::PROGRESS, self.lease.cancel(), move || {
            store.update_job(&snapshot, holder.as_deref())
        })
        .await
        .map_err(job_write);
        match written {
            Ok(()) => Ok(()),
            Err(JobError::LeaseLost) => {
                warn!("the stored job moved on without this worker; stopping the backup");
                self.lease.lose();
                Err(JobError::LeaseLost)
            }
            Err(_) if self.lease.is_lost() => Err(JobError::LeaseLost),
            Err(e) if e.is_transient() => {
                warn!(error = %e, "could not record progress; the next write carries it");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

fn internal(e: polarbackup_model::TransitionError) -> JobError {
    JobError::Internal(e.to_string())
}
