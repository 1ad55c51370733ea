//! Every `serve` setting, declared once (name and file key, type, default, environment
//! variable, help, check), and its one conversion into the api, HTTP and worker configs.

mod declare;
#[cfg(test)]
mod tests;

use crate::cli::{FullBackupEveryArg, LogFormat, OnOff, RamModeArg};
use crate::locations::{MetadataUrl, RepositoryUrl};
use crate::scrub::ScrubConfig;
use anyhow::Result;
use declare::{any, within};
pub use declare::{OptionalAddr, OptionalFile, CONFIG_ENV};
use jiff::SignedDuration;
use polarbackup_api::{
    ApiConfig, DiagnosticKey, HttpSettings, LinkConfig, LinkSecret, RamConfig, RamMode,
};
use polarbackup_jobs::archiver::ArchiveConfig;
use polarbackup_jobs::WorkerConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

// The flag is `--` and the name with `-` for `_`; the file key is the name. `sample` (valid,
// not the default) and `invalid` feed the tests that run over every setting. Secrets have no
// flag: argv is visible to every user of the machine.
declare::settings! {
    secrets {
        metadata_password {
            env: "PGPASSWORD",
            help: "password of a postgres:// metadata store whose URL holds none",
        }
        aws_access_key_id {
            env: "AWS_ACCESS_KEY_ID",
            help: "access key id of an s3:// repository",
        }
        aws_secret_access_key {
            env: "AWS_SECRET_ACCESS_KEY",
            help: "secret access key of an s3:// repository",
        }
        master_key {
            env: "POLARBACKUP_MASTER_KEY",
            help: "the master key sealing the metadata store's secrets (32 bytes as 64 hex \
                   digits or base64); overrides master_key_file",
        }
    }
    listen: SocketAddr {
        default: "127.0.0.1:8080",
        env: "POLARBACKUP_LISTEN",
        help: "Address to listen on",
        check: any,
        sample: "127.0.0.1:9000",
        invalid: "localhost:8080",
    }
    metrics_listen: OptionalAddr {
        default: "",
        env: "POLARBACKUP_METRICS_LISTEN",
        help: "Serve Prometheus metrics at http://ADDR/metrics (empty, the default: off). \
               Nothing else is served there and no key is asked for: bind it where only the \
               monitoring system reaches",
        check: any,
        sample: "127.0.0.1:9187",
        invalid: "localhost:9187",
    }
    data_dir: PathBuf {
        default: "./polarbackup-data",
        env: "POLARBACKUP_DATA_DIR",
        help: "Directory of the server's keys and scratch space, and of the metadata store and \
               the backup repository unless their URLs put them elsewhere",
        check: |p| non_empty_path(p),
        sample: "/var/lib/polarbackup",
        invalid: "",
    }
    metadata_url: MetadataUrl {
        default: "sqlite://metadata.sqlite",
        env: "POLARBACKUP_METADATA_URL",
        help: "The metadata store: sqlite://PATH (a relative PATH is in the data directory), \
               or postgres://USER@HOST:PORT/DB?sslmode=MODE&sslrootcert=FILE, shared by \
               several servers (sslmode as libpq: disable, prefer, require, verify-full). A \
               password in the URL only from the environment or the config file, else \
               PGPASSWORD",
        check: |u| u.parse().map(drop),
        sample: "postgres://polarbackup@db.example.com:5432/polarbackup?sslmode=verify-full",
        invalid: "mysql://db.example.com/polarbackup",
    }
    metadata_pool_size: usize {
        default: "8",
        env: "POLARBACKUP_METADATA_POOL_SIZE",
        help: "Connections to a postgres:// metadata store",
        check: |n| within(n, 1..=128),
        sample: "16",
        invalid: "0",
    }
    repository_url: RepositoryUrl {
        default: "file://repo",
        env: "POLARBACKUP_REPOSITORY_URL",
        help: "The backup repository: file://PATH (a relative PATH is in the data directory), \
               or s3://BUCKET/PREFIX?endpoint=URL&region=REGION (credentials from \
               AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the config file)",
        check: |u| u.parse().map(drop),
        sample: "file:///srv/polarbackup/repo",
        invalid: "ftp://backup.example.com/repo",
    }
    repository_key_file: OptionalFile {
        default: "",
        env: "POLARBACKUP_REPOSITORY_KEY_FILE",
        help: "Encrypt the backup repository: a file (mode 0600; a relative path is in the data \
               directory) holding at least 32 bytes of secret, e.g. from `openssl rand -base64 \
               48`. Every object is sealed with AES-256-GCM before it is stored, and reading \
               needs the same file; unset (the default), the repository is not encrypted, and \
               an encrypted one is refused",
        check: |f| f.0.as_deref().map_or(Ok(()), secret_path),
        sample: "/etc/polarbackup/repository.key",
        invalid: "../repository.key",
    }
    job_history_days: u32 {
        default: "7",
        env: "POLARBACKUP_JOB_HISTORY_DAYS",
        help: "Days that Finished and Failed jobs stay listed",
        check: |days| within(days, 0..=3650),
        sample: "3",
        invalid: "3651",
    }
    log_format: LogFormat {
        default: "text",
        env: "POLARBACKUP_LOG_FORMAT",
        help: "Log format",
        check: any,
        sample: "json",
        invalid: "xml",
    }
    workers: usize {
        default: "2",
        env: "POLARBACKUP_WORKERS",
        help: "Backups that may run at once, at most one per cluster; 0 serves the API only \
               (no backups run, nothing is scheduled)",
        check: |n| within(n, 0..=64),
        sample: "5",
        invalid: "65",
    }
    lease_secs: u32 {
        default: "30",
        env: "POLARBACKUP_LEASE_SECS",
        help: "Seconds a worker's claim on a job lasts without a heartbeat (renewed every third \
               of it). After a crash, another server recovers the job once it runs out",
        // Shorter leases would have heartbeats compete with the backups for the store.
        check: |secs| within(secs, 3..=3600),
        sample: "5",
        invalid: "2",
    }
    scheduler: OnOff {
        default: "on",
        env: "POLARBACKUP_SCHEDULER",
        help: "Take automated backups by each cluster's policy; `off` suits a local test \
               endpoint whose clusters are not real",
        check: any,
        sample: "off",
        invalid: "maybe",
    }
    full_backup_every: FullBackupEveryArg {
        default: "week",
        env: "POLARBACKUP_FULL_BACKUP_EVERY",
        help: "Which automated backups are full for clusters without a setting of their own                (`admin cluster full-backup-every`): `week`, the first of each ISO week (UTC),                the others incremental on the newest usable set; or `always`",
        check: any,
        sample: "always",
        invalid: "daily",
    }
    log_backup: OnOff {
        default: "on",
        env: "POLARBACKUP_LOG_BACKUP",
        help: "Archive every Running cluster's WAL continuously (log backup, for restores to \
               any second); `off` suits a local test endpoint whose clusters are not real",
        check: any,
        sample: "off",
        invalid: "sometimes",
    }
    wal_partial_secs: u32 {
        default: "10",
        env: "POLARBACKUP_WAL_PARTIAL_SECS",
        help: "While WAL is being written, store the segment in progress at least this often \
               (seconds): the recovery point objective",
        check: |secs| within(secs, 1..=3600),
        sample: "2",
        invalid: "0",
    }
    stall_secs: u32 {
        default: "120",
        env: "POLARBACKUP_STALL_SECS",
        help: "Seconds a backup or the WAL archiver may wait for the database without a byte \
               from it: then the backup fails as stalled (its slot and connections freed) and \
               the archiver reconnects",
        check: |secs| within(secs, 1..=86400),
        sample: "2",
        invalid: "0",
    }
    region: String {
        default: "cn-hangzhou",
        env: "POLARBACKUP_REGION",
        help: "The region in RAM resource names of clusters a caller does not have",
        check: |r| region_id(r),
        sample: "cn-shanghai",
        invalid: "CN_Hangzhou",
    }
    ram_mode: RamModeArg {
        default: "strict",
        env: "POLARBACKUP_RAM_MODE",
        help: "RAM enforcement for RAM users' calls",
        check: any,
        sample: "soft",
        invalid: "lenient",
    }
    host_id: String {
        default: "polardb.aliyuncs.com",
        env: "POLARBACKUP_HOST_ID",
        help: "`HostId` in error bodies",
        check: |h| host_name(h),
        sample: "backup.example.com",
        invalid: "polardb aliyuncs",
    }
    link_secret_file: PathBuf {
        default: "link-secret.key",
        env: "POLARBACKUP_LINK_SECRET_FILE",
        help: "File holding the secret (at least 32 bytes) that signs backup-log download \
               links. A relative path is in the data directory, and the file is made there \
               (random, mode 0600) on first start; an absolute one must exist. Servers \
               answering for one store must share it",
        check: |p| secret_path(p),
        sample: "/etc/polarbackup/link-secret.key",
        invalid: "",
    }
    master_key_file: PathBuf {
        default: "master.key",
        env: "POLARBACKUP_MASTER_KEY_FILE",
        help: "File holding the master key that seals access-key secrets and database \
               passwords in the metadata store (32 raw bytes, or 64 hex digits or base64). A \
               relative path is in the data directory, and the file is made there (random, \
               mode 0600) on first start; an absolute one must exist and be private. Servers \
               sharing a store must share the key",
        check: |p| secret_path(p),
        sample: "/etc/polarbackup/master.key",
        invalid: "",
    }
    header_timeout_secs: u32 {
        default: "10",
        env: "POLARBACKUP_HEADER_TIMEOUT_SECS",
        help: "Seconds a connection has to send a request's head (request line and headers) \
               before it is closed; also how long an idle keep-alive connection stays open",
        // Longer would let slow clients hold connections; 0 would refuse every request.
        check: |secs| within(secs, 1..=300),
        sample: "2",
        invalid: "0",
    }
    scrub_days: Days {
        default: "7",
        env: "POLARBACKUP_SCRUB_DAYS",
        help: "Re-read every stored backup set at least once in this many days (fractions \
               allowed), checking every object's checksum; a corrupt set becomes unavailable \
               (IsAvail 0). 0 turns the scrub off; it runs only where workers do",
        check: |d| d.within(0.0, 3650.0),
        sample: "1",
        invalid: "3651",
    }
    scrub_mibps: u32 {
        default: "50",
        env: "POLARBACKUP_SCRUB_MIBPS",
        help: "The scrub's read rate from the repository, in MiB/s (one set at a time)",
        check: |n| within(n, 1..=100_000),
        sample: "200",
        invalid: "0",
    }
}

/// A number of days, fractions allowed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(transparent)]
pub struct Days(pub f64);

// Checked finite (`within`), so equality is total.
impl Eq for Days {}

impl std::str::FromStr for Days {
    type Err = std::num::ParseFloatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Days)
    }
}

impl std::fmt::Display for Days {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Days {
    fn within(&self, min: f64, max: f64) -> Result<(), String> {
        if (min..=max).contains(&self.0) {
            Ok(())
        } else {
            Err(format!("must be between {min} and {max}"))
        }
    }

    /// As a duration; `None` for zero (off).
    fn period(self) -> Option<Duration> {
        (self.0 > 0.0).then(|| Duration::from_secs_f64(self.0 * 86_400.0))
    }
}

fn non_empty_path(p: &Path) -> Result<(), String> {
    if p.as_os_str().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(())
}

/// A relative secret file lives in the data directory, so it may not climb out of it.
fn secret_path(p: &Path) -> Result<(), String> {
    non_empty_path(p)?;
    if p.is_relative() && p.components().any(|c| c == std::path::Component::ParentDir) {
        return Err("a relative path must stay inside the data directory (no '..')".into());
    }
    Ok(())
}

fn region_id(r: &str) -> Result<(), String> {
    if !crate::config::valid_region(r) {
        return Err("must be a region id: lower-case letters, digits and '-'".into());
    }
    Ok(())
}

/// `HostId` goes into every error body, JSON and XML alike.
fn host_name(h: &str) -> Result<(), String> {
    if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be non-empty printable ASCII without spaces".into());
    }
    Ok(())
}

/// `serve`'s settings in the shapes the crates it starts take.
#[derive(Debug)]
pub struct Parts {
    pub listen: SocketAddr,
    /// `--metrics-listen`; `None`: no metrics.
    pub metrics_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub api: ApiConfig,
    pub http: HttpSettings,
    /// With `concurrency` 0 no worker pool runs.
    pub workers: WorkerConfig,
    /// `None`: no WAL archiving (log backup off, or no workers).
    pub archive: Option<ArchiveParts>,
    /// The progress deadline of backups and WAL streaming (`--stall-secs`).
    pub stall: Duration,
    /// `None`: no scrub (turned off, or no workers).
    pub scrub: Option<ScrubConfig>,
}

/// The WAL archivers' settings.
#[derive(Debug, Clone)]
pub struct ArchiveParts {
    pub config: ArchiveConfig,
    /// How often the segment in progress is stored while WAL arrives.
    pub partial_interval: Duration,
}

impl Settings {
    /// Flags, the process environment, the config file, the defaults.
    pub fn load(args: &ServeArgs) -> Result<Self> {
        Self::resolve(args, &|name| std::env::var_os(name))
    }

    pub fn into_parts(self, diagnostic_key: DiagnosticKey, link_secret: LinkSecret) -> Parts {
        Parts {
            listen: self.listen,
            metrics_listen: self.metrics_listen.0,
            data_dir: self.data_dir,
            api: ApiConfig {
                host_id: self.host_id,
                region: self.region,
                job_history: SignedDuration::from_hours(i64::from(self.job_history_days) * 24),
                body_limit: ApiConfig::BODY_LIMIT,
                body_timeout: ApiConfig::BODY_TIMEOUT,
                ram: RamConfig {
                    mode: match self.ram_mode {
                        RamModeArg::Strict => RamMode::Strict,
                        RamModeArg::Soft => RamMode::Soft,
                        RamModeArg::Off => RamMode::Off,
                    },
                    diagnostic_key,
                },
                links: LinkConfig {
                    secret: link_secret,
                    lifetime: LinkConfig::LIFETIME,
                },
            },
            http: HttpSettings {
                header_read_timeout: Duration::from_secs(self.header_timeout_secs.into()),
                drain_timeout: polarbackup_api::http::DRAIN_TIMEOUT,
            },
            workers: WorkerConfig {
                concurrency: self.workers,
                lease: SignedDuration::from_secs(self.lease_secs.into()),
                poll: WorkerConfig::IDLE_POLL,
                scheduler: self.scheduler == OnOff::On,
                orphan_sweep: WorkerConfig::ORPHAN_SWEEP,
                full_backup_every: self.full_backup_every.model(),
            },
            archive: (self.log_backup == OnOff::On && self.workers > 0).then(|| ArchiveParts {
                config: ArchiveConfig {
                    lease: SignedDuration::from_secs(self.lease_secs.into()),
                    ..ArchiveConfig::default()
                },
                partial_interval: Duration::from_secs(self.wal_partial_secs.into()),
            }),
            stall: Duration::from_secs(self.stall_secs.into()),
            scrub: self
                .scrub_days
                .period()
                .filter(|_| self.workers > 0)
                .map(|period| ScrubConfig {
                    period,
                    bytes_per_sec: f64::from(self.scrub_mibps) * 1024.0 * 1024.0,
                }),
        }
    }
}
