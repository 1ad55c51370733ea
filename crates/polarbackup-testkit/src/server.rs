//! The polarbackup process under test: `serve` on a free loopback port, and the `admin` commands.

use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
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
    /// `--data-dir` as passed to the server.
    pub data_dir: PathBuf,
    /// The binary that was started (for admin commands).
    pub bin: PathBuf,
    log_path: PathBuf,
    _scratch: TempDir,
}

impl Server {
    /// Starts `bin serve --listen 127.0.0.1:0 --data-dir DIR EXTRA_ARGS…`. Without `data_dir`,
    /// DIR is a fresh directory (not yet created) inside a temporary directory owned by the
    /// returned value. Panics, with the server's log, if it does not come up.
    pub fn start(bin: &Path, data_dir: Option<&Path>, extra_args: &[&str]) -> Server {
        let scratch = tempfile::Builder::new()
            .prefix("polarbackup-test-")
            .tempdir()
            .expect("create a temporary directory");
        let data_dir = match data_dir {
            Some(d) => d.to_path_buf(),
            None => scratch.path().join("data"),
        };
        let log_path = scratch.path().join("server.log");
        let log = std::fs::File::create(&log_path).expect("create the server log");
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra_args)
            .env("RUST_BACKTRACE", "1")
            // Test clusters are not real databases: no automated backups unless a test asks
            // for them with `--scheduler on` (a flag beats the environment).
            .env("POLARBACKUP_SCHEDULER", "off")
            // Nor WAL archiving, unless a test asks with `--log-backup on`.
            .env("POLARBACKUP_LOG_BACKUP", "off")
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

        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => match parse_listening(&line) {
                Some(addr) => addr,
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
            data_dir,
            bin: bin.to_path_buf(),
            log_path,
            _scratch: scratch,
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
    /// this server's data directory and returns its output, whatever the exit status.
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
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} restore: {e}", self.bin.display()))
    }

    /// Creates an account, a key and a cluster in this server's data directory.
    pub fn tenant(&self) -> Tenant {
        Tenant::create(&self.bin, &self.data_dir)
    }

    /// `admin(self.bin, self.data_dir, args)`.
    pub fn admin(&self, args: &[&str]) -> Value {
        admin(&self.bin, &self.data_dir, args)
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

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Runs `bin admin ARGS… --data-dir DIR` and returns its output, whatever the exit status.
pub fn admin_output(bin: &Path, data_dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} admin: {e}", bin.display()))
}

/// Runs `bin admin ARGS… --data-dir DIR`, asserts exit 0 and returns the JSON object it printed.
pub fn admin(bin: &Path, data_dir: &Path, args: &[&str]) -> Value {
    let out = admin_output(bin, data_dir, args);
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
        let account = admin(bin, data_dir, &["account", "create", "--name", "test"]);
        let account_id = str_field(&account, "AccountId");
        let key = admin(bin, data_dir, &["key", "create", "--account", &account_id]);
        let mut tenant = Tenant {
            account_id,
            key_id: str_field(&key, "AccessKeyId"),
            secret: str_field(&key, "AccessKeySecret"),
            cluster_id: String::new(),
        };
        tenant.cluster_id = tenant.add_cluster(bin, data_dir);
        tenant
    }

    /// Creates one more cluster for this tenant's account and returns its id.
    pub fn add_cluster(&self, bin: &Path, data_dir: &Path) -> String {
        self.add_cluster_at(bin, data_dir, 5432, "postgres")
    }

    /// Creates a cluster for this tenant's account that backs up PostgreSQL on
    /// `127.0.0.1:port` as `user` (no password), and returns its id.
    pub fn add_cluster_at(&self, bin: &Path, data_dir: &Path, port: u16, user: &str) -> String {
        let port = port.to_string();
        let cluster = admin(
            bin,
            data_dir,
            &[
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
            ],
        );
        str_field(&cluster, "DBClusterId")
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

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_port(), 0);
    }
}
