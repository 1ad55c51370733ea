//! Typed, layered configuration: defaults < TOML file < environment < flags.

use crate::cli::{LogFormat, OnOff, RamModeArg, ServeArgs};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./polarbackup-data";
pub const DEFAULT_JOB_HISTORY_DAYS: u32 = 7;
const MAX_JOB_HISTORY_DAYS: u32 = 3650;
pub const DEFAULT_WORKERS: usize = 2;
pub const DEFAULT_LEASE_SECS: u32 = 30;
/// Shorter leases would have heartbeats compete with the backups for the store.
const LEASE_SECS: std::ops::RangeInclusive<u32> = 3..=3600;
pub const DEFAULT_REGION: &str = "cn-hangzhou";
const MAX_WORKERS: usize = 64;

/// The keys a config file may hold; unknown keys are an error, so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    job_history_days: Option<u32>,
    log_format: Option<LogFormat>,
    host_id: Option<String>,
    workers: Option<usize>,
    lease_secs: Option<u32>,
    ram_mode: Option<RamModeArg>,
    scheduler: Option<OnOff>,
    region: Option<String>,
}

/// Everything `serve` needs, after layering and validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub job_history_days: u32,
    pub log_format: LogFormat,
    pub host_id: String,
    pub workers: usize,
    pub lease_secs: u32,
    pub ram_mode: RamModeArg,
    pub scheduler: bool,
    pub region: String,
}

impl ServeConfig {
    /// Flags and environment arrive together through clap (a flag beats its variable); both
    /// beat the file, which beats the defaults.
    pub fn load(args: &ServeArgs) -> Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let cfg = Self {
            listen: match args.listen.or(file.listen) {
                Some(a) => a,
                None => DEFAULT_LISTEN.parse().context("default listen address")?,
            },
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            job_history_days: args
                .job_history_days
                .or(file.job_history_days)
                .unwrap_or(DEFAULT_JOB_HISTORY_DAYS),
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            host_id: file
                .host_id
                .unwrap_or_else(|| "polardb.aliyuncs.com".into()),
            workers: args.workers.or(file.workers).unwrap_or(DEFAULT_WORKERS),
            lease_secs: args
                .lease_secs
                .or(file.lease_secs)
                .unwrap_or(DEFAULT_LEASE_SECS),
            ram_mode: args
                .ram_mode
                .or(file.ram_mode)
                .unwrap_or(RamModeArg::Strict),
            scheduler: args.scheduler.or(file.scheduler).unwrap_or(OnOff::On) == OnOff::On,
            region: args
                .region
                .clone()
                .or(file.region)
                .unwrap_or_else(|| DEFAULT_REGION.into()),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        if self.job_history_days > MAX_JOB_HISTORY_DAYS {
            bail!("job_history_days must be at most {MAX_JOB_HISTORY_DAYS}");
        }
        if self.workers > MAX_WORKERS {
            bail!("workers must be between 0 (API only) and {MAX_WORKERS}");
        }
        if !LEASE_SECS.contains(&self.lease_secs) {
            bail!(
                "lease_secs must be between {} and {}",
                LEASE_SECS.start(),
                LEASE_SECS.end()
            );
        }
        if !valid_region(&self.region) {
            bail!("region must be a region id such as cn-hangzhou");
        }
        if self.host_id.is_empty() || !self.host_id.is_ascii() {
            bail!("host_id must be non-empty ASCII");
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// Region ids: lower-case letters, digits and '-'.
pub fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The backup repository inside a data directory.
pub fn repo_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("repo")
}

/// The key that authenticates RAM diagnostic messages, created on first use (mode 0600).
pub fn diagnostic_key(data_dir: &Path) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("diagnostic.key");
    match std::fs::read(&path) {
        Ok(k) if k.len() >= 32 => return Ok(k),
        Ok(_) => bail!(
            "{} is too short; delete it to make a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)?;
    let key: [u8; 32] = rand::random();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(&key)?;
    f.sync_all()?;
    Ok(key.to_vec())
}

/// Private scratch space inside a data directory.
pub fn scratch_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tmp")
}

/// The data directory for commands that take only `--data-dir`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            listen: None,
            data_dir: None,
            config: None,
            job_history_days: None,
            log_format: None,
            workers: None,
            lease_secs: None,
            ram_mode: None,
            scheduler: None,
            region: None,
        }
    }

    #[test]
    fn defaults() {
        let c = ServeConfig::load(&args()).expect("load");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.job_history_days, 7);
        assert_eq!(c.lease_secs, 30);
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\njob_history_days = 3\ndata_dir = \"/tmp/x\"\n",
        )
        .expect("write");
        let mut a = args();
        a.config = Some(path.clone());
        let c = ServeConfig::load(&a).expect("load");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.job_history_days, 3);
        a.job_history_days = Some(1);
        a.listen = Some("127.0.0.1:9001".parse().expect("addr"));
        let c = ServeConfig::load(&a).expect("load");
        assert_eq!((c.listen.port(), c.job_history_days), (9001, 1));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        a.lease_secs = Some(5);
        assert_eq!(ServeConfig::load(&a).expect("load").lease_secs, 5);
    }

    #[test]
    fn bad_files_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.toml");
        for bad in [
            "lisen = \"x\"",
            "job_history_days = 99999",
            "listen = 5",
            "job_history_days = -1",
            "lease_secs = 2",
            "lease_secs = 3601",
        ] {
            std::fs::write(&path, bad).expect("write");
            let mut a = args();
            a.config = Some(path.clone());
            assert!(ServeConfig::load(&a).is_err(), "{bad}");
        }
    }
}
