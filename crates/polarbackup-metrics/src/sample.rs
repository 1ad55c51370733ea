//! What a scrape reads ([`Snapshot`], through the server's [`Sampler`]) and how it becomes
//! gauges: one descriptor per metric, one series per cluster (and status).

use jiff::Timestamp;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::sync::Arc;

/// Reads the current state for a scrape (the binary implements it over the store, the
/// workers and the archivers).
pub trait Sampler: Send + Sync + 'static {
    /// `Err` (the store unreachable, say) makes the scrape show `polarbackup_store_up 0`
    /// and no per-cluster series, rather than fail.
    fn sample(&self) -> Result<Snapshot, String>;
}

/// Everything a scrape shows besides the request metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub clusters: Vec<ClusterSample>,
    pub workers: WorkerSample,
}

/// The worker pool of this server.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkerSample {
    /// Backups this server runs at once at most (`--workers`).
    pub slots: u64,
    /// Backups running on this server now.
    pub busy: u64,
    /// Seconds spent running backups, summed over the workers, since the server started.
    pub busy_seconds: f64,
}

/// The newest available (verified, not found corrupt) backup set of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastBackup {
    pub end: Timestamp,
    pub start: Timestamp,
    /// Bytes of the database files and WAL in the set.
    pub size: u64,
    /// Bytes it takes in the repository.
    pub stored_size: u64,
}

/// One Running cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSample {
    pub cluster: String,
    pub created_at: Timestamp,
    pub last_backup: Option<LastBackup>,
    pub available_sets: u64,
    /// Stored jobs by status name (every status, zeros included, so an alert on a status
    /// sees a series from the start).
    pub jobs: Vec<(&'static str, u64)>,
    /// Server time of the newest archived WAL.
    pub newest_wal: Option<Timestamp>,
    /// The server's WAL end minus what is archived, where this server runs the cluster's
    /// archiver.
    pub wal_lag_bytes: Option<u64>,
    /// DescribeLocalAvailableRecoveryTime's window.
    pub recovery_window: Option<(Timestamp, Timestamp)>,
    /// `LogBackupRetentionPeriod` in seconds; `None` when logs are kept as long as the cluster.
    pub log_retention_seconds: Option<u64>,
}

/// The [`Sampler`] as a prometheus-client collector.
pub(crate) struct Collected(pub(crate) Arc<dyn Sampler>);

impl std::fmt::Debug for Collected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collected")
    }
}

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.sample();
        single(
            &mut encoder,
            "store_up",
            "1 when the last scrape could read the metadata store, else 0",
            f64::from(u8::from(snapshot.is_ok())),
        )?;
        let Ok(snap) = snapshot else { return Ok(()) };
        let w = snap.workers;
        single(
            &mut encoder,
            "worker_slots",
            "Backups this server runs at once at most",
            w.slots as f64,
        )?;
        single(
            &mut encoder,
            "workers_busy",
            "Backups running on this server now",
            w.busy as f64,
        )?;
        counter(
            &mut encoder,
            "worker_busy_seconds",
            "Seconds spent running backups, summed over this server's workers",
            w.busy_seconds,
        )?;
        let cs = &snap.clusters;
        let per = |f: fn(&ClusterSample) -> Option<f64>| {
            cs.iter()
                .filter_map(move |c| f(c).map(|v| (cluster(c), v)))
                .collect::<Vec<_>>()
        };
        gauge(
            &mut encoder,
            "cluster_created_timestamp_seconds",
            "When the cluster was registered",
            per(|c| Some(secs(c.created_at))),
        )?;
        gauge(
            &mut encoder,
            "last_successful_backup_timestamp_seconds",
            "End of the newest available (verified) backup set",
            per(|c| c.last_backup.map(|b| secs(b.end))),
        )?;
        gauge(
            &mut encoder,
            "last_successful_backup_duration_seconds",
            "How long the newest available backup set took",
            per(|c| c.last_backup.map(|b| secs(b.end) - secs(b.start))),
        )?;
        gauge(
            &mut encoder,
            "last_successful_backup_size_bytes",
            "Database and WAL bytes in the newest available backup set",
            per(|c| c.last_backup.map(|b| b.size as f64)),
        )?;
        gauge(
            &mut encoder,
            "last_successful_backup_stored_bytes",
            "Repository bytes of the newest available backup set, after compression",
            per(|c| c.last_backup.map(|b| b.stored_size as f64)),
        )?;
        gauge(
            &mut encoder,
            "backup_sets_available",
            "Backup sets a restore can use",
            per(|c| Some(c.available_sets as f64)),
        )?;
        let jobs: Vec<_> = cs
            .iter()
            .flat_map(|c| {
                c.jobs.iter().map(|(status, n)| {
                    (
                        [
                            ("cluster", c.cluster.clone()),
                            ("status", (*status).to_owned()),
                        ],
                        *n as f64,
                    )
                })
            })
            .collect();
        gauge(
            &mut encoder,
            "backup_jobs",
            "Stored backup jobs, by status",
            jobs,
        )?;
        gauge(
            &mut encoder,
            "wal_last_archived_timestamp_seconds",
            "Server time of the newest archived WAL",
            per(|c| c.newest_wal.map(secs)),
        )?;
        gauge(
            &mut encoder,
            "wal_archive_lag_bytes",
            "WAL the server has written that is not archived yet (clusters archived by this server)",
            per(|c| c.wal_lag_bytes.map(|b| b as f64)),
        )?;
        gauge(
            &mut encoder,
            "recovery_window_start_timestamp_seconds",
            "Earliest time a point-in-time restore reaches",
            per(|c| c.recovery_window.map(|(b, _)| secs(b))),
        )?;
        gauge(
            &mut encoder,
            "recovery_window_end_timestamp_seconds",
            "Latest time a point-in-time restore reaches",
            per(|c| c.recovery_window.map(|(_, e)| secs(e))),
        )?;
        gauge(
            &mut encoder,
            "recovery_window_seconds",
            "Length of the point-in-time recovery window",
            per(|c| c.recovery_window.map(|(b, e)| secs(e) - secs(b))),
        )?;
        gauge(
            &mut encoder,
            "log_backup_retention_seconds",
            "LogBackupRetentionPeriod: how far back the policy promises restores (absent: as long as the cluster)",
            per(|c| c.log_retention_seconds.map(|s| s as f64)),
        )?;
        Ok(())
    }
}

fn cluster(c: &ClusterSample) -> [(&'static str, String); 1] {
    [("cluster", c.cluster.clone())]
}

fn secs(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// One gauge descriptor and its series (none: the descriptor alone).
fn gauge<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One unlabelled gauge.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// One unlabelled counter.
fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    prometheus_client::metrics::counter::ConstCounter::new(value).encode(metric)
}
