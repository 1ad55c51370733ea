//! Real backups end to end: PostgreSQL 15 clusters made by initdb, the real server binary, and the official SDKs — CreateBackup, live progress, DescribeBackups, DeleteBackup, failures, restart recovery and restore.

mod common;

use common::{assert_error, bin, lease_lapses_at, seed_sets, wire_body};
use jiff::Timestamp;
use polarbackup_model::{
    BackupJobId, BackupSetStatus, Clock, DbClusterId, JobMode, JobStatus, SystemClock,
};
use polarbackup_store::prelude::*;
use polarbackup_store::{JobFilter, SqliteStore};
use polarbackup_testkit::pg::{self, PgCluster};
use polarbackup_testkit::{checks, request, sdk, sdk_batch, Server, Tenant, ThrottledProxy};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A time range that holds every backup set these tests make.
const ALL_TIME: (&str, &str) = ("2000-01-01T00:00Z", "2099-01-01T00:00Z");

// ---------------------------------------------------------------------------------------------
// fixtures

/// The PostgreSQL cluster most tests back up: pgbench data, a second database, a table in an
/// extra tablespace, TOASTed values. Shared by the tests of this binary (nobody changes it).
struct Source {
    pg: PgCluster,
    tablespace: PathBuf,
}

/// The server that backs up [`source`]: one for all such tests, so job ids (and with them
/// the engine's replication slot names) never repeat against that PostgreSQL.
fn source_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start(bin(), None, &[]))
}

/// A tenant on [`source_server`] whose cluster is PostgreSQL on `127.0.0.1:port`.
fn source_tenant(port: u16) -> (&'static Server, Tenant) {
    let server = source_server();
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, port, "postgres");
    (server, t)
}

fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let pg = PgCluster::init();
        let tablespace = pg.scratch_dir("ts1");
        pg.psql(&format!(
            "CREATE TABLESPACE ts1 LOCATION '{}';\n\
             CREATE DATABASE app;\n\
             CREATE ROLE norepl LOGIN;",
            tablespace.display()
        ));
        pg.pgbench_init("postgres", 1);
        pg.psql_db(
            "app",
            "CREATE TABLE items AS SELECT g AS id, md5(g::text) AS h, g % 7 AS bucket \
               FROM generate_series(1, 60000) g;\n\
             ALTER TABLE items ADD PRIMARY KEY (id);\n\
             CREATE TABLE in_ts (id int PRIMARY KEY USING INDEX TABLESPACE ts1, note text) TABLESPACE ts1;\n\
             INSERT INTO in_ts SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 30000) g;\n\
             CREATE TABLE docs (id int PRIMARY KEY, body text);\n\
             ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;\n\
             INSERT INTO docs SELECT g, string_agg(md5((g * 1000 + i)::text), '') \
               FROM generate_series(1, 200) g, generate_series(1, 200) i GROUP BY g;\n\
             CREATE SCHEMA audit;\n\
             CREATE TABLE audit.events (at timestamptz, what text);\n\
             INSERT INTO audit.events VALUES ('2024-01-01T00:00:00Z', 'created'), (NULL, 'null time');\n\
             CHECKPOINT;",
        );
        Source { pg, tablespace }
    })
}

/// A fresh server with its own data directory and a tenant whose cluster is PostgreSQL on
/// `127.0.0.1:port`.
fn server_for(port: u16) -> (Server, Tenant) {
    let server = Server::start(bin(), None, &[]);
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, port, "postgres");
    (server, t)
}

/// A driver request through the new SDK (V3 signatures, typed request and client method).
fn call(server: &Server, t: &Tenant, action: &str, params: Value) -> Value {
    let mut req = request("v3", server, t, params);
    req["action"] = json!(action);
    req
}

fn create_backup(server: &Server, t: &Tenant) -> String {
    let res = sdk(call(
        server,
        t,
        "CreateBackup",
        json!({"DBClusterId": t.cluster_id}),
    ));
    job_id_of(&res)
}

/// The BackupJobId of a successful CreateBackup, checking the response's shape.
fn job_id_of(res: &Value) -> String {
    assert_eq!(res["ok"], true, "CreateBackup failed: {res:#}");
    assert_eq!(res["status"], 200, "{res:#}");
    let body = wire_body(res);
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("{res:#}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["BackupJobId", "RequestId"], "{res:#}");
    let id = body["BackupJobId"].as_str().unwrap_or_default().to_string();
    assert!(checks::is_digits(&id), "{res:#}");
    id
}

/// A job's end.
const ENDED: &[&str] = &["Finished", "Failed"];
/// Uploading, or any phase after it.
const UPLOADING_OR_LATER: &[&str] = &["Uploading", "Checking", "Finished", "Failed"];

/// Polls DescribeBackupTasks from a single Python process, every `interval` seconds (0: no
/// pause at all), until the job reaches one of `until` with Process ≥ `min_process`. With
/// no `job`, the same process first creates one with CreateBackup, so not one call is lost
/// to the interpreter's start-up. Returns the job id and the observed (status, Process)
/// changes, in order.
fn poll(
    server: &Server,
    t: &Tenant,
    job: Option<&str>,
    until: &[&str],
    min_process: u8,
    timeout_secs: u64,
    interval: f64,
) -> (String, Vec<(String, u8)>) {
    let mut params = json!({"DBClusterId": t.cluster_id});
    let mut spec = json!({
        "until": until, "min_process": min_process, "timeout": timeout_secs, "interval": interval
    });
    match job {
        Some(job) => {
            params["BackupJobId"] = json!(job);
            spec["job"] = json!(job);
        }
        None => spec["create"] = json!({"DBClusterId": t.cluster_id}),
    }
    let mut req = request("v3", server, t, params);
    req["poll"] = spec;
    let res = sdk(req);
    if job.is_none() {
        job_id_of(&res["created"]);
    }
    assert_eq!(res["ok"], true, "polling failed: {res:#}");
    let job = res["job"].as_str().expect("the job polled").to_string();
    eprintln!(
        "job {job}: {} DescribeBackupTasks calls saw {}",
        res["calls"], res["observations"]
    );
    let seen = observations(&res);
    assert_eq!(
        res["timed_out"], false,
        "job {job} did not reach {until:?} (Process ≥ {min_process}) within {timeout_secs} s; saw {seen:?}\nserver log:\n{}",
        server.log()
    );
    (job, seen)
}

/// Polls an existing job 20 times a second until it reaches `until` with Process ≥ `min_process`.
fn watch(
    server: &Server,
    t: &Tenant,
    job: &str,
    until: &[&str],
    min_process: u8,
    timeout_secs: u64,
) -> Vec<(String, u8)> {
    poll(server, t, Some(job), until, min_process, timeout_secs, 0.05).1
}

/// CreateBackup, then polls the new job (every `interval` seconds) until it reaches `until`
/// with Process ≥ `min_process`.
fn create_and_watch(
    server: &Server,
    t: &Tenant,
    until: &[&str],
    min_process: u8,
    interval: f64,
) -> (String, Vec<(String, u8)>) {
    poll(server, t, None, until, min_process, 120, interval)
}

fn observations(res: &Value) -> Vec<(String, u8)> {
    res["observations"]
        .as_array()
        .unwrap_or_else(|| panic!("no observations: {res:#}"))
        .iter()
        .map(|o| {
            (
                o["status"].as_str().unwrap_or("(absent)").to_string(),
                o["process"]
                    .as_str()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0),
            )
        })
        .collect()
}

/// Waits for every job to end; returns their final statuses.
fn wait_all(server: &Server, t: &Tenant, jobs: &[&str], timeout_secs: u64) -> Vec<String> {
    let reqs = jobs
        .iter()
        .map(|job| {
            let mut req = request(
                "v3",
                server,
                t,
                json!({"DBClusterId": t.cluster_id, "BackupJobId": job}),
            );
            req["poll"] =
                json!({"job": job, "until": ENDED, "timeout": timeout_secs, "interval": 0.1});
            req
        })
        .collect();
    sdk_batch(reqs)
        .iter()
        .zip(jobs)
        .map(|(res, job)| {
            assert_eq!(res["ok"], true, "polling failed: {res:#}");
            assert_eq!(
                res["timed_out"],
                false,
                "job {job} did not end within {timeout_secs} s: {:?}\nserver log:\n{}",
                observations(res),
                server.log()
            );
            observations(res).last().expect("observed").0.clone()
        })
        .collect()
}

/// DescribeBackups over all time plus `extra` parameters, through `client`.
fn describe_backups_with(
    client: &str,
    server: &Server,
    t: &Tenant,
    cluster: &str,
    extra: Value,
) -> Value {
    let mut params =
        json!({"DBClusterId": cluster, "StartTime": ALL_TIME.0, "EndTime": ALL_TIME.1});
    for (k, v) in extra.as_object().expect("an object") {
        if v.is_null() {
            params.as_object_mut().expect("object").remove(k);
        } else {
            params[k] = v.clone();
        }
    }
    let mut req = request(client, server, t, params);
    req["action"] = json!("DescribeBackups");
    req
}

fn describe_backups(server: &Server, t: &Tenant, extra: Value) -> Value {
    sdk(describe_backups_with("v3", server, t, &t.cluster_id, extra))
}

/// A successful DescribeBackups page: checks the envelope and every set's shape, returns
/// (TotalRecordCount, the sets).
fn backup_page(res: &Value) -> (u64, Vec<Value>) {
    assert_eq!(res["ok"], true, "DescribeBackups failed: {res:#}");
    assert_eq!(res["status"], 200, "{res:#}");
    let body = wire_body(res);
    assert!(
        checks::is_request_id(body["RequestId"].as_str().unwrap_or_default()),
        "{res:#}"
    );
    assert!(body.get("Code").is_none(), "{res:#}");
    for k in ["TotalRecordCount", "PageNumber", "PageRecordCount"] {
        assert!(
            body[k].as_str().is_some_and(checks::is_digits),
            "{k} is not a numeric string: {res:#}"
        );
    }
    let sets = body["Items"]["Backup"]
        .as_array()
        .unwrap_or_else(|| panic!("no Items.Backup array: {res:#}"))
        .clone();
    assert_eq!(
        body["PageRecordCount"],
        sets.len().to_string(),
        "PageRecordCount: {res:#}"
    );
    for set in &sets {
        assert_set_shape(set);
    }
    let total = body["TotalRecordCount"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("TotalRecordCount");
    (total, sets)
}

/// The documented fields, every one a string, in its documented domain.
fn assert_set_shape(set: &Value) {
    let obj = set.as_object().unwrap_or_else(|| panic!("set is {set}"));
    let mut keys: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "Comment")
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "BackupEndTime",
            "BackupId",
            "BackupMethod",
            "BackupMode",
            "BackupSetSize",
            "BackupStartTime",
            "BackupStatus",
            "BackupType",
            "BackupsLevel",
            "ConsistentTime",
            "DBClusterId",
            "IsAvail"
        ],
        "{set}"
    );
    for (k, v) in obj {
        assert!(v.is_string(), "{k} is not a string in {set}");
    }
    let s = |k: &str| set[k].as_str().unwrap_or_default();
    assert!(checks::is_digits(s("BackupId")), "{set}");
    assert!(checks::is_digits(s("BackupSetSize")), "{set}");
    assert!(checks::is_utc_seconds(s("BackupStartTime")), "{set}");
    assert!(checks::is_utc_seconds(s("BackupEndTime")), "{set}");
    assert!(s("BackupStartTime") <= s("BackupEndTime"), "{set}");
    assert_eq!(s("BackupMethod"), "Snapshot", "{set}");
    assert_eq!(s("BackupType"), "FullBackup", "{set}");
    assert_eq!(s("BackupsLevel"), "Level-1", "{set}");
    assert!(["Automated", "Manual"].contains(&s("BackupMode")), "{set}");
    match s("BackupStatus") {
        "Success" => {
            assert_eq!(s("IsAvail"), "1", "{set}");
            assert!(checks::is_digits(s("ConsistentTime")), "{set}");
        }
        "Failed" => {
            assert_eq!(s("IsAvail"), "0", "{set}");
            assert_eq!(s("ConsistentTime"), "", "{set}");
        }
        other => panic!("BackupStatus {other:?} in {set}"),
    }
}

fn set_ids(sets: &[Value]) -> Vec<String> {
    sets.iter()
        .map(|s| s["BackupId"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn epoch(utc: &str) -> i64 {
    utc.parse::<Timestamp>()
        .unwrap_or_else(|e| panic!("{utc}: {e}"))
        .as_second()
}

/// `<data-dir>/repo/backups/<id>`: where a backup set's objects live.
fn repo_dir(server: &Server, id: &str) -> PathBuf {
    server.data_dir.join("repo").join("backups").join(id)
}

/// The ids with anything in the repository.
fn repo_ids(data_dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(data_dir.join("repo").join("backups"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}

/// The job as the store holds it, with its failure reason (the API shows no reason).
fn stored_job(data_dir: &Path, cluster: &str, id: &str) -> polarbackup_model::BackupJob {
    let store = SqliteStore::open(data_dir).expect("open the store");
    let cluster = DbClusterId::parse(cluster).expect("cluster id");
    let id = BackupJobId::parse(id).expect("job id");
    let jobs = store
        .list_jobs(
            &cluster,
            &JobFilter {
                job_id: Some(id),
                mode: None,
                ended_since: Timestamp::MIN,
            },
        )
        .expect("list jobs");
    jobs.into_iter().next().expect("the job is stored")
}

/// Polls (bounded) until a running backup has stored at least one object under `dir`.
fn wait_for_stored_data(dir: &Path) {
    fn has_file(dir: &Path) -> bool {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                if p.is_dir() {
                    has_file(&p)
                } else {
                    true
                }
            })
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_file(dir) {
        assert!(
            Instant::now() < deadline,
            "nothing stored under {} while uploading",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls (briefly, bounded) until `dir` is gone: deletions are finished by a worker.
fn wait_gone(dir: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    while dir.exists() {
        assert!(
            Instant::now() < deadline,
            "{} still exists after {within:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_job_failed_cleanly(server: &Server, t: &Tenant, job: &str, reason_has: &[&str]) {
    let stored = stored_job(&server.data_dir, &t.cluster_id, job);
    assert_eq!(stored.status, JobStatus::Failed, "{stored:?}");
    let reason = stored.failure_reason.clone().unwrap_or_default();
    eprintln!("job {job} failed: {reason}");
    assert!(
        reason_has.iter().any(|w| reason.contains(w)),
        "job {job} failed with reason {reason:?}, expected one of {reason_has:?}"
    );
    let (total, sets) = backup_page(&describe_backups(server, t, json!({"BackupId": job})));
    assert_eq!(total, 1, "{sets:?}");
    assert_eq!(sets[0]["BackupStatus"], "Failed", "{sets:?}");
    assert_eq!(sets[0]["IsAvail"], "0", "{sets:?}");
    assert_eq!(sets[0]["BackupSetSize"], "0", "{sets:?}");
    // Crash recovery records the job Failed first and removes its data after (a failed set
    // owns none), so the data may still be going when the job reads Failed.
    wait_gone(&repo_dir(server, job), Duration::from_secs(30));
    // Not restorable, not deletable: it is no backup set a user could use.
    let del = sdk(call(
        server,
        t,
        "DeleteBackup",
        json!({"DBClusterId": t.cluster_id, "BackupId": job}),
    ));
    assert_error(&del, 400, "InvalidBackupSetID.NotFound");
}

// ---------------------------------------------------------------------------------------------
// 1. back up, restore, compare

#[test]
fn a_backup_restores_to_the_same_data_and_pg_verifybackup_accepts_it() {
    let src = source();
    let (server, t) = source_tenant(src.pg.port);
    let before = now_secs();
    let job = create_backup(server, &t);
    let seen = watch(server, &t, &job, ENDED, 0, 120);
    assert_eq!(
        seen.last().map(|o| o.0.as_str()),
        Some("Finished"),
        "{seen:?}\n{}",
        server.log()
    );
    let after = now_secs();

    // DescribeBackups, through the new SDK: the typed model and the wire body.
    let res = describe_backups(server, &t, json!({}));
    let (total, sets) = backup_page(&res);
    assert_eq!(total, 1, "{res:#}");
    let set = &sets[0];
    assert_eq!(set["BackupId"], job.as_str());
    assert_eq!(set["DBClusterId"], t.cluster_id.as_str());
    assert_eq!(set["BackupStatus"], "Success");
    assert_eq!(set["BackupMode"], "Manual");
    assert_eq!(set["IsAvail"], "1");
    let size: u64 = set["BackupSetSize"].as_str().unwrap().parse().unwrap();
    assert!(
        size > 10_000_000,
        "BackupSetSize {size} is too small: {set}"
    );
    let start = epoch(set["BackupStartTime"].as_str().unwrap());
    let end = epoch(set["BackupEndTime"].as_str().unwrap());
    let consistent: i64 = set["ConsistentTime"].as_str().unwrap().parse().unwrap();
    assert!(
        before <= start && start <= consistent && consistent <= end && end <= after,
        "times out of order: created ≥ {before}, start {start}, consistent {consistent}, end {end}, seen by {after}"
    );
    let typed = &res["body"]["Items"]["Backup"][0];
    assert_eq!(typed["BackupId"], job.as_str(), "typed model: {res:#}");
    assert_eq!(typed["BackupSetSize"], set["BackupSetSize"]);
    assert!(repo_dir(server, &job).is_dir());
    let wal = SqliteStore::open(&server.data_dir)
        .expect("open the store")
        .backup_set(BackupJobId::parse(&job).expect("id"))
        .expect("load")
        .expect("listed")
        .wal
        .expect("a finished set records its place in the WAL");
    assert!(wal.start < wal.end, "{wal:?}");

    // Restore into a fresh directory owned by postgres, the tablespace mapped elsewhere.
    let (_scratch, target, ts) = restore_mapped(server, &job, &src.tablespace);
    // The recorded range is the server's own: its backup_label names the same start.
    let label = std::fs::read_to_string(target.join("backup_label")).expect("backup_label");
    assert!(
        label.contains(&format!("START WAL LOCATION: {} ", wal.start))
            && label.contains(&format!("START TIMELINE: {}\n", wal.timeline)),
        "{wal:?} does not match the backup_label:\n{label}"
    );
    let verify = pg::verify_backup(&target);
    assert!(
        verify.status.success(),
        "pg_verifybackup refused the restored directory:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let restored = PgCluster::start_on(&target);
    for db in ["postgres", "app"] {
        let want = src.pg.table_digests(db);
        let got = restored.table_digests(db);
        assert!(want.len() >= 4, "{db}: {want:?}");
        assert_eq!(got, want, "database {db} differs after restore");
    }
    let accounts = restored.table_digests("postgres")["public.pgbench_accounts"].0;
    assert_eq!(accounts, 100_000);
    // The tablespace really is the mapped one.
    let location = restored
        .psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1';");
    assert_eq!(location, ts.display().to_string());
}

/// Restores `job` into a fresh directory owned by postgres with `tablespace` mapped beside it,
/// and checks that a second restore into the now non-empty directory is refused. Returns the
/// scratch directory (keep it alive), the data directory and the tablespace's new place.
fn restore_mapped(
    server: &Server,
    job: &str,
    tablespace: &Path,
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (scratch, target) = pg::restore_target();
    let ts = scratch.path().join("ts1");
    let mapping = format!("{}={}", tablespace.display(), ts.display());
    let out = server.restore(job, &target, &["--tablespace-mapping", &mapping]);
    assert!(
        out.status.success(),
        "restore failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("restore prints JSON");
    assert_eq!(printed["BackupId"], job, "{printed}");
    // A second restore into the now non-empty directory is refused.
    let again = server.restore(job, &target, &["--tablespace-mapping", &mapping]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    pg::chown_to_postgres(scratch.path(), true);
    (scratch, target, ts)
}

fn now_secs() -> i64 {
    SystemClock.now().as_second()
}

// ---------------------------------------------------------------------------------------------
// 2. live progress

/// Bytes per second that make a backup of `pg` upload in about `secs` seconds.
fn rate_for(pg: &PgCluster, secs: u64) -> u64 {
    let bytes: u64 = pg
        .psql("SELECT sum(pg_database_size(datname)) FROM pg_database;")
        .parse()
        .expect("a size");
    (bytes / secs).max(1_000_000)
}

const PHASES: [&str; 6] = [
    "NoStart",
    "Preparing",
    "Waiting",
    "Uploading",
    "Checking",
    "Finished",
];

fn phase_rank(status: &str) -> usize {
    PHASES
        .iter()
        .position(|p| *p == status)
        .unwrap_or_else(|| panic!("unexpected status {status:?}"))
}

/// The phases `job` entered, with the Process it entered each at, from the server's log.
fn phases_entered(log: &str, job: &str) -> Vec<(String, u8)> {
    let field = |line: &str, name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(|v| v.trim_matches('"').to_owned())
    };
    log.lines()
        .filter(|l| l.contains("job entered a phase"))
        .filter(|l| field(l, "job=").as_deref() == Some(job))
        .map(|l| {
            let status = field(l, "status=").unwrap_or_default();
            let process = field(l, "process=").and_then(|p| p.parse().ok());
            (status, process.unwrap_or(u8::MAX))
        })
        .collect()
}

#[test]
fn describe_backup_tasks_shows_every_phase_and_process_never_decreases() {
    let src = source();
    // Through a throttled proxy the upload takes about three seconds on any machine, so
    // the poller (one Python process, no pause between calls) sees it move.
    let proxy = ThrottledProxy::start(src.pg.port, rate_for(&src.pg, 3));
    let (server, t) = source_tenant(proxy.port());
    let (job, seen) = create_and_watch(server, &t, ENDED, 0, 0.0);

    assert_eq!(
        seen.last(),
        Some(&("Finished".to_string(), 100)),
        "{seen:?}"
    );
    for w in seen.windows(2) {
        let ((s0, p0), (s1, p1)) = (&w[0], &w[1]);
        assert!(
            phase_rank(s0) <= phase_rank(s1),
            "phase went back from {s0} to {s1}: {seen:?}"
        );
        assert!(p0 <= p1, "Process went back from {p0} to {p1}: {seen:?}");
    }
    assert!(
        seen.iter()
            .any(|(s, p)| s == "Uploading" && *p > 5 && *p < 90),
        "no intermediate Uploading Process: {seen:?}"
    );
    assert!(
        seen.iter().filter(|(s, _)| s == "Uploading").count() >= 2,
        "Process did not move during Uploading: {seen:?}"
    );
    // Checking (the manifest read back, every object found) can take milliseconds, too little
    // for the poller to be sure to see it; the server logs every phase the job entered.
    let entered = phases_entered(&server.log(), &job);
    assert_eq!(
        entered.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["Preparing", "Waiting", "Uploading", "Checking"],
        "{entered:?}\n{}",
        server.log()
    );
    assert!(
        (90..=99).contains(&entered[3].1),
        "Checking entered with Process {}",
        entered[3].1
    );
    for (s, p) in &seen {
        let range = match s.as_str() {
            "NoStart" => 0..=0,
            "Preparing" => 1..=5,
            "Waiting" => 5..=5,
            "Uploading" => 5..=90,
            "Checking" => 90..=99,
            _ => 100..=100,
        };
        assert!(range.contains(p), "{s} with Process {p}: {seen:?}");
    }

    // The finished job keeps its fields; its set is listed.
    let res = sdk(call(
        server,
        &t,
        "DescribeBackupTasks",
        json!({"DBClusterId": t.cluster_id}),
    ));
    let jobs = common::ok_jobs(&res);
    assert_eq!(jobs.len(), 1, "{res:#}");
    assert_eq!(jobs[0]["BackupJobId"], job.as_str());
    assert_eq!(jobs[0]["BackupProgressStatus"], "Finished");
    assert_eq!(jobs[0]["Process"], "100");
    assert_eq!(jobs[0]["JobMode"], "Manual");
    assert_eq!(jobs[0]["TaskAction"], "NormalBackupTask");
    let (total, sets) = backup_page(&describe_backups(server, &t, json!({})));
    assert_eq!((total, set_ids(&sets)), (1, vec![job]));
}

// ---------------------------------------------------------------------------------------------
// 3. failures end in Failed, with nothing left behind

#[test]
fn a_role_without_replication_and_an_unreachable_cluster_fail_cleanly() {
    let src = source();
    let (server, mut t) = source_tenant(src.pg.port);
    let norepl_cluster = t.add_cluster_at(bin(), &server.data_dir, src.pg.port, "norepl");
    let closed_port = polarbackup_testkit::free_port();
    let unreachable_cluster = t.add_cluster_at(bin(), &server.data_dir, closed_port, "postgres");

    t.cluster_id = norepl_cluster;
    let norepl_job = create_backup(server, &t);
    let mut u = t.clone();
    u.cluster_id = unreachable_cluster;
    let unreachable_job = create_backup(server, &u);

    assert_eq!(
        wait_all(server, &t, &[&norepl_job], 60),
        ["Failed"],
        "a role without REPLICATION"
    );
    assert_eq!(
        wait_all(server, &u, &[&unreachable_job], 60),
        ["Failed"],
        "a closed port"
    );
    assert_job_failed_cleanly(server, &t, &norepl_job, &["REPLICATION"]);
    assert_job_failed_cleanly(server, &u, &unreachable_job, &["connect"]);
    // The failed set cannot be restored either.
    let scratch = tempfile::tempdir().unwrap();
    let out = server.restore(&norepl_job, &scratch.path().join("r"), &[]);
    assert!(!out.status.success());
    assert!(!scratch.path().join("r").exists());
}

#[test]
fn postgres_stopping_mid_upload_fails_the_job_and_removes_its_data() {
    let pg = PgCluster::init();
    let proxy = ThrottledProxy::start(pg.port, rate_for(&pg, 8));
    let (server, t) = server_for(proxy.port());
    // Past the first 8 MiB chunk, so something is stored when the backup is interrupted.
    let (job, seen) = create_and_watch(&server, &t, UPLOADING_OR_LATER, 45, 0.05);
    assert_eq!(seen.last().expect("observed").0, "Uploading", "{seen:?}");
    wait_for_stored_data(&repo_dir(&server, &job));

    pg.stop_immediate();
    let end = wait_all(&server, &t, &[&job], 60);
    assert_eq!(end, ["Failed"]);
    assert_job_failed_cleanly(&server, &t, &job, &["connect", "connection", "database"]);
    assert!(repo_ids(&server.data_dir).is_empty());
    assert!(
        !server
            .data_dir
            .join("tmp")
            .join(format!("wal-{job}"))
            .exists(),
        "scratch WAL left behind"
    );
}

/// Issue 12, gap 1: both walsenders of a running backup stopped (SIGSTOP), as a hung
/// database would be. The job used to sit at Uploading for good, its lease renewed; with
/// `--stall-secs 2` it ends Failed as stalled, and the next backup of the cluster runs.
#[test]
fn stopped_walsenders_fail_the_job_as_stalled_and_the_next_backup_runs() {
    let pg = PgCluster::init();
    let proxy = ThrottledProxy::start(pg.port, rate_for(&pg, 8));
    let server = Server::start(bin(), None, &["--stall-secs", "2", "--log-backup", "off"]);
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, proxy.port(), "postgres");
    let (job, seen) = create_and_watch(&server, &t, UPLOADING_OR_LATER, 10, 0.05);
    assert_eq!(seen.last().expect("observed").0, "Uploading", "{seen:?}");
    let pids = pg.walsender_pids("polarbackup");
    assert_eq!(pids.len(), 2, "the backup's two walsenders: {pids:?}");
    let signal = |sig: &str| {
        for pid in &pids {
            let ok = std::process::Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} {pid}");
        }
    };
    signal("-STOP");
    let stopped = Instant::now();
    let end = wait_all(&server, &t, &[&job], 60);
    let took = stopped.elapsed();
    signal("-CONT");
    assert_eq!(end, ["Failed"]);
    eprintln!("walsenders stopped; DescribeBackupTasks showed Failed after {took:?}");
    assert_job_failed_cleanly(
        &server,
        &t,
        &job,
        &["no data from the database for 2 s; the backup stalled"],
    );
    proxy.set_rate(0);
    let next = create_backup(&server, &t);
    assert_eq!(wait_all(&server, &t, &[&next], 120), ["Finished"]);
}

// ---------------------------------------------------------------------------------------------
// 4. ClientToken, the manual limit, DeleteBackup, unknown clusters

fn utc(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn client_tokens_the_manual_limit_and_delete_backup() {
    let pg = PgCluster::init();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut t = Tenant::create(bin(), &data);
    t.cluster_id = t.add_cluster_at(bin(), &data, pg.port, "postgres");
    let stranger = Tenant::create(bin(), &data);
    // An automated set: not deletable, and not counted against the manual limit.
    let automated = seed_sets(
        &data,
        &t.cluster_id,
        &[(
            JobMode::Automated,
            BackupSetStatus::Success,
            utc("2024-05-01T00:00:00Z"),
        )],
    )
    .remove(0);
    let server = Server::start(bin(), Some(&data), &[]);
    let cluster = t.cluster_id.clone();
    let create = |client: &str, params: Value| {
        let mut req = request(client, &server, &t, params);
        req["action"] = json!("CreateBackup");
        req
    };

    let r = sdk_batch(vec![
        create(
            "v3",
            json!({"DBClusterId": cluster, "ClientToken": "tok-1", "Comment": "first"}),
        ),
        create(
            "v3",
            json!({"DBClusterId": cluster, "ClientToken": "tok-1", "Comment": "first"}),
        ),
        create(
            "old-typed-post",
            json!({"DBClusterId": cluster, "ClientToken": "tok-1", "Comment": "first"}),
        ),
        create(
            "v3",
            json!({"DBClusterId": cluster, "ClientToken": "tok-1", "Comment": "second"}),
        ),
        create(
            "v3",
            json!({"DBClusterId": cluster, "ClientToken": "tok-1"}),
        ),
        create("v3", json!({"DBClusterId": cluster})),
        create("old-typed-post", json!({"DBClusterId": cluster})),
        create("v3", json!({"DBClusterId": cluster})),
        create(
            "v3",
            json!({"DBClusterId": cluster, "ClientToken": "tok-2"}),
        ),
        // The same token still answers with its job, even at the limit.
        create(
            "v3",
            json!({"DBClusterId": cluster, "ClientToken": "tok-1", "Comment": "first"}),
        ),
    ]);
    let a = job_id_of(&r[0]);
    assert_eq!(job_id_of(&r[1]), a, "same token, same job");
    assert_eq!(job_id_of(&r[2]), a, "same token through the old SDK");
    assert_error(&r[3], 400, "IdempotentParameterMismatch");
    assert_error(&r[4], 400, "IdempotentParameterMismatch");
    let b = job_id_of(&r[5]);
    let c = job_id_of(&r[6]);
    let num = |id: &str| id.parse::<u64>().expect("numeric id");
    assert!(num(&a) < num(&b) && num(&b) < num(&c), "{a} {b} {c}");
    assert_error(&r[7], 403, "BackupTimesExceeded");
    assert_error(&r[8], 403, "BackupTimesExceeded");
    assert_eq!(job_id_of(&r[9]), a);

    // Unknown clusters, and another account's, are not found by any of the three actions.
    let unknown = "pc-zzzzzzzzzzzzzzz";
    let mut reqs = Vec::new();
    for c in [unknown, stranger.cluster_id.as_str()] {
        reqs.push(create("v3", json!({"DBClusterId": c})));
        reqs.push(describe_backups_with("v3", &server, &t, c, json!({})));
        reqs.push(call(
            &server,
            &t,
            "DeleteBackup",
            json!({"DBClusterId": c, "BackupId": a}),
        ));
    }
    reqs.push(create("old-typed-post", json!({"DBClusterId": unknown})));
    // Unknown ids, automated sets, and jobs that are no finished set cannot be deleted.
    reqs.push(call(
        &server,
        &t,
        "DeleteBackup",
        json!({"DBClusterId": cluster, "BackupId": "99999999"}),
    ));
    reqs.push(call(
        &server,
        &t,
        "DeleteBackup",
        json!({"DBClusterId": cluster, "BackupId": automated}),
    ));
    reqs.push(call(
        &server,
        &t,
        "DeleteBackup",
        json!({"DBClusterId": cluster, "BackupId": format!("{automated},99999999")}),
    ));
    let r = sdk_batch(reqs);
    for res in &r[..7] {
        assert_error(res, 404, "InvalidDBClusterId.NotFound");
        common::assert_error_envelope(res);
    }
    assert_error(&r[7], 400, "InvalidBackupSetID.NotFound");
    assert_error(&r[8], 403, "OperationDenied.AutomatedBackup");
    assert!(r[9]["status"] == 400 || r[9]["status"] == 403, "{:#}", r[9]);

    assert_eq!(
        wait_all(&server, &t, &[&a, &b, &c], 120),
        ["Finished", "Finished", "Finished"]
    );
    let (total, sets) = backup_page(&describe_backups(&server, &t, json!({})));
    assert_eq!(total, 4);
    let mut ids = set_ids(&sets);
    ids.sort();
    let mut want = vec![a.clone(), b.clone(), c.clone(), automated.clone()];
    want.sort();
    assert_eq!(ids, want);
    let first = sets.iter().find(|s| s["BackupId"] == a.as_str()).unwrap();
    assert_eq!(first["Comment"], "first", "{first}");
    for id in [&a, &b, &c] {
        assert!(repo_dir(&server, id).is_dir(), "no data for {id}");
    }

    // Deleting one frees a slot; the set vanishes at once and its data soon after.
    let r = sdk(call(
        &server,
        &t,
        "DeleteBackup",
        json!({"DBClusterId": cluster, "BackupId": a}),
    ));
    assert_eq!(r["ok"], true, "{r:#}");
    let body = wire_body(&r);
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["RequestId"],
        "{r:#}"
    );
    let (total, sets) = backup_page(&describe_backups(&server, &t, json!({})));
    assert_eq!(total, 3);
    assert!(!set_ids(&sets).contains(&a));
    wait_gone(&repo_dir(&server, &a), Duration::from_secs(15));
    let r = sdk_batch(vec![
        call(
            &server,
            &t,
            "DeleteBackup",
            json!({"DBClusterId": cluster, "BackupId": a}),
        ),
        describe_backups_with("v3", &server, &t, &cluster, json!({"BackupId": a})),
        create(
            "v3",
            json!({"DBClusterId": cluster, "Comment": "after delete"}),
        ),
        create("v3", json!({"DBClusterId": cluster})),
    ]);
    assert_error(&r[0], 400, "InvalidBackupSetID.NotFound");
    assert_eq!(backup_page(&r[1]).0, 0);
    let e = job_id_of(&r[2]);
    assert_error(&r[3], 403, "BackupTimesExceeded");

    // Several ids at once, through the old SDK's request class.
    let mut del = request(
        "old-typed-post",
        &server,
        &t,
        json!({"DBClusterId": cluster, "BackupId": format!("{b},{c}")}),
    );
    del["action"] = json!("DeleteBackup");
    let r = sdk(del);
    assert_eq!(r["ok"], true, "{r:#}");
    let (_, sets) = backup_page(&describe_backups(&server, &t, json!({})));
    assert!(!set_ids(&sets).contains(&b) && !set_ids(&sets).contains(&c));
    wait_gone(&repo_dir(&server, &b), Duration::from_secs(15));
    wait_gone(&repo_dir(&server, &c), Duration::from_secs(15));

    assert_eq!(wait_all(&server, &t, &[&e], 120), ["Finished"]);
    let (total, sets) = backup_page(&describe_backups(&server, &t, json!({})));
    let mut ids = set_ids(&sets);
    ids.sort();
    let mut want = vec![e.clone(), automated];
    want.sort();
    assert_eq!((total, ids), (2, want));
    assert_eq!(repo_ids(&server.data_dir), vec![e]);
}

// ---------------------------------------------------------------------------------------------
// 5. DescribeBackups: paging and filters

#[test]
fn describe_backups_pages_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t = Tenant::create(bin(), &data);
    let other = t.add_cluster(bin(), &data);
    // 40 sets, one every minute (at :30 s) from 2024-03-01T10:00:30Z: every tenth failed,
    // every 13th automated.
    let base = utc("2024-03-01T10:00:30Z");
    let seeds: Vec<_> = (0..40i64)
        .map(|i| {
            let mode = if i % 13 == 5 {
                JobMode::Automated
            } else {
                JobMode::Manual
            };
            let status = if i % 10 == 3 {
                BackupSetStatus::Failed
            } else {
                BackupSetStatus::Success
            };
            (mode, status, base + jiff::SignedDuration::from_mins(i))
        })
        .collect();
    let ids = seed_sets(&data, &t.cluster_id, &seeds);
    let other_ids = seed_sets(&data, &other, &seeds[..2]);
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let server = Server::start(bin(), Some(&data), &[]);

    let q = |extra: Value| describe_backups_with("v3", &server, &t, &t.cluster_id, extra);
    let reqs = vec![
        q(json!({})),                                                                     // 0
        q(json!({"PageSize": "30", "PageNumber": "2"})),                                  // 1
        q(json!({"PageSize": "50"})),                                                     // 2
        q(json!({"PageSize": "100"})),                                                    // 3
        q(json!({"PageSize": "30", "PageNumber": "3"})), // 4: past the end
        q(json!({"PageSize": "100", "PageNumber": "7"})), // 5: far past the end
        q(json!({"BackupStatus": "Failed", "PageSize": "100"})), // 6
        q(json!({"BackupStatus": "Success", "PageSize": "100"})), // 7
        q(json!({"BackupMode": "Automated", "PageSize": "100"})), // 8
        q(json!({"BackupMode": "Manual", "BackupStatus": "Success", "PageSize": "100"})), // 9
        q(json!({"BackupId": ids[17]})),                 // 10
        q(json!({"BackupId": other_ids[0]})),            // 11: another cluster's set
        q(json!({"BackupId": "not-a-number"})),          // 12
        q(json!({"StartTime": "2024-03-01T10:10Z", "EndTime": "2024-03-01T10:20Z"})), // 13
        q(
            json!({"StartTime": "2024-03-01T10:10:00Z", "EndTime": "2024-03-01T10:20:00Z", "BackupStatus": "Failed"}),
        ), // 14
        q(json!({"StartTime": "2025-01-01T00:00Z", "EndTime": "2026-01-01T00:00Z"})), // 15
        // errors
        q(json!({"PageSize": "20"})),                // 16
        q(json!({"PageSize": "abc"})),               // 17
        q(json!({"PageNumber": "0"})),               // 18
        q(json!({"PageNumber": "-1"})),              // 19
        q(json!({"StartTime": null})),               // 20
        q(json!({"EndTime": null})),                 // 21
        q(json!({"StartTime": "2024/03/01 10:00"})), // 22
        q(json!({"EndTime": "tomorrow"})),           // 23
        q(json!({"StartTime": "2024-03-01T10:00Z", "EndTime": "2024-03-01T10:00Z"})), // 24: equal
        q(json!({"StartTime": "2024-03-02T10:00Z", "EndTime": "2024-03-01T10:00Z"})), // 25: before
        q(json!({"BackupStatus": "success"})),       // 26
        q(json!({"BackupMode": "auto"})),            // 27
        describe_backups_with(
            "old-typed-post",
            &server,
            &t,
            &t.cluster_id,
            json!({"PageSize": "30", "PageNumber": "2"}),
        ), // 28
        q(json!({"DBClusterId": null})),             // 29
    ];
    let r = sdk_batch(reqs);
    let page = |i: usize| backup_page(&r[i]);
    let filtered = |f: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..40usize)
            .rev()
            .filter(|&i| f(i))
            .map(|i| ids[i].clone())
            .collect()
    };

    // Paging: newest first, 30 by default, TotalRecordCount over all pages.
    let (total, sets) = page(0);
    assert_eq!(total, 40);
    assert_eq!(set_ids(&sets), newest_first[..30].to_vec());
    assert_eq!(wire_body(&r[0])["PageNumber"], "1");
    let (total, sets) = page(1);
    assert_eq!((total, set_ids(&sets)), (40, newest_first[30..].to_vec()));
    assert_eq!(wire_body(&r[1])["PageNumber"], "2");
    assert_eq!(set_ids(&page(2).1), newest_first);
    assert_eq!(set_ids(&page(3).1), newest_first);
    for i in [4, 5] {
        let (total, sets) = page(i);
        assert_eq!((total, sets.len()), (40, 0), "{:#}", r[i]);
        assert_eq!(
            wire_body(&r[i])["Items"],
            json!({"Backup": []}),
            "{:#}",
            r[i]
        );
        assert_eq!(wire_body(&r[i])["PageRecordCount"], "0");
    }
    assert_eq!(wire_body(&r[5])["PageNumber"], "7");

    // Filters.
    let failed = filtered(&|i| i % 10 == 3);
    assert_eq!(page(6).0, failed.len() as u64);
    assert_eq!(set_ids(&page(6).1), failed);
    assert!(page(6)
        .1
        .iter()
        .all(|s| s["BackupStatus"] == "Failed" && s["IsAvail"] == "0"));
    assert_eq!(set_ids(&page(7).1), filtered(&|i| i % 10 != 3));
    assert_eq!(set_ids(&page(8).1), filtered(&|i| i % 13 == 5));
    assert!(page(8).1.iter().all(|s| s["BackupMode"] == "Automated"));
    assert_eq!(
        set_ids(&page(9).1),
        filtered(&|i| i % 13 != 5 && i % 10 != 3)
    );
    let (total, sets) = page(10);
    assert_eq!((total, set_ids(&sets)), (1, vec![ids[17].clone()]));
    assert_eq!(sets[0]["BackupStartTime"], "2024-03-01T10:17:30Z");
    assert_eq!(sets[0]["BackupEndTime"], "2024-03-01T10:17:50Z");
    assert_eq!(
        sets[0]["ConsistentTime"],
        (base.as_second() + 17 * 60 + 10).to_string()
    );
    assert_eq!(
        sets[0]["BackupSetSize"],
        (1_000_000 + ids[17].parse::<u64>().unwrap()).to_string()
    );
    assert_eq!(page(11).0, 0, "another cluster's set: {:#}", r[11]);
    assert_eq!(page(12).0, 0);
    assert_eq!(set_ids(&page(13).1), filtered(&|i| (10..20).contains(&i)));
    assert_eq!(set_ids(&page(14).1), vec![ids[13].clone()]);
    assert_eq!(page(15).0, 0);

    // Errors, as the SDK parsed them.
    let errors = [
        (16, "InvalidPageSize.Malformed"),
        (17, "InvalidPageSize.Malformed"),
        (18, "InvalidPageNumber.Malformed"),
        (19, "InvalidPageNumber.Malformed"),
        (20, "MissingStartTime"),
        (21, "MissingEndTime"),
        (22, "InvalidStartTime.Malformed"),
        (23, "InvalidEndTime.Malformed"),
        (24, "InvalidEndTime.Malformed"),
        (25, "InvalidEndTime.Malformed"),
        (26, "InvalidBackupStatus.Malformed"),
        (27, "InvalidBackupMode.Malformed"),
        (29, "MissingDBClusterId"),
    ];
    for (i, code) in errors {
        assert_error(&r[i], 400, code);
        common::assert_error_envelope(&r[i]);
    }

    // The old SDK's request class gets the same page.
    let (total, sets) = page(28);
    assert_eq!((total, set_ids(&sets)), (40, newest_first[30..].to_vec()));
}

// ---------------------------------------------------------------------------------------------
// 6. restart recovery

#[test]
fn a_backup_interrupted_by_a_server_crash_fails_after_restart_and_leaves_nothing() {
    let pg = PgCluster::init();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Slow enough that the upload is still running when the server is killed.
    let proxy = ThrottledProxy::start(pg.port, rate_for(&pg, 12));
    // A short lease, so the restarted server may recover the job soon.
    let lease = ["--lease-secs", "4"];
    let mut server = Server::start(bin(), Some(&data), &lease);
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &data, proxy.port(), "postgres");
    // Past the first 8 MiB chunk, so something is stored when the backup is interrupted.
    let (job, seen) = create_and_watch(&server, &t, UPLOADING_OR_LATER, 45, 0.05);
    assert_eq!(seen.last().expect("observed").0, "Uploading", "{seen:?}");
    wait_for_stored_data(&repo_dir(&server, &job));
    // From here on a trickle, so that however busy the machine (the checks below start
    // Python), the backup cannot finish before the kill.
    proxy.set_rate(100_000);

    // A running job is no backup set: it cannot be deleted or listed yet.
    let r = sdk_batch(vec![
        call(
            &server,
            &t,
            "DeleteBackup",
            json!({"DBClusterId": t.cluster_id, "BackupId": job}),
        ),
        describe_backups_with("v3", &server, &t, &t.cluster_id, json!({})),
    ]);
    assert_error(&r[0], 400, "InvalidBackupSetID.NotFound");
    assert_eq!(backup_page(&r[1]).0, 0, "{:#}", r[1]);

    server.kill();
    let killed_at = Instant::now();
    // When the lease runs out, read from the store: the kill comes anywhere in a heartbeat's
    // period, and a late heartbeat (a busy machine) leaves less of the lease after the kill,
    // so no fixed time after the kill is a bound on it.
    let lapses = lease_lapses_at(&SqliteStore::open(&data).expect("open the store"), &job);
    let server = Server::start(bin(), Some(&data), &lease);
    // The lease has to run out before the new server may recover the job.
    let seen = watch(&server, &t, &job, ENDED, 0, 60);
    assert_eq!(seen.last().expect("observed").0, "Failed", "{seen:?}");
    let recovered_after = killed_at.elapsed();
    eprintln!("recovered {recovered_after:.1?} after the kill");
    let stored = stored_job(&data, &t.cluster_id, &job);
    let ended = stored.ended_at.expect("ended").as_second();
    assert!(
        ended >= lapses,
        "recovered at {ended}, before the lease ran out at {lapses} ({recovered_after:?} after the kill)"
    );
    let reason = stored.failure_reason.clone().unwrap_or_default();
    assert!(reason.starts_with("interrupted"), "{stored:?}");
    assert_job_failed_cleanly(&server, &t, &job, &["interrupted"]);
    assert!(repo_ids(&data).is_empty(), "{:?}", repo_ids(&data));

    // The cluster is not left busy: the next backup runs to the end.
    proxy.set_rate(0);
    let next = create_backup(&server, &t);
    assert_eq!(wait_all(&server, &t, &[&next], 120), ["Finished"]);
    assert_eq!(repo_ids(&data), vec![next]);
}

// ---------------------------------------------------------------------------------------------
// a server bug this suite found

/// Two polarbackup servers (two data directories, so both number their first job 10000001)
/// back up one PostgreSQL at the same time. Both backups must succeed, as two concurrent
/// `pg_basebackup` runs do. Today the second fails: the engine names its temporary
/// replication slot `polarbackup_<job id>` (crates/polarbackup-engine/src/backup.rs), which
/// is unique only within one data directory, and PostgreSQL refuses the duplicate with
/// 42710 "replication slot … already exists" (reported as "cannot connect to the database").
#[test]
fn two_servers_back_up_one_postgres_at_the_same_time() {
    let pg = PgCluster::init();
    let proxy = ThrottledProxy::start(pg.port, rate_for(&pg, 8));
    let (first, t1) = server_for(proxy.port());
    let (second, t2) = server_for(proxy.port());
    let (j1, seen) = create_and_watch(&first, &t1, UPLOADING_OR_LATER, 6, 0.05);
    assert_eq!(seen.last().expect("observed").0, "Uploading", "{seen:?}");
    // The first backup holds its slot until its WAL is collected.
    let j2 = create_backup(&second, &t2);
    let ends = [
        wait_all(&first, &t1, &[&j1], 120).remove(0),
        wait_all(&second, &t2, &[&j2], 120).remove(0),
    ];
    let reason = stored_job(&second.data_dir, &t2.cluster_id, &j2).failure_reason;
    assert_eq!(
        ends,
        ["Finished", "Finished"],
        "jobs {j1} and {j2} on two servers; the second failed with {reason:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Other majors than Debian's 15. 13 and 14 take the older BASE_BACKUP syntax, answer with one
// CopyOut per tablespace and have no READ_REPLICATION_SLOT; 16 to 18 check that the newer
// protocol did not move. Their servers come from scripts/install-deps.sh --old-postgres.

#[test]
fn postgresql_13_backs_up_and_restores() {
    back_up_and_restore_major(13);
}

#[test]
fn postgresql_14_backs_up_and_restores() {
    back_up_and_restore_major(14);
}

#[test]
fn postgresql_16_backs_up_and_restores() {
    back_up_and_restore_major(16);
}

#[test]
fn postgresql_17_backs_up_and_restores() {
    back_up_and_restore_major(17);
}

#[test]
fn postgresql_18_backs_up_and_restores() {
    back_up_and_restore_major(18);
}

fn back_up_and_restore_major(major: u32) {
    let src = PgCluster::init_major(major);
    assert_eq!(src.major(), major);
    let tablespace = src.scratch_dir("ts1");
    src.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}';\nCREATE DATABASE app;",
        tablespace.display()
    ));
    src.pgbench_init("postgres", 1);
    src.psql_db(
        "app",
        "CREATE TABLE in_ts (id int PRIMARY KEY USING INDEX TABLESPACE ts1, note text) TABLESPACE ts1;\n\
         INSERT INTO in_ts SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g;\n\
         CREATE TABLE docs (id int PRIMARY KEY, body text);\n\
         INSERT INTO docs SELECT g, string_agg(md5((g * 1000 + i)::text), '') \
           FROM generate_series(1, 100) g, generate_series(1, 200) i GROUP BY g;",
    );
    let (server, t) = server_for(src.port);
    let job = create_backup(&server, &t);
    let seen = watch(&server, &t, &job, ENDED, 0, 120);
    assert_eq!(
        seen.last().map(|o| o.0.as_str()),
        Some("Finished"),
        "PostgreSQL {major}: {seen:?}\n{}",
        server.log()
    );
    let (_, sets) = backup_page(&describe_backups(&server, &t, json!({})));
    assert_eq!(set_ids(&sets), [job.as_str()]);

    let (_scratch, target, ts) = restore_mapped(&server, &job, &tablespace);
    // The installed pg_verifybackup (15) reads manifest version 1, which 17 replaced.
    if major < 17 {
        let verify = pg::verify_backup_files_only(&target);
        assert!(
            verify.status.success(),
            "pg_verifybackup refused the restored PostgreSQL {major} directory:\n{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    // PostgreSQL replays the WAL from pg_wal on start: the test of the WAL part.
    let restored = PgCluster::start_on_major(&target, major);
    for db in ["postgres", "app"] {
        let want = src.table_digests(db);
        assert!(want.len() >= 2, "{db}: {want:?}");
        assert_eq!(restored.table_digests(db), want, "database {db} differs");
    }
    assert_eq!(
        restored.psql("SELECT current_setting('server_version_num')::int / 10000;"),
        major.to_string()
    );
    let location = restored
        .psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1';");
    assert_eq!(location, ts.display().to_string());
}
