//! Throwaway PostgreSQL servers for black-box tests: `initdb` into a temporary directory (as the
//! `postgres` user when the tests run as root), a free loopback port, trust authentication for
//! everyone including replication, stopped with `-m immediate` on drop. Also starts PostgreSQL
//! on a restored data directory, and runs `pg_verifybackup` and `psql`. Other majors (13, 14,
//! 16–18) run from the server binaries `scripts/install-deps.sh` unpacks (see [`server_bin_dir`]);
//! the client programs always come from the newest installed PostgreSQL.
//!
//! Modelled on the engine crate's fixture (`crates/polarbackup-engine/tests/common/mod.rs`), but
//! with no dependency on any server crate.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use tempfile::TempDir;

/// The superuser `initdb` creates.
pub const SUPERUSER: &str = "postgres";

/// A PostgreSQL server under test.
pub struct PgCluster {
    /// Socket directory and server log (and, for fresh clusters, the data directory).
    root: TempDir,
    data: PathBuf,
    /// The server's programs (initdb, pg_ctl, postgres).
    bin: PathBuf,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    running: AtomicBool,
    watchdog: Option<Child>,
}

impl PgCluster {
    /// `initdb`, then start on a free port with `wal_level = replica`, room for a few
    /// concurrent backups (each takes two WAL senders), `fsync = off` and small buffers.
    pub fn init() -> PgCluster {
        PgCluster::init_with(pg_bin_dir())
    }

    /// [`PgCluster::init`] with the server of another major version (13, 14, …).
    pub fn init_major(major: u32) -> PgCluster {
        PgCluster::init_with(server_bin_dir(major))
    }

    fn init_with(bin: PathBuf) -> PgCluster {
        let root = tempfile::Builder::new()
            .prefix("pbpg")
            .tempdir()
            .expect("create a temporary directory");
        chown_to_postgres(root.path(), false);
        let data = root.path().join("data");
        initdb(&bin, &data);
        append(
            &data.join("postgresql.conf"),
            "listen_addresses = '127.0.0.1'\n\
             wal_level = replica\nmax_wal_senders = 20\nmax_connections = 50\n\
             fsync = off\nsynchronous_commit = off\n\
             shared_buffers = 16MB\nlog_min_messages = warning\n",
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nlocal replication all trust\n\
             host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        let mut c = PgCluster {
            root,
            data,
            bin,
            port: 0,
            running: AtomicBool::new(false),
            watchdog: None,
        };
        c.start();
        c
    }

    /// Starts PostgreSQL on an existing data directory (a restored one), on a free port and a
    /// private socket directory, whatever its `postgresql.conf` says. The directory must
    /// already belong to the `postgres` user (see [`chown_to_postgres`]).
    pub fn start_on(data: &Path) -> PgCluster {
        PgCluster::start_on_with(data, pg_bin_dir())
    }

    /// [`PgCluster::start_on`] with the server of another major version.
    pub fn start_on_major(data: &Path, major: u32) -> PgCluster {
        PgCluster::start_on_with(data, server_bin_dir(major))
    }

    fn start_on_with(data: &Path, bin: PathBuf) -> PgCluster {
        let root = tempfile::Builder::new()
            .prefix("pbpgr")
            .tempdir()
            .expect("create a temporary directory");
        chown_to_postgres(root.path(), false);
        let mut c = PgCluster {
            root,
            data: data.to_path_buf(),
            bin,
            port: 0,
            running: AtomicBool::new(false),
            watchdog: None,
        };
        c.start();
        c
    }

    /// A port from the kernel can be taken again before postgres binds it: a few tries.
    fn start(&mut self) {
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = crate::free_port();
            let out = as_postgres(
                &self.bin.join("pg_ctl"),
                &[
                    "-D",
                    s(&self.data),
                    "-w",
                    "-t",
                    "120",
                    "-l",
                    s(&self.log_path()),
                    "-o",
                    &format!("-p {port} -k {}", self.root.path().display()),
                    "start",
                ],
            );
            if out.status.success() {
                self.port = port;
                self.running.store(true, Ordering::SeqCst);
                if self.watchdog.is_none() {
                    self.watchdog = spawn_watchdog(&self.bin, &self.data, self.root.path());
                }
                return;
            }
            last_err = format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
        panic!(
            "postgres did not start on {}: {last_err}",
            self.data.display()
        );
    }

    /// Restarts the server as an operator would (`pg_ctl restart -m fast`): every session is
    /// ended, and the server is back on the same port when this returns.
    pub fn restart_fast(&self) {
        let out = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                s(&self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                "120",
                "-l",
                s(&self.log_path()),
                "restart",
            ],
        );
        assert_ok("pg_ctl restart", &out);
    }

    /// The process ids of the walsenders serving `application_name`, from pg_stat_replication
    /// (the backends a `kill -STOP` freezes to stall a backup the way a hung database would).
    pub fn walsender_pids(&self, application_name: &str) -> Vec<u32> {
        self.psql(&format!(
            "SELECT pid FROM pg_stat_replication WHERE application_name = '{application_name}';"
        ))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop_immediate(&self) {
        if self.running.swap(false, Ordering::SeqCst) {
            let out = as_postgres(
                &self.bin.join("pg_ctl"),
                &["-D", s(&self.data), "-m", "immediate", "-w", "stop"],
            );
            assert_ok("pg_ctl stop", &out);
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The directory of the Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.root.path()
    }

    /// A scratch directory owned by `postgres`, removed with the cluster (for tablespaces).
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        chown_to_postgres(&dir, false);
        dir
    }

    /// A PostgreSQL client program (`psql`, `pgbench`, `pg_verifybackup`, …), from the newest
    /// installed version: they all talk to older servers.
    pub fn bin(&self, name: &str) -> PathBuf {
        pg_bin_dir().join(name)
    }

    /// The server's major version, as `postgres --version` reports it.
    pub fn major(&self) -> u32 {
        let out = Command::new(self.bin.join("postgres"))
            .arg("--version")
            .output()
            .expect("run postgres --version");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.split('.').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no version in {text:?}"))
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs a script as the superuser in `db` over the Unix socket, statement by statement
    /// (so CREATE TABLESPACE and CREATE DATABASE work), stopping at the first error. Returns
    /// psql's unaligned, tuples-only output.
    pub fn psql_db(&self, db: &str, sql: &str) -> String {
        let mut child = Command::new(self.bin("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.root.path())
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-d", db])
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run psql");
        child
            .stdin
            .take()
            .expect("psql stdin")
            .write_all(sql.as_bytes())
            .expect("write to psql");
        let out = child.wait_with_output().expect("wait for psql");
        assert!(
            out.status.success(),
            "psql on port {} failed: {}\nscript: {sql}",
            self.port,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// [`PgCluster::psql_db`] in the `postgres` database.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_db("postgres", sql)
    }

    /// `pgbench -i -s SCALE` into `db` (about 15 MB per unit of scale).
    pub fn pgbench_init(&self, db: &str, scale: u32) {
        let out = Command::new(self.bin("pgbench"))
            .args(["-i", "-q", "-s", &scale.to_string(), "-h"])
            .arg(self.root.path())
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER, db])
            .output()
            .expect("run pgbench");
        assert_ok("pgbench -i", &out);
    }

    /// `pgbench -n -t N` against `db`: N transactions of updates spread over the accounts
    /// table (after [`PgCluster::pgbench_init`]).
    pub fn pgbench_run(&self, db: &str, transactions: u32) {
        let out = Command::new(self.bin("pgbench"))
            .args(["-n", "-t", &transactions.to_string(), "-h"])
            .arg(self.root.path())
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER, db])
            .output()
            .expect("run pgbench");
        assert_ok("pgbench -t", &out);
    }

    /// Every user table of `db` (as `schema.table`) with its row count and an md5 over all
    /// its rows in a canonical order: two databases with equal maps hold the same data.
    pub fn table_digests(&self, db: &str) -> BTreeMap<String, (u64, String)> {
        let tables = self.psql_db(
            db,
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;",
        );
        let mut out = BTreeMap::new();
        for table in tables.lines().filter(|l| !l.is_empty()) {
            let row = self.psql_db(
                db,
                &format!(
                    "SELECT count(*) || '|' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') \
                     FROM {table} t;"
                ),
            );
            let (count, md5) = row
                .split_once('|')
                .unwrap_or_else(|| panic!("unexpected digest row {row:?}"));
            out.insert(
                table.to_string(),
                (count.parse().expect("a row count"), md5.to_string()),
            );
        }
        out
    }
}

/// One throwaway server per test binary, started on first use and shared by its tests, each on a
/// database of its own ([`PgCluster::create_database`]) so they run apart and in parallel. Kept
/// in a `static`, it is stopped by its watchdog when the test process ends.
pub fn shared() -> &'static PgCluster {
    static SERVER: std::sync::OnceLock<PgCluster> = std::sync::OnceLock::new();
    SERVER.get_or_init(PgCluster::init)
}

impl PgCluster {
    /// Creates an empty database named `<prefix>_<n>`, `n` new in this process, and returns its
    /// name.
    pub fn create_database(&self, prefix: &str) -> String {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let db = format!("{prefix}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql(&format!("CREATE DATABASE {db}"));
        db
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if self.running.swap(false, Ordering::SeqCst) {
            let _ = as_postgres(
                &self.bin.join("pg_ctl"),
                &["-D", s(&self.data), "-m", "immediate", "-w", "stop"],
            );
        }
    }
}

/// Stops PostgreSQL and removes `root` if the test process goes away without dropping the
/// cluster (clusters kept in `static`s are never dropped).
fn spawn_watchdog(bin: &Path, data: &Path, root: &Path) -> Option<Child> {
    const SCRIPT: &str = r#"
while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
if [ "$(id -u)" = 0 ]; then
  runuser -u postgres -- "$2" -D "$3" -m immediate -w stop >/dev/null 2>&1
else
  "$2" -D "$3" -m immediate -w stop >/dev/null 2>&1
fi
rm -rf "$4"
"#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("polarbackup-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(bin.join("pg_ctl"))
        .arg(data)
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// `initdb` of `bin` into `data` as `postgres`: superuser [`SUPERUSER`], trust, UTF8, C locale,
/// no sync. The parent directory must belong to `postgres`.
pub fn initdb(bin: &Path, data: &Path) {
    let out = as_postgres(
        &bin.join("initdb"),
        &[
            "-D",
            s(data),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C",
        ],
    );
    assert_ok("initdb", &out);
}

/// `pg_verifybackup DIR` (as `postgres`): checks every file against the `backup_manifest` and
/// the WAL in `DIR/pg_wal` with `pg_waldump`. Run it before PostgreSQL starts on `DIR`.
pub fn verify_backup(dir: &Path) -> Output {
    as_postgres(&pg_bin_dir().join("pg_verifybackup"), &[s(dir)])
}

/// [`verify_backup`] for a backup of an older major version: `pg_waldump` reads only its own
/// version's WAL, so the WAL is left out (`--no-parse-wal`) and every data file is still
/// checked. PostgreSQL replaying that WAL on start is the test of the WAL.
pub fn verify_backup_files_only(dir: &Path) -> Output {
    as_postgres(
        &pg_bin_dir().join("pg_verifybackup"),
        &["--no-parse-wal", s(dir)],
    )
}

/// A fresh restore target: a temporary directory owned by `postgres` (keep it alive) and its
/// `data` subdirectory, created 0700 as PostgreSQL wants.
pub fn restore_target() -> (TempDir, PathBuf) {
    let scratch = tempfile::Builder::new()
        .prefix("pbrestore")
        .tempdir()
        .expect("create a temporary directory");
    chown_to_postgres(scratch.path(), false);
    let target = scratch.path().join("data");
    private_dir(&target);
    (scratch, target)
}

/// Where `scripts/install-deps.sh` unpacks the server binaries of majors Debian does not ship.
pub fn pg_cache_dir() -> PathBuf {
    std::env::var_os("POLARBACKUP_PG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/polarbackup/pg"))
}

/// The server programs of `major`: Debian's `/usr/lib/postgresql/<major>/bin` when installed,
/// else `<pg_cache_dir>/<major>/bin`.
pub fn server_bin_dir(major: u32) -> PathBuf {
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if debian.join("initdb").exists() {
        return debian;
    }
    let cached = pg_cache_dir().join(major.to_string()).join("bin");
    assert!(
        cached.join("initdb").exists(),
        "PostgreSQL {major} not found in /usr/lib/postgresql or {}; run scripts/install-deps.sh",
        cached.display()
    );
    cached
}

/// `POLARBACKUP_PG_BIN`, else the newest `/usr/lib/postgresql/<major>/bin` with `initdb`, else
/// the directory of `initdb` on PATH.
pub fn pg_bin_dir() -> PathBuf {
    // Looked up once per test process: every psql and pgbench call asks for it.
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(find_pg_bin_dir).clone()
}

fn find_pg_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("POLARBACKUP_PG_BIN") {
        return d.into();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("run sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "PostgreSQL (initdb) not found; run scripts/install-deps.sh"
    );
    PathBuf::from(path)
        .parent()
        .expect("initdb's directory")
        .to_path_buf()
}

/// Whether the tests run as root (then PostgreSQL runs as `postgres`).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs a PostgreSQL program as `postgres` when we are root (PostgreSQL refuses root).
pub fn as_postgres(program: &Path, args: &[&str]) -> Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Gives `path` (and with `recursive`, everything below it) to `postgres`, when we are root.
pub fn chown_to_postgres(path: &Path, recursive: bool) {
    if !is_root() {
        return;
    }
    let mut cmd = Command::new("chown");
    if recursive {
        cmd.arg("-R");
    }
    let out = cmd
        .arg("postgres:postgres")
        .arg(path)
        .output()
        .expect("run chown");
    assert_ok("chown", &out);
}

/// A new, empty directory owned by `postgres` with mode 0700, as a data directory needs.
pub fn private_dir(path: &Path) {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    chown_to_postgres(path, false);
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(text.as_bytes()).expect("append");
}
