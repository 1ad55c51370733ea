//! The polarbackup process under test: `serve` on a free loopback port, and the `admin` commands.

use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long `serve` may take to print its Listening line (debug builds on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd server may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `polarbackup serve`. Dropping it kills the process; [`Server::stop`] ends it
/// gracefully. If the test process dies first (e.g. the server lives in a `static`), a small
/// watchdog shell sends it SIGTERM and removes its temporary directory.
pub struct Server {
    child: Option<Child>,
    watchdog: Option<Child>,
    /// The address from the Listening line.
    pub addr: SocketAddr,
    /// The metrics listener's address (`--metrics-listen`), from the same line.
    pub metrics_addr: Option<SocketAddr>,
    /// `--data-dir` as passed to the server.
    pub data_dir: PathBuf,
    /// The binary that was started (for admin commands).
    pub bin: PathBuf,
    /// The environment given beside the defaults (metadata and repository URLs, secrets);
    /// the admin and restore commands run by this value get it too.
    pub env: Vec<(String, String)>,
    log_path: PathBuf,
    _scratch: TempDir,
}

/// How a [`Server`] starts: [`Server::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    bin: PathBuf,
    data_dir: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ServerBuilder {
    /// `--data-dir`; by default a fresh directory inside the server's temporary directory.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// More `serve` arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// An environment variable for the server and for the admin and restore commands run
    /// through it.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The metadata store's URL, through `POLARBACKUP_METADATA_URL` (where a password may be).
    pub fn metadata_url(self, url: &str) -> Self {
        self.env("POLARBACKUP_METADATA_URL", url)
    }

    /// The repository's URL, through `POLARBACKUP_REPOSITORY_URL`.
    pub fn repository_url(self, url: &str) -> Self {
        self.env("POLARBACKUP_REPOSITORY_URL", url)
    }

    /// S3 credentials, through `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub fn s3_credentials(self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.env("AWS_ACCESS_KEY_ID", access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret_access_key)
    }

    /// Starts `bin serve --listen 127.0.0.1:0 --data-dir DIR ARGS…` with the environment.
    /// Panics, with the server's log, if it does not come up.
    pub fn start(self) -> Server {
        let scratch = tempfile::Builder::new()
            .prefix("polarbackup-test-")
            .tempdir()
            .expect("create a temporary directory");
        let data_dir = match self.data_dir {
            Some(d) => d,
            None => scratch.path().join("data"),
        };
        let bin = self.bin.as_path();
        let log_path = scratch.path().join("server.log");
        let log = std::fs::File::create(&log_path).expect("create the server log");
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_BACKTRACE", "1")
            // Test clusters are not real databases: no automated backups unless a test asks
            // for them with `--scheduler on` (a flag beats the environment).
            .env("POLARBACKUP_SCHEDULER", "off")
            // Nor WAL archiving, unless a test asks with `--log-backup on`.
            .env("POLARBACKUP_LOG_BACKUP", "off")
            // Nor the scrub: seeded sets have no data, so it would mark them corrupt. A test
            // asks for it with `--scrub-days`.
            .env("POLARBACKUP_SCRUB_DAYS", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));

        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Hand over every line; keep draining so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Once nobody listens any more, lines are read and dropped.
                let _ = tx.send(line);
            }
        });

        let (addr, metrics_addr) = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => match parse_listening(&line) {
                Some(addr) => (addr, parse_metrics(&line)),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "serve's first stdout line is {line:?}, not {{\"Listening\":\"ADDR\"}}\nlog:\n{}",
                        read_log(&log_path)
                    );
                }
            },
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "serve did not print its Listening line ({e:?}; exit {status:?})\nlog:\n{}",
                    read_log(&log_path)
                );
            }
        };

        let watchdog = spawn_watchdog(child.id(), scratch.path());
        Server {
            child: Some(child),
            watchdog,
            addr,
            metrics_addr,
            data_dir,
            bin: bin.to_path_buf(),
            env: self.env,
            log_path,
            _scratch: scratch,
        }
    }
}

impl Server {
    /// Starts `bin serve --listen 127.0.0.1:0 --data-dir DIR EXTRA_ARGS…`. Without `data_dir`,
    /// DIR is a fresh directory (not yet created) inside a temporary directory owned by the
    /// returned value. Panics, with the server's log, if it does not come up.
    pub fn start(bin: &Path, data_dir: Option<&Path>, extra_args: &[&str]) -> Server {
        let mut builder = Server::builder(bin).args(extra_args);
        if let Some(dir) = data_dir {
            builder = builder.data_dir(dir);
        }
        builder.start()
    }

    /// A server to configure before [`ServerBuilder::start`].
    pub fn builder(bin: &Path) -> ServerBuilder {
        ServerBuilder {
            bin: bin.to_path_buf(),
            data_dir: None,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Its installation, for admin commands (the same data directory and environment).
    pub fn target(&self) -> AdminTarget {
        AdminTarget {
            bin: self.bin.clone(),
            data_dir: self.data_dir.clone(),
            env: self.env.clone(),
        }
    }

    /// `127.0.0.1:PORT`, as the SDKs' endpoint.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits for the exit; returns its status.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_watchdog();
        let mut child = self.child.take().expect("the server was already stopped");
        if let Some(pid) = Pid::from_raw(child.id() as i32) {
            let _ = kill_process(pid, Signal::TERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait().expect("wait for the server") {
                Some(status) => return status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "serve did not exit within {STOP_TIMEOUT:?} of SIGTERM\nlog:\n{}",
                        self.log()
                    );
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        self.stop_watchdog();
        let mut child = self.child.take().expect("the server was already stopped");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Runs `polarbackup restore --backup-id ID --target-dir DIR --data-dir DATA EXTRA…` on
    /// this server's installation (its environment too) and returns its output, whatever the
    /// exit status.
    pub fn restore(&self, backup_id: &str, target: &Path, extra_args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("restore")
            .arg("--backup-id")
            .arg(backup_id)
            .arg("--target-dir")
            .arg(target)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} restore: {e}", self.bin.display()))
    }

    /// Creates an account, a key and a cluster in this server's installation.
    pub fn tenant(&self) -> Tenant {
        Tenant::create_on(&self.target())
    }

    /// `admin ARGS…` on this server's installation; asserts success, returns its JSON.
    pub fn admin(&self, args: &[&str]) -> Value {
        self.target().run(args)
    }

    fn stop_watchdog(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_watchdog();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: String = {
                let lines: Vec<&str> = log.lines().collect();
                let from = lines.len().saturating_sub(60);
                lines[from..].join("\n")
            };
            eprintln!("---- polarbackup serve log (last 60 lines) ----\n{tail}\n----");
        }
    }
}

fn parse_listening(line: &str) -> Option<SocketAddr> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    v.get("Listening")?.as_str()?.parse().ok()
}

fn parse_metrics(line: &str) -> Option<SocketAddr> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    v.get("Metrics")?.as_str()?.parse().ok()
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}

/// Ends the server if the test process goes away without dropping it (servers kept in
/// `static`s are never dropped), then removes its scratch directory.
fn spawn_watchdog(server_pid: u32, scratch: &Path) -> Option<Child> {
    const SCRIPT: &str = r#"
while kill -0 "$1" 2>/dev/null; do
  kill -0 "$2" 2>/dev/null || exit 0
  sleep 0.5
done
kill -TERM "$2" 2>/dev/null
i=0
while [ $i -lt 20 ] && kill -0 "$2" 2>/dev/null; do sleep 0.25; i=$((i+1)); done
kill -KILL "$2" 2>/dev/null
rm -rf "$3"
"#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("polarbackup-test-watchdog")
        .arg(std::process::id().to_string())
        .arg(server_pid.to_string())
        .arg(scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// One installation for `polarbackup admin`: the binary, the data directory and the
/// environment that names its metadata store and repository (if not the defaults).
#[derive(Debug, Clone)]
pub struct AdminTarget {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    pub env: Vec<(String, String)>,
}

impl AdminTarget {
    /// The embedded installation in `data_dir`.
    pub fn new(bin: &Path, data_dir: &Path) -> AdminTarget {
        AdminTarget {
            bin: bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            env: Vec::new(),
        }
    }

    /// Runs `bin admin ARGS… --data-dir DIR` with the environment and returns its output,
    /// whatever the exit status.
    pub fn output(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} admin: {e}", self.bin.display()))
    }

    /// Like [`AdminTarget::output`], asserting exit 0; returns the JSON object it printed.
    pub fn run(&self, args: &[&str]) -> Value {
        admin_json(args, self.output(args))
    }
}

/// Runs `bin admin ARGS… --data-dir DIR` and returns its output, whatever the exit status.
pub fn admin_output(bin: &Path, data_dir: &Path, args: &[&str]) -> Output {
    AdminTarget::new(bin, data_dir).output(args)
}

/// Runs `bin admin ARGS… --data-dir DIR`, asserts exit 0 and returns the JSON object it printed.
pub fn admin(bin: &Path, data_dir: &Path, args: &[&str]) -> Value {
    AdminTarget::new(bin, data_dir).run(args)
}

fn admin_json(args: &[&str], out: Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "admin {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("admin {args:?} printed no JSON ({e}): {stdout}"));
    assert!(v.is_object(), "admin {args:?} printed {v}, not an object");
    v
}

/// One account with one access key and one PostgreSQL cluster.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub account_id: String,
    pub key_id: String,
    pub secret: String,
    pub cluster_id: String,
}

impl Tenant {
    /// `admin account create`, `admin key create`, `admin cluster create`.
    pub fn create(bin: &Path, data_dir: &Path) -> Tenant {
        Tenant::create_on(&AdminTarget::new(bin, data_dir))
    }

    /// [`Tenant::create`] on any installation.
    pub fn create_on(target: &AdminTarget) -> Tenant {
        Tenant::create_named(target, "test", 5432)
    }

    /// An account named `name`, its key and one cluster for PostgreSQL on `127.0.0.1:port`
    /// as the superuser: a test that runs archivers needs its cluster to be reachable.
    pub fn create_at(bin: &Path, data_dir: &Path, name: &str, port: u16) -> Tenant {
        Tenant::create_named(&AdminTarget::new(bin, data_dir), name, port)
    }

    fn create_named(target: &AdminTarget, name: &str, port: u16) -> Tenant {
        let account = target.run(&["account", "create", "--name", name]);
        let account_id = str_field(&account, "AccountId");
        let key = target.run(&["key", "create", "--account", &account_id]);
        let mut tenant = Tenant {
            account_id,
            key_id: str_field(&key, "AccessKeyId"),
            secret: str_field(&key, "AccessKeySecret"),
            cluster_id: String::new(),
        };
        tenant.cluster_id = tenant.add_cluster_on(target, port, crate::pg::SUPERUSER);
        tenant
    }

    /// Creates one more cluster for this tenant's account and returns its id.
    pub fn add_cluster(&self, bin: &Path, data_dir: &Path) -> String {
        self.add_cluster_at(bin, data_dir, 5432, "postgres")
    }

    /// Creates a cluster for this tenant's account that backs up PostgreSQL on
    /// `127.0.0.1:port` as `user` (no password), and returns its id.
    pub fn add_cluster_at(&self, bin: &Path, data_dir: &Path, port: u16, user: &str) -> String {
        self.add_cluster_on(&AdminTarget::new(bin, data_dir), port, user)
    }

    /// [`Tenant::add_cluster_at`] on any installation.
    pub fn add_cluster_on(&self, target: &AdminTarget, port: u16, user: &str) -> String {
        self.add_cluster_with(target, port, user, &[])
    }

    /// [`Tenant::add_cluster_on`] with more `admin cluster create` arguments (a description).
    pub fn add_cluster_with(
        &self,
        target: &AdminTarget,
        port: u16,
        user: &str,
        extra: &[&str],
    ) -> String {
        let port = port.to_string();
        let mut args = vec![
            "cluster",
            "create",
            "--account",
            &self.account_id,
            "--region",
            "cn-hangzhou",
            "--engine",
            "postgresql",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--user",
            user,
        ];
        args.extend_from_slice(extra);
        str_field(&target.run(&args), "DBClusterId")
    }
}

fn str_field(v: &Value, name: &str) -> String {
    v.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {name} in {v}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line() {
        assert_eq!(
            parse_listening(r#"{"Listening":"127.0.0.1:4567"}"#),
            Some("127.0.0.1:4567".parse().unwrap())
        );
        assert_eq!(parse_listening("Listening on 127.0.0.1:4567"), None);
    }
}
