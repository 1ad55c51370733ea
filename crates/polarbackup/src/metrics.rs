//! What `--metrics-listen` shows of this server: each Running cluster's backups, jobs, WAL and
//! recovery window from the store, this server's workers, and the lag of the archives it runs.

use crate::archiver::Positions;
use jiff::Timestamp;
use polarbackup_jobs::PoolStats;
use polarbackup_metrics::{ClusterSample, LastBackup, Sampler, Snapshot, WorkerSample};
use polarbackup_model::log_backup::{recovery_window, LogRetention};
use polarbackup_model::{DbClusterId, JobStatus};
use polarbackup_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::warn;

pub struct ServerSampler {
    pub store: Arc<dyn Store>,
    pub workers: Arc<PoolStats>,
    /// `--workers`.
    pub slots: usize,
    pub archives: Positions,
}

impl Sampler for ServerSampler {
    fn sample(&self) -> Result<Snapshot, String> {
        self.read().map_err(|e| {
            warn!(error = %e, "metrics: the metadata store could not be read");
            "the metadata store could not be read".to_owned()
        })
    }
}

impl ServerSampler {
    fn read(&self) -> Result<Snapshot, StoreError> {
        let mut counts: HashMap<DbClusterId, [u64; JobStatus::ALL.len()]> = HashMap::new();
        for (cluster, status, n) in self.store.job_counts()? {
            let i = JobStatus::ALL.iter().position(|s| *s == status);
            if let Some(i) = i {
                counts.entry(cluster).or_default()[i] = n;
            }
        }
        let lags = self.archives.lags();
        // One read for every cluster: a few statements per scrape, not a few per cluster.
        let mut clusters = Vec::new();
        for o in self.store.recovery_overview()? {
            let inputs = &o.available;
            let last_backup = inputs
                .sets
                .iter()
                .max_by_key(|s| (s.end_time, s.id))
                .map(|s| LastBackup {
                    start: s.start_time,
                    end: s.end_time,
                    size: s.size,
                    stored_size: s.stored_size,
                });
            let window = recovery_window(&inputs.sets, &inputs.wal, &inputs.gaps)
                .map(|w| (whole_second(w.begin), whole_second(w.end)));
            let by_status = counts.get(&o.cluster).copied().unwrap_or_default();
            clusters.push(ClusterSample {
                cluster: o.cluster.as_str().to_owned(),
                created_at: o.created_at,
                last_backup,
                available_sets: inputs.sets.len() as u64,
                jobs: JobStatus::ALL
                    .iter()
                    .zip(by_status)
                    .map(|(s, n)| (s.as_str(), n))
                    .collect(),
                newest_wal: inputs.wal.iter().map(|w| w.object.end_time).max(),
                wal_lag_bytes: lags.get(&o.cluster).copied(),
                recovery_window: window,
                log_retention_seconds: match o.log_policy.retention {
                    LogRetention::Days(d) => Some(u64::from(d) * 86_400),
                    LogRetention::Forever => None,
                },
            });
        }
        let (busy, busy_seconds) = self.workers.read();
        Ok(Snapshot {
            clusters,
            workers: WorkerSample {
                slots: self.slots as u64,
                busy,
                busy_seconds,
            },
        })
    }
}

/// The API shows the window's ends to the second; so do the metrics.
fn whole_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}
