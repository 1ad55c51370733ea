//! The continuous WAL archiver end to end, on real PostgreSQL 13 and 18 with the real binary:
//! a `kill -9` of `serve` under a steady writer leaves no hole (and `latest` restores every
//! committed row), a slot invalidated by `max_slot_wal_keep_size` becomes a recorded gap, a
//! queued full backup and a window that starts anew, and `admin cluster delete` takes the slot
//! and the archived WAL with the cluster.

mod common;

use common::{bin, wire_body};
use jiff::Timestamp;
use polarbackup_model::log_backup::{
    plan_restore, recovery_window, slot_name, PlanError, RecoveryTarget,
};
use polarbackup_model::{
    BackupSet, BackupSetStatus, DbClusterId, JobMode, Lsn, WalObject, WalObjectKind,
};
use polarbackup_repo::{Repo, RepoConfig};
use polarbackup_store::prelude::*;
use polarbackup_store::{RecoveryInputs, SqliteStore};
use polarbackup_testkit::pg::{chown_to_postgres, restore_target, PgCluster, SUPERUSER};
use polarbackup_testkit::{admin_output, request, sdk, Server, Tenant};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Archiving on; partials every second (so the newest commits reach the archive quickly); the
/// shortest leases, so a killed server's archiver lease lapses within seconds.
const SERVE: &[&str] = &[
    "--log-backup",
    "on",
    "--wal-partial-secs",
    "1",
    "--lease-secs",
    "3",
];
const SEGMENT: u64 = 16 << 20;
/// How long anything a test waits for may take on a busy machine.
const PATIENCE: u64 = 90;

// ---------------------------------------------------------------------------------------------
// the fixture

/// A PostgreSQL cluster archived by a server whose data directory outlives its processes.
struct Fixture {
    pg: PgCluster,
    major: u32,
    /// Holds the server's data directory.
    _dir: TempDir,
    data: PathBuf,
    tenant: Tenant,
    cluster: DbClusterId,
    store: SqliteStore,
}

impl Fixture {
    /// PostgreSQL `major` with table `t` (n = commit number, at = when it was written), a
    /// server archiving it, and the archiver's slot in place. `settings` runs first.
    fn start(major: u32, settings: &str) -> (Fixture, Server) {
        let pg = PgCluster::init_major(major);
        pg.psql(&format!(
            "ALTER SYSTEM SET autovacuum = off;\n{settings}\nSELECT pg_reload_conf();\n\
             CREATE TABLE t (n bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());"
        ));
        let dir = tempfile::Builder::new()
            .prefix("pbarchive")
            .tempdir()
            .expect("a temporary directory");
        let data = dir.path().join("data");
        let server = Server::start(bin(), Some(&data), SERVE);
        let tenant = Tenant::create_at(bin(), &data, "archive", pg.port);
        let cluster = DbClusterId::parse(&tenant.cluster_id).expect("a cluster id");
        let store = SqliteStore::open(&data).expect("open the store");
        let f = Fixture {
            pg,
            major,
            _dir: dir,
            data,
            tenant,
            cluster,
            store,
        };
        // The slot holds the WAL from before the first backup on.
        f.wait_for("the archiver to stream from its slot", || {
            (f.slot().as_deref() == Some("t")).then_some(())
        });
        (f, server)
    }

    /// Starts `serve` again on the same data directory.
    fn restart(&self) -> Server {
        Server::start(bin(), Some(&self.data), SERVE)
    }

    /// Polls `probe` every 250 ms until it answers; fails after [`PATIENCE`] with the state
    /// of the archive (the servers print their logs as the panic drops them).
    fn wait_for<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(PATIENCE);
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL {}: timed out waiting for {what}\n{}",
                self.major,
                self.state()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// What the store and the database hold, for failure messages.
    fn state(&self) -> String {
        let wal = self.store.wal_objects(&self.cluster);
        let objects = wal.map(|w| {
            w.iter()
                .map(|w| {
                    let o = &w.object;
                    format!("{} {:?} {}..{}", o.timeline, o.kind, o.start, o.end)
                })
                .collect::<Vec<_>>()
        });
        format!(
            "WAL objects: {objects:?}\ngaps: {:?}\nsets: {:?}\nslots: {}\npostgres log:\n{}",
            self.store.gaps(&self.cluster),
            self.store.cluster_sets(&self.cluster),
            self.pg
                .psql("SELECT string_agg(slot_name || ' ' || active || ' ' || coalesce(wal_status, '-') || ' ' || coalesce(restart_lsn::text, '-'), '; ') FROM pg_replication_slots;"),
            tail(&self.pg.log(), 30),
        )
    }

    /// `active` of the archiver's slot (`t`/`f`), `None` while there is none.
    fn slot(&self) -> Option<String> {
        let row = self.pg.psql(&format!(
            "SELECT active FROM pg_replication_slots WHERE slot_name = '{}';",
            slot_name(&self.cluster)
        ));
        (!row.is_empty()).then_some(row)
    }

    fn call(&self, server: &Server, action: &str) -> Value {
        let mut req = request(
            "v3",
            server,
            &self.tenant,
            json!({ "DBClusterId": self.tenant.cluster_id }),
        );
        req["action"] = json!(action);
        let res = sdk(req);
        assert_eq!(res["ok"], true, "{action}: {res:#}");
        wire_body(&res).clone()
    }

    /// A full backup through CreateBackup; returns its set once it finished.
    fn backup(&self, server: &Server) -> BackupSet {
        let before = self.sets().len();
        self.call(server, "CreateBackup");
        self.wait_for("the full backup", || self.sets().into_iter().nth(before))
    }

    /// The cluster's sets, oldest first; none may have failed.
    fn sets(&self) -> Vec<BackupSet> {
        let mut sets = self.store.cluster_sets(&self.cluster).expect("sets");
        sets.sort_by_key(|s| s.id);
        assert!(
            sets.iter().all(|s| s.status == BackupSetStatus::Success),
            "a backup failed: {sets:?}"
        );
        sets
    }

    fn inputs(&self) -> RecoveryInputs {
        self.store
            .recovery_inputs(&self.cluster)
            .expect("the recovery inputs")
    }

    fn wal(&self) -> Vec<WalObject> {
        self.store.wal_objects(&self.cluster).expect("WAL objects")
    }

    /// The end of the newest archived WAL.
    fn archived(&self) -> Option<Lsn> {
        self.wal()
            .iter()
            .filter(|w| w.object.kind != WalObjectKind::History)
            .map(|w| w.object.end)
            .max()
    }

    /// Waits until the archive holds everything the database has flushed so far.
    fn wait_archived_now(&self) -> Lsn {
        let flushed: Lsn = self
            .pg
            .psql("SELECT pg_current_wal_flush_lsn();")
            .parse()
            .expect("an LSN");
        self.wait_for(&format!("the archive to reach {flushed}"), || {
            self.archived().filter(|end| *end >= flushed)
        })
    }

    /// DescribeLocalAvailableRecoveryTime: (RecoveryBeginTime, RecoveryEndTime).
    fn api_window(&self, server: &Server) -> (String, String) {
        let body = self.call(server, "DescribeLocalAvailableRecoveryTime");
        let field = |k: &str| {
            body[k]
                .as_str()
                .unwrap_or_else(|| panic!("{k}: {body}"))
                .to_owned()
        };
        (field("RecoveryBeginTime"), field("RecoveryEndTime"))
    }

    /// The database's clock now.
    fn db_now(&self) -> Timestamp {
        parse_time(&self.pg.psql(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"');",
        ))
    }

    fn wal_dir(&self) -> PathBuf {
        self.data
            .join("repo")
            .join("wal")
            .join(self.cluster.as_str())
    }

    /// `polarbackup restore --cluster … --recovery-time TIME --target-dir DIR`.
    fn restore(&self, time: &str, target: &Path) -> Output {
        Command::new(bin())
            .arg("restore")
            .args(["--cluster", self.cluster.as_str(), "--recovery-time", time])
            .arg("--target-dir")
            .arg(target)
            .arg("--data-dir")
            .arg(&self.data)
            .output()
            .expect("run polarbackup restore")
    }
}

fn parse_time(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} is not a timestamp: {e}"))
}

/// The API's format: UTC, to the second.
fn api_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// the writer

/// A thread committing one row per transaction (`synchronous_commit = on`), numbered 1, 2, …
/// in commit order, until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    /// Why it stopped early, if it did.
    failure: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<u64>>,
}

impl Writer {
    fn start(pg: &PgCluster) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let psql = pg.bin("psql");
        let socket = pg.socket_dir().to_path_buf();
        let port = pg.port.to_string();
        let failure = Arc::new(Mutex::new(None));
        let (stop2, committed2, failure2) = (stop.clone(), committed.clone(), failure.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop2.load(Ordering::SeqCst) {
                let out = Command::new(&psql)
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
                    .arg(&socket)
                    .args(["-p", &port, "-U", SUPERUSER, "-d", "postgres", "-c"])
                    .arg(format!("INSERT INTO t (n) VALUES ({})", n + 1))
                    .env("PGOPTIONS", "-c synchronous_commit=on")
                    .output();
                let why = match out {
                    Ok(out) if out.status.success() => None,
                    Ok(out) => Some(String::from_utf8_lossy(&out.stderr).into_owned()),
                    Err(e) => Some(format!("cannot run psql: {e}")),
                };
                if let Some(why) = why {
                    *failure2.lock().unwrap() = Some(format!("commit {}: {why}", n + 1));
                    break;
                }
                n += 1;
                committed2.store(n, Ordering::SeqCst);
            }
            n
        });
        Writer {
            stop,
            committed,
            failure,
            thread: Some(thread),
        }
    }

    /// Waits until `n` more rows than now are committed.
    fn wait_more(&self, f: &Fixture, n: u64) {
        let target = self.committed.load(Ordering::SeqCst) + n;
        f.wait_for(&format!("the writer's commit {target}"), || {
            self.check();
            (self.committed.load(Ordering::SeqCst) >= target).then_some(())
        });
    }

    fn check(&self) {
        if let Some(e) = self.failure.lock().unwrap().as_ref() {
            panic!("the writer failed: {e}");
        }
    }

    /// Stops the writer; returns the number of its last commit.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().expect("the writer runs");
        let n = thread.join().expect("the writer thread");
        self.check();
        n
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// the archive, checked directly

/// Walks the archive's WAL objects on timeline 1 from `from` and returns where they stop
/// joining up; the objects that reach furthest are taken where they overlap (a partial next to
/// its completed segment).
fn contiguous_end(wal: &[WalObject], from: Lsn) -> Lsn {
    let mut pos = from;
    loop {
        let next = wal
            .iter()
            .map(|w| &w.object)
            .filter(|o| o.timeline == 1 && o.kind != WalObjectKind::History)
            .filter(|o| o.start <= pos && o.end > pos)
            .map(|o| o.end)
            .max();
        match next {
            Some(end) => pos = end,
            None => return pos,
        }
    }
}

/// Reads every WAL object back from the repository (size and BLAKE3 checked by the read) and
/// checks that it holds the WAL its record says: raw size end − start, and a first page whose
/// long header names its LSN, timeline 1, this cluster's system identifier and 16 MiB segments.
fn check_objects(f: &Fixture, wal: &[WalObject]) {
    let system_id: u64 =
        f.pg.psql("SELECT system_identifier FROM pg_control_system();")
            .parse()
            .expect("a system identifier");
    let repo = Repo::open_fs(&f.data.join("repo"), RepoConfig::default()).expect("the repository");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for w in wal {
        let o = &w.object;
        let raw = rt
            .block_on(repo.read_wal(&o.key, o.size, &o.digest))
            .unwrap_or_else(|e| panic!("object {} ({}): {e}", w.id, o.key));
        assert_eq!(o.timeline, 1, "{o:?}");
        assert_ne!(o.kind, WalObjectKind::History, "{o:?}");
        assert_eq!(raw.len() as u64, o.end.0 - o.start.0, "{o:?}");
        if o.kind == WalObjectKind::Segment {
            assert_eq!(raw.len() as u64, SEGMENT, "{o:?}");
        }
        assert_eq!(o.start.0 % SEGMENT, 0, "objects start at a segment: {o:?}");
        let u16_at = |i: usize| u16::from_le_bytes(raw[i..i + 2].try_into().unwrap());
        let u32_at = |i: usize| u32::from_le_bytes(raw[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().unwrap());
        assert!(raw.len() >= 40, "{o:?}");
        assert_eq!(u16_at(0) & 0xff00, 0xd100, "xlp_magic of {o:?}");
        assert_eq!(u16_at(2) & 0x0002, 0x0002, "XLP_LONG_HEADER of {o:?}");
        assert_eq!(u32_at(4), 1, "xlp_tli of {o:?}");
        assert_eq!(u64_at(8), o.start.0, "xlp_pageaddr of {o:?}");
        assert_eq!(u64_at(24), system_id, "xlp_sysid of {o:?}");
        assert_eq!(u32_at(32) as u64, SEGMENT, "xlp_seg_size of {o:?}");
    }
}

/// The cluster's WAL files in the repository directory (none if it is gone).
fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("a directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. kill -9 of serve under a steady writer

fn a_killed_server_leaves_no_hole(major: u32) {
    let (f, mut first) = Fixture::start(major, "");
    let base = f.backup(&first);
    let base_wal = base.wal.expect("the backup's WAL range");
    let writer = Writer::start(&f.pg);
    writer.wait_more(&f, 15);
    // A whole segment and partials after the backup are archived: the archiver is streaming.
    f.pg.psql("SELECT pg_switch_wal();");
    f.wait_archived_now();
    writer.wait_more(&f, 5);
    first.kill();

    // While no archiver runs the writer goes on and a segment completes: the slot keeps it.
    writer.wait_more(&f, 15);
    f.pg.psql("SELECT pg_switch_wal();");
    let mut second = f.restart();
    writer.wait_more(&f, 5);
    f.wait_archived_now();
    f.pg.psql("SELECT pg_switch_wal();");
    writer.wait_more(&f, 15);
    let last = writer.stop();
    let end = f.wait_archived_now();
    let last_at = parse_time(&f.pg.psql(&format!(
        "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM t WHERE n = {last};"
    )));
    let (begin, api_end) = f.api_window(&second);
    // Stopped, the server stores what it holds and the archive stands still (a running one
    // replaces partials as the database writes WAL of its own).
    second.stop();

    // No hole, no gap: the objects join up from the backup's WAL end to the newest.
    // One snapshot, as the API and the restore read it.
    let RecoveryInputs { sets, wal, gaps } = f.inputs();
    assert!(gaps.is_empty(), "gaps recorded: {gaps:?}\n{}", f.state());
    let newest = wal
        .iter()
        .map(|w| w.object.end)
        .max()
        .expect("archived WAL");
    assert!(newest >= end);
    assert_eq!(
        contiguous_end(&wal, base_wal.end),
        newest,
        "a hole in the archive\n{}",
        f.state()
    );
    assert!(
        wal.iter().any(|w| w.object.start <= base_wal.end),
        "the archive starts after the backup's WAL\n{}",
        f.state()
    );
    check_objects(&f, &wal);

    // The model agrees: one window from the backup to past the last commit, and `latest`
    // replays up to the newest object from this backup.
    assert_eq!(sets.len(), 1, "{sets:?}");
    let window = recovery_window(&sets, &wal, &gaps).expect("a recovery window");
    // It opens the second after the backup's consistent time (kept to the second).
    assert_eq!(
        Some(window.begin),
        base.consistent_time.map(after_consistency)
    );
    // The store keeps WAL times to the second.
    assert!(
        window.end.as_second() >= last_at.as_second(),
        "the window ends at {}, before the last commit at {last_at}",
        window.end
    );
    let plan = plan_restore(&sets, &wal, &gaps, RecoveryTarget::Latest).expect("a plan");
    assert_eq!(plan.base.id, base.id);
    assert_eq!(plan.reaches, window.end);
    assert_eq!(plan.wal.last().map(|w| w.object.end), Some(newest));

    // And so did the API, to the last commit at least.
    assert_eq!(begin, api_time(window.begin));
    assert!(
        api_time(last_at) <= api_end && api_end <= api_time(window.end),
        "the API's window ends at {api_end}: not between the last commit at {last_at} and {}",
        window.end
    );

    // `latest` restores every committed row and nothing else (n is the primary key: 1..=last).
    let (scratch, target) = restore_target();
    let out = f.restore("latest", &target);
    assert!(
        out.status.success(),
        "restore latest: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    chown_to_postgres(scratch.path(), true);
    let restored = PgCluster::start_on_major(&target, major);
    f.wait_for("the restored cluster to open read-write", || {
        (restored.psql("SELECT pg_is_in_recovery();") == "f").then_some(())
    });
    assert_eq!(
        restored.psql("SELECT count(*) || '|' || min(n) || '|' || max(n) FROM t;"),
        format!("{last}|1|{last}"),
        "restored log:\n{}",
        restored.log()
    );
}

#[test]
fn pg13_a_killed_server_leaves_no_hole_in_the_archive() {
    a_killed_server_leaves_no_hole(13);
}

#[test]
fn pg18_a_killed_server_leaves_no_hole_in_the_archive() {
    a_killed_server_leaves_no_hole(18);
}

// ---------------------------------------------------------------------------------------------
// 2. a slot invalidated by max_slot_wal_keep_size

fn an_invalidated_slot_is_a_gap_and_a_new_window(major: u32) {
    let (f, mut first) = Fixture::start(major, "");
    let old = f.backup(&first);
    f.pg.psql("SET synchronous_commit = on;\nINSERT INTO t (n) VALUES (1);");
    f.wait_archived_now();
    let before_gap = f.db_now();
    let (begin, _) = f.api_window(&first);
    assert_eq!(
        Some(begin),
        old.consistent_time.map(|t| api_time(after_consistency(t)))
    );
    first.stop();
    let archive_end = f.archived().expect("archived WAL");

    // With nobody streaming, WAL beyond 1 MB past the slot goes at a checkpoint. (Only while
    // the server is down: a limit below one segment invalidates a backup's own slot too.)
    f.wait_for("the walsender to end", || {
        (f.slot().as_deref() == Some("f")).then_some(())
    });
    f.pg.psql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB';\nSELECT pg_reload_conf();");
    let mut n = 1;
    f.wait_for("the slot to be invalidated", || {
        n += 1;
        f.pg.psql(&format!(
            "INSERT INTO t (n) VALUES ({n});\nSELECT pg_switch_wal();\nCHECKPOINT;"
        ));
        let status = f.pg.psql(&format!(
            "SELECT coalesce(wal_status, '-') || ' ' || (restart_lsn IS NULL) FROM pg_replication_slots \
             WHERE slot_name = '{}';",
            slot_name(&f.cluster)
        ));
        (status.starts_with("lost") || status.ends_with("true")).then_some(())
    });
    f.pg.psql("ALTER SYSTEM RESET max_slot_wal_keep_size;\nSELECT pg_reload_conf();");

    let second = f.restart();
    let gap = f.wait_for("a gap", || {
        f.store.gaps(&f.cluster).expect("gaps").into_iter().next()
    });
    assert_eq!(gap.timeline, 1, "{gap:?}");
    assert_eq!(
        gap.from, archive_end,
        "the gap starts where the archive ended: {gap:?}"
    );
    assert!(gap.to > gap.from, "{gap:?}");
    // The queued full backup runs and starts the new window.
    let new = f.wait_for("the full backup queued after the gap", || {
        f.sets().into_iter().nth(1)
    });
    assert_eq!(new.mode, JobMode::Automated, "{new:?}");
    let new_wal = new.wal.expect("the new backup's WAL range");
    assert!(new_wal.start >= gap.to, "{new:?} {gap:?}");
    let new_begin = after_consistency(new.consistent_time.expect("a consistent time"));
    f.wait_for("the window to start at the new backup", || {
        (f.api_window(&second).0 == api_time(new_begin)).then_some(())
    });
    let RecoveryInputs { sets, wal, gaps } = f.inputs();
    assert_eq!(gaps.len(), 1, "one gap: {gaps:?}");
    let window = recovery_window(&sets, &wal, &gaps).expect("a window");
    assert_eq!(window.begin, new_begin);

    // The instant before the gap is out of reach now, and a restore says so.
    assert!(before_gap < new_begin);
    match plan_restore(&sets, &wal, &gaps, RecoveryTarget::Time(before_gap)) {
        Err(PlanError::OutsideWindow { .. }) => {}
        other => panic!("a restore to {before_gap} before the gap: {other:?}"),
    }
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let target = scratch.path().join("never");
    let out = f.restore(&before_gap.to_string(), &target);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "restored to {before_gap}: {err}");
    assert!(err.contains("is outside the recovery window"), "{err}");
    assert!(!target.exists(), "nothing is written");
}

#[test]
fn pg13_an_invalidated_slot_is_a_gap_and_a_new_window() {
    an_invalidated_slot_is_a_gap_and_a_new_window(13);
}

#[test]
fn pg18_an_invalidated_slot_is_a_gap_and_a_new_window() {
    an_invalidated_slot_is_a_gap_and_a_new_window(18);
}

// ---------------------------------------------------------------------------------------------
// 3. admin cluster delete

fn deleting_a_cluster_drops_its_slot_and_wal(major: u32) {
    let (f, server) = Fixture::start(major, "");
    let set = f.backup(&server);
    let writer = Writer::start(&f.pg);
    writer.wait_more(&f, 5);
    f.wait_archived_now();
    let archived = f.wal().len();
    assert!(archived > 0);
    assert!(!files_in(&f.wal_dir()).is_empty());

    // While the server archives the writer's WAL.
    let out = admin_output(
        bin(),
        &f.data,
        &[
            "cluster",
            "delete",
            "--cluster",
            f.cluster.as_str(),
            "--retention",
            "ALL",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cluster delete: {stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    writer.stop();
    let summary: Value = serde_json::from_str(stdout.trim()).expect("a JSON summary");
    assert_eq!(summary["Retention"], "ALL", "{summary}");
    assert_eq!(summary["Status"], "Deleted", "{summary}");
    assert_eq!(
        summary["KeptBackupIds"],
        json!([set.id.to_string()]),
        "{summary}"
    );
    // The command drops the slot, unless the server's archiver, stopping on the deleted
    // cluster, dropped it first; either way it is gone (checked below).
    assert!(
        matches!(
            summary["ReplicationSlot"].as_str(),
            Some("dropped" | "absent")
        ),
        "{summary}"
    );
    let removed = summary["DeletedBackupLogs"]
        .as_u64()
        .unwrap_or_else(|| panic!("DeletedBackupLogs: {summary}"));

    assert_eq!(f.slot(), None, "the slot is still there\n{}", f.state());
    assert_eq!(f.wal(), vec![], "WAL objects still recorded");
    // The running server releases a deleted cluster's log backup too (its archivers' pass),
    // so the command and the server may each remove part of the WAL rows, or the server all
    // of them: together they removed at least every object archived before the deletion.
    let cluster = f.cluster.to_string();
    let by_server = |log: &str| -> u64 {
        log.lines()
            .filter(|l| l.contains("released the deleted cluster's log backup"))
            .filter(|l| l.contains(&cluster))
            .filter_map(|l| {
                l.split("removed=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    let what =
        format!("the server to remove what the command did not ({summary}; {archived} archived)");
    f.wait_for(&what, || {
        (removed + by_server(&server.log()) >= archived as u64).then_some(())
    });
    // The server's archiver notices and stops without making the slot again, and removes
    // whatever it stored after the deletion had removed the rest.
    f.wait_for("the server's archiver to stop", || {
        server
            .log()
            .lines()
            .any(|l| l.contains("archiver stopped") && l.contains(&cluster))
            .then_some(())
    });
    assert_eq!(f.slot(), None, "the slot is back\n{}", f.state());
    assert_eq!(f.wal(), vec![], "WAL objects recorded after the deletion");
    assert_eq!(
        files_in(&f.wal_dir()),
        Vec::<String>::new(),
        "WAL files left in {}",
        f.wal_dir().display()
    );
}

#[test]
fn pg13_deleting_a_cluster_drops_its_slot_and_wal() {
    deleting_a_cluster_drops_its_slot_and_wal(13);
}

#[test]
fn pg18_deleting_a_cluster_drops_its_slot_and_wal() {
    deleting_a_cluster_drops_its_slot_and_wal(18);
}

/// Where a window opens for a backup: the second after its consistent time, which the store
/// keeps to the second (the real one may be up to a second later).
fn after_consistency(consistent: Timestamp) -> Timestamp {
    Timestamp::from_second(consistent.as_second() + 1).unwrap()
}
