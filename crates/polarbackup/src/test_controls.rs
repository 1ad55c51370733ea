//! `serve --test-controls`: the server's movable clock and injected backup faults, and the
//! private channel `admin clock` and `admin fault` reach them by (a Unix socket in the data
//! directory that only such a server creates). A production server has none of this: no
//! socket, a wall clock nothing can move, and an executor without a fault plan.

use crate::cli::LocationArgs;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use jiff::SignedDuration;
use polarbackup_jobs::CancellationToken;
use polarbackup_model::{Clock, DbClusterId, JobStatus, OffsetClock};
use polarbackup_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tracing::{info, warn};

/// The socket's name in the data directory.
pub const SOCKET: &str = "test-controls.sock";
/// The longest request line a server reads.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long the admin command waits for the server's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What `serve --test-controls` shares between the control socket and the service.
pub struct TestControls {
    pub clock: Arc<OffsetClock>,
    pub faults: Arc<Faults>,
}

impl TestControls {
    pub fn new() -> Self {
        Self {
            clock: Arc::new(OffsetClock::new()),
            faults: Arc::new(Faults::default()),
        }
    }
}

/// A phase a backup may be made to fail in (`admin fault inject --phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
pub enum FaultPhase {
    #[value(name = "Preparing")]
    Preparing,
    #[value(name = "Waiting")]
    Waiting,
    #[value(name = "Uploading")]
    Uploading,
    #[value(name = "Checking")]
    Checking,
}

impl FaultPhase {
    pub fn status(self) -> JobStatus {
        match self {
            Self::Preparing => JobStatus::Preparing,
            Self::Waiting => JobStatus::Waiting,
            Self::Uploading => JobStatus::Uploading,
            Self::Checking => JobStatus::Checking,
        }
    }
}

/// One cluster's injected faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ClusterFaults {
    /// The next `times` backups that reach `phase` fail there with `reason`.
    fail: Option<PhaseFault>,
    /// Uploads are held to this many bytes per second (until cleared).
    slow_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PhaseFault {
    phase: JobStatus,
    reason: String,
    times: u32,
}

/// The fault plan the executor consults, per cluster.
#[derive(Debug, Default)]
pub struct Faults(Mutex<HashMap<DbClusterId, ClusterFaults>>);

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DbClusterId, ClusterFaults>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `times` backups of `cluster` that reach `phase` fail there with `reason`
    /// (replacing an earlier phase fault of the cluster).
    pub fn inject(&self, cluster: DbClusterId, phase: JobStatus, reason: String, times: u32) {
        self.lock().entry(cluster).or_default().fail = Some(PhaseFault {
            phase,
            reason,
            times,
        });
    }

    /// Holds `cluster`'s uploads to `bytes_per_sec`.
    pub fn slow(&self, cluster: DbClusterId, bytes_per_sec: u64) {
        self.lock().entry(cluster).or_default().slow_bytes_per_sec = Some(bytes_per_sec);
    }

    /// Removes one cluster's faults, or every cluster's; how many clusters had any.
    pub fn clear(&self, cluster: Option<&DbClusterId>) -> usize {
        let mut all = self.lock();
        match cluster {
            Some(c) => usize::from(all.remove(c).is_some()),
            None => {
                let n = all.len();
                all.clear();
                n
            }
        }
    }

    /// A backup of `cluster` entered `phase`: the reason it must fail with, if a fault waits
    /// there (counting it down).
    pub fn fire(&self, cluster: &DbClusterId, phase: JobStatus) -> Option<String> {
        let mut all = self.lock();
        let faults = all.get_mut(cluster)?;
        let fault = faults.fail.as_mut().filter(|f| f.phase == phase)?;
        let reason = fault.reason.clone();
        fault.times = fault.times.saturating_sub(1);
        if fault.times == 0 {
            faults.fail = None;
        }
        if *faults == ClusterFaults::default() {
            all.remove(cluster);
        }
        Some(reason)
    }

    /// The upload rate `cluster` is held to, if any.
    pub fn slow_rate(&self, cluster: &DbClusterId) -> Option<u64> {
        self.lock().get(cluster)?.slow_bytes_per_sec
    }

    fn shown(&self) -> Value {
        let all = self.lock();
        let mut clusters: Vec<_> = all.iter().collect();
        clusters.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Value::Array(
            clusters
                .into_iter()
                .map(|(id, f)| {
                    json!({
                        "DBClusterId": id.as_str(),
                        "Phase": f.fail.as_ref().map(|p| p.phase.as_str()),
                        "Reason": f.fail.as_ref().map(|p| p.reason.as_str()),
                        "Times": f.fail.as_ref().map(|p| p.times),
                        "SlowMiBps": f.slow_bytes_per_sec.map(|b| b / MIB),
                    })
                })
                .collect(),
        )
    }
}

const MIB: u64 = 1024 * 1024;

/// The reason a fault gives when `--reason` is not.
pub fn default_reason(phase: FaultPhase) -> String {
    format!("injected fault: the backup failed while {phase:?} (serve --test-controls)")
}

/// One request on the socket (a JSON line), as `admin clock` and `admin fault` send it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "Command", rename_all_fields = "PascalCase")]
pub enum Request {
    ClockShow,
    ClockAdvance {
        seconds: i64,
    },
    FaultInject {
        cluster: String,
        phase: FaultPhase,
        reason: Option<String>,
        times: u32,
    },
    FaultSlow {
        cluster: String,
        mibps: u32,
    },
    FaultClear {
        cluster: Option<String>,
    },
}

/// The answer (a JSON line): what the admin command prints, or why the server refused.
#[derive(Debug, Serialize, Deserialize)]
enum Response {
    Ok(Value),
    Error(String),
}

/// `admin clock`.
#[derive(Debug, Subcommand)]
pub enum ClockCommand {
    /// Move the server's clock forward, so schedules, retention and expiry act as that much
    /// later (the API still takes requests signed with the real time); prints {"OffsetSeconds",
    /// "Offset", "Now"}. The clock never moves back, except by restarting the server.
    Advance {
        /// How far: a sum of whole seconds, minutes, hours, days or weeks, e.g. 25h, 7d, 1d12h.
        #[arg(long, value_name = "DURATION", value_parser = crate::test_controls::parse_duration)]
        by: jiff::SignedDuration,
        #[command(flatten)]
        data: LocationArgs,
    },
    /// Print how far ahead of the wall clock the server's clock is: {"OffsetSeconds",
    /// "Offset", "Now"}.
    Show {
        #[command(flatten)]
        data: LocationArgs,
    },
}

/// `admin fault`.
#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Make the cluster's next backups fail in a phase (`--phase`): each ends Failed
    /// (DescribeBackupTasks, DescribeBackups) with the reason as its failure reason (`admin
    /// backup --wait` prints it); or hold its uploads to a rate until cleared
    /// (`--slow-mibps`). Prints the faults in place.
    Inject(FaultInjectArgs),
    /// Remove the injected faults of one cluster, or of every cluster.
    Clear {
        /// Only this cluster's [default: every cluster's].
        #[arg(long, value_name = "pc-…")]
        cluster: Option<String>,
        #[command(flatten)]
        data: LocationArgs,
    },
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("fault").required(true).args(["phase", "slow_mibps"])
))]
pub struct FaultInjectArgs {
    /// The cluster's DBClusterId.
    #[arg(long, value_name = "pc-…")]
    pub cluster: String,
    /// The phase the backups fail in (once they reach it: what they stored is removed, as
    /// for any failed backup).
    #[arg(long, value_enum)]
    pub phase: Option<FaultPhase>,
    /// The failure reason the job shows [default: one naming the phase and the test controls].
    #[arg(long, requires = "phase")]
    pub reason: Option<String>,
    /// How many of the cluster's next backups fail (each that reaches the phase counts)
    /// [default: 1].
    #[arg(long, requires = "phase", value_parser = clap::value_parser!(u32).range(1..))]
    pub times: Option<u32>,
    /// Instead: hold the cluster's backups' uploads to N MiB/s until `admin fault clear`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub slow_mibps: Option<u32>,
    #[command(flatten)]
    pub data: LocationArgs,
}

/// Where the socket of the server on `data_dir` is.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// The listening socket; dropping it (at shutdown) stops answering and removes the file.
pub struct ControlSocket {
    path: PathBuf,
    stop: CancellationToken,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Err(e) = std::fs::remove_file(&self.path) {
            warn!(error = %e, path = %self.path.display(), "cannot remove the test-control socket");
        }
    }
}

/// Binds `<data_dir>/test-controls.sock` (mode 0600) and answers on it until dropped. A
/// socket left by a server that died is replaced; one a live server answers on is refused.
pub fn listen(
    data_dir: &Path,
    controls: &TestControls,
    store: Arc<dyn Store>,
) -> Result<ControlSocket> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        bail!(
            "another server with --test-controls answers on {}: one per data directory",
            path.display()
        );
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {
            warn!(path = %path.display(), "replaced a test-control socket left by a server that stopped")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("binding the test-control socket {}", path.display()))?;
    let socket = ControlSocket {
        path: path.clone(),
        stop: CancellationToken::new(),
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    let service = Arc::new(Service {
        clock: controls.clock.clone(),
        faults: controls.faults.clone(),
        store,
    });
    let stop = socket.stop.clone();
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                () = stop.cancelled() => return,
                conn = listener.accept() => conn,
            };
            match conn {
                Ok((stream, _)) => {
                    tokio::spawn(service.clone().answer(stream));
                }
                Err(e) => {
                    warn!(error = %e, "test-control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    warn!(
        socket = %path.display(),
        "TEST CONTROLS ARE ON: `polarbackup admin clock advance` moves this server's clock \
         forward and `admin fault inject` makes its backups fail; never run a production \
         server with --test-controls"
    );
    Ok(socket)
}

struct Service {
    clock: Arc<OffsetClock>,
    faults: Arc<Faults>,
    store: Arc<dyn Store>,
}

impl Service {
    async fn answer(self: Arc<Self>, stream: tokio::net::UnixStream) {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader =
            tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
        let read = tokio::time::timeout(CLIENT_TIMEOUT, reader.read_line(&mut line)).await;
        let response = match read {
            Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
                Ok(req) => match self.handle(req).await {
                    Ok(v) => Response::Ok(v),
                    Err(e) => Response::Error(format!("{e:#}")),
                },
                Err(e) => Response::Error(format!("unreadable request: {e}")),
            },
            Ok(Err(e)) => Response::Error(format!("reading the request: {e}")),
            Err(_) => return,
        };
        let mut text = serde_json::to_string(&response).unwrap_or_default();
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
    }

    async fn handle(&self, req: Request) -> Result<Value> {
        Ok(match req {
            Request::ClockShow => self.clock_shown(),
            Request::ClockAdvance { seconds: secs } => {
                let by = SignedDuration::from_secs(secs);
                let offset = self.clock.advance(by)?;
                info!(
                    by_secs = secs,
                    offset_secs = offset.as_secs(),
                    now = %self.clock.now(),
                    "test controls: the clock moved forward"
                );
                self.clock_shown()
            }
            Request::FaultInject {
                cluster,
                phase,
                reason,
                times,
            } => {
                if times == 0 {
                    bail!("--times must be at least 1");
                }
                let cluster = self.known_cluster(&cluster).await?;
                let reason = reason.unwrap_or_else(|| default_reason(phase));
                if reason.trim().is_empty() {
                    bail!("--reason must not be empty");
                }
                info!(%cluster, ?phase, times, %reason, "test controls: fault injected");
                self.faults
                    .inject(cluster.clone(), phase.status(), reason, times);
                json!({ "DBClusterId": cluster.as_str(), "Faults": self.faults.shown() })
            }
            Request::FaultSlow { cluster, mibps } => {
                if mibps == 0 {
                    bail!("--slow-mibps must be at least 1");
                }
                let cluster = self.known_cluster(&cluster).await?;
                info!(%cluster, mibps, "test controls: uploads throttled");
                self.faults.slow(cluster.clone(), u64::from(mibps) * MIB);
                json!({ "DBClusterId": cluster.as_str(), "Faults": self.faults.shown() })
            }
            Request::FaultClear { cluster } => {
                let cluster = cluster
                    .map(|c| DbClusterId::parse(&c).map_err(|e| anyhow!("--cluster: {e}")))
                    .transpose()?;
                let cleared = self.faults.clear(cluster.as_ref());
                info!(cluster = ?cluster.as_ref().map(|c| c.as_str()), cleared, "test controls: faults cleared");
                json!({ "ClustersCleared": cleared, "Faults": self.faults.shown() })
            }
        })
    }

    fn clock_shown(&self) -> Value {
        let offset = self.clock.offset();
        json!({
            "OffsetSeconds": offset.as_secs(),
            "Offset": format!("{offset:#}"),
            "Now": self.clock.now().to_string(),
        })
    }

    /// A cluster this installation knows (of any account).
    async fn known_cluster(&self, id: &str) -> Result<DbClusterId> {
        let id = DbClusterId::parse(id).map_err(|e| anyhow!("--cluster: {e}"))?;
        let store = self.store.clone();
        let lookup = id.clone();
        let found = tokio::task::spawn_blocking(move || store.cluster(&lookup))
            .await
            .context("the store lookup ended abnormally")??;
        if found.is_none() {
            bail!("cluster {id} does not exist");
        }
        Ok(id)
    }
}

/// Sends `req` to the server with test controls on `data_dir` and returns its answer.
pub fn call(data_dir: &Path, req: &Request) -> Result<Value> {
    let path = socket_path(data_dir);
    let stream = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        anyhow!(
            "no server with test controls answers for the data directory {} ({e}): the server \
             for this data directory was not started with --test-controls, or is not running",
            data_dir.display()
        )
    })?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut text = serde_json::to_string(req)?;
    text.push('\n');
    (&stream)
        .write_all(text.as_bytes())
        .context("sending the request to the server")?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .context("reading the server's answer")?;
    if line.is_empty() {
        bail!("the server closed the test-control socket without an answer");
    }
    match serde_json::from_str::<Response>(&line).context("the server's answer")? {
        Response::Ok(v) => Ok(v),
        Response::Error(e) => bail!("{e}"),
    }
}

/// `admin clock`: the server's answer, printed by the caller.
pub fn clock_command(cmd: ClockCommand) -> Result<Value> {
    match cmd {
        ClockCommand::Advance { by, data } => call(
            &data.settings()?.data_dir,
            &Request::ClockAdvance {
                seconds: by.as_secs(),
            },
        ),
        ClockCommand::Show { data } => call(&data.settings()?.data_dir, &Request::ClockShow),
    }
}

/// `admin fault`: the server's answer, printed by the caller.
pub fn fault_command(cmd: FaultCommand) -> Result<Value> {
    match cmd {
        FaultCommand::Inject(args) => {
            let data_dir = args.data.settings()?.data_dir;
            let req = match (args.phase, args.slow_mibps) {
                (Some(phase), _) => Request::FaultInject {
                    cluster: args.cluster,
                    phase,
                    reason: args.reason,
                    times: args.times.unwrap_or(1),
                },
                (None, Some(mibps)) => Request::FaultSlow {
                    cluster: args.cluster,
                    mibps,
                },
                (None, None) => bail!("give --phase or --slow-mibps"),
            };
            call(&data_dir, &req)
        }
        FaultCommand::Clear { cluster, data } => {
            call(&data.settings()?.data_dir, &Request::FaultClear { cluster })
        }
    }
}

/// `--by`: a positive whole number of seconds, minutes, hours, days or weeks, or a sum of them
/// (`25h`, `7d`, `1d12h`, `90m`, `30s`, `2w`).
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let bad = || format!("{text:?} is not a duration like 25h, 7d, 1d12h, 90m or 30s");
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total <= 0 {
        return Err(bad());
    }
    Ok(SignedDuration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_sums_of_units_and_positive() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("25h"), Ok(90_000));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("1d12h"), Ok(129_600));
        assert_eq!(secs("90m"), Ok(5_400));
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("2w"), Ok(1_209_600));
        for bad in [
            "",
            "0h",
            "25",
            "h",
            "-1h",
            "1.5h",
            "1y",
            "1h 30m",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn test_controls_are_a_bare_flag_of_serve_and_no_setting() {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let serve = |argv: &[&str]| match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Serve(s)) => Ok(s),
            Ok(_) => panic!("not serve"),
            Err(e) => Err(e.to_string()),
        };
        assert!(!serve(&["polarbackup", "serve"]).unwrap().test_controls);
        assert!(
            serve(&["polarbackup", "serve", "--test-controls"])
                .unwrap()
                .test_controls
        );
        assert!(serve(&["polarbackup", "serve", "--test-controls=true"]).is_err());
        // Neither a config file key nor an environment variable turns them on.
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("polarbackup.toml");
        std::fs::write(&file, "test_controls = true\n").expect("write");
        let args = serve(&[
            "polarbackup",
            "serve",
            "--config",
            &file.display().to_string(),
        ])
        .unwrap();
        let refused = crate::settings::Settings::resolve(&args.settings, &|name| {
            (name == "POLARBACKUP_TEST_CONTROLS").then(|| "true".into())
        })
        .unwrap_err();
        assert!(
            format!("{refused:#}").contains("unknown field"),
            "{refused:#}"
        );
        assert!(!args.test_controls);
    }

    #[test]
    fn a_fault_fires_its_times_in_its_phase_only_then_is_gone() {
        let faults = Faults::default();
        let a = DbClusterId::parse("pc-aaaaaaaaaaaaaaa").unwrap();
        let b = DbClusterId::parse("pc-bbbbbbbbbbbbbbb").unwrap();
        faults.inject(a.clone(), JobStatus::Uploading, "disk on fire".into(), 2);
        assert_eq!(faults.fire(&a, JobStatus::Preparing), None);
        assert_eq!(faults.fire(&b, JobStatus::Uploading), None);
        assert_eq!(
            faults.fire(&a, JobStatus::Uploading).as_deref(),
            Some("disk on fire")
        );
        assert_eq!(
            faults.fire(&a, JobStatus::Uploading).as_deref(),
            Some("disk on fire")
        );
        assert_eq!(faults.fire(&a, JobStatus::Uploading), None);
        assert_eq!(faults.clear(None), 0, "a spent fault leaves nothing behind");

        faults.slow(a.clone(), MIB);
        faults.inject(a.clone(), JobStatus::Checking, "x".into(), 1);
        assert_eq!(faults.fire(&a, JobStatus::Checking).as_deref(), Some("x"));
        assert_eq!(
            faults.slow_rate(&a),
            Some(MIB),
            "the throttle outlives the fault"
        );
        assert_eq!(faults.clear(Some(&b)), 0);
        assert_eq!(faults.clear(Some(&a)), 1);
        assert_eq!(faults.slow_rate(&a), None);
    }
}
