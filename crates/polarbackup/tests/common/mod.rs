//! Helpers shared by the integration tests: the binary, a per-file shared server, job seeding, result assertions.
#![allow(dead_code)]

use jiff::{SignedDuration, Timestamp};
use polarbackup_model::{
    BackupJob, BackupSet, BackupSetStatus, Clock, DbClusterId, JobMode, JobStatus, SystemClock,
    TaskAction,
};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::{checks, Server, Tenant};
use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;

/// Every client the driver knows that signs with an official SDK.
pub const SDK_CLIENTS: [&str; 7] = [
    "v3",
    "v3-sm3",
    "v1-new",
    "old-typed-post",
    "old-common-get",
    "old-common-post",
    "old-common-post-form",
];

/// The `polarbackup` binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_polarbackup"))
}

/// One server for the whole test binary, started on first use (tests use distinct tenants).
/// It serves the API only (`--workers 0`): jobs seeded into its store stay as seeded.
pub fn shared() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start(bin(), None, API_ONLY))
}

/// Arguments for a server whose seeded jobs must not be picked up by workers.
pub const API_ONLY: &[&str] = &["--workers", "0"];

/// A fresh account + key + cluster on the shared server.
pub fn tenant() -> Tenant {
    shared().tenant()
}

pub fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

pub fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

pub fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// Now, truncated to the second (what StartTime can show).
pub fn now() -> Timestamp {
    Timestamp::from_second(SystemClock.now().as_second()).expect("valid timestamp")
}

/// `YYYY-MM-DDThh:mm:ssZ`.
pub fn api_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A job to put in the store, as a worker would have left it.
#[derive(Debug, Clone, Copy)]
pub struct Seed {
    pub mode: JobMode,
    pub action: TaskAction,
    pub status: JobStatus,
    pub start: Timestamp,
    /// When it finished or failed (terminal statuses only); defaults to `start` + 1 minute.
    pub end: Option<Timestamp>,
}

impl Seed {
    pub fn new(status: JobStatus, start: Timestamp) -> Seed {
        Seed {
            mode: JobMode::Manual,
            action: TaskAction::NormalBackupTask,
            status,
            start,
            end: None,
        }
    }

    pub fn mode(mut self, mode: JobMode) -> Seed {
        self.mode = mode;
        self
    }

    pub fn action(mut self, action: TaskAction) -> Seed {
        self.action = action;
        self
    }

    pub fn ended(mut self, end: Timestamp) -> Seed {
        self.end = Some(end);
        self
    }
}

/// The Process value each seeded status ends with.
pub fn seeded_process(status: JobStatus) -> u8 {
    match status {
        JobStatus::NoStart => 0,
        JobStatus::Preparing => 3,
        JobStatus::Waiting => 5,
        JobStatus::Uploading => 42,
        JobStatus::Checking => 95,
        JobStatus::Finished => 100,
        JobStatus::Failed => 42,
    }
}

/// Inserts jobs for `cluster` through the store (the server keeps running; SQLite is in WAL
/// mode), walking each through the legal transitions to its status. Returns them in order.
pub fn seed(data_dir: &Path, cluster: &str, seeds: &[Seed]) -> Vec<BackupJob> {
    let store = SqliteStore::open(data_dir).expect("open the store");
    let cluster = DbClusterId::parse(cluster).expect("valid cluster id");
    seeds
        .iter()
        .map(|s| {
            let mut job = store
                .insert_job(&cluster, s.mode, s.action, s.start)
                .expect("insert job");
            let end = s.end.unwrap_or(s.start + minutes(1));
            let mut step = |to: JobStatus, process: u8, at: Timestamp| {
                job.advance(to, process, at).expect("legal transition");
                store.update_job(&job, None).expect("update job");
            };
            use JobStatus::*;
            let path: &[(JobStatus, u8)] = match s.status {
                NoStart => &[],
                Preparing => &[(Preparing, 3)],
                Waiting => &[(Preparing, 3), (Waiting, 5)],
                Uploading | Failed => &[(Preparing, 3), (Uploading, 42)],
                Checking => &[(Preparing, 3), (Uploading, 60), (Checking, 95)],
                Finished => &[
                    (Preparing, 3),
                    (Uploading, 60),
                    (Checking, 95),
                    (Finished, 100),
                ],
            };
            for &(to, process) in path {
                let at = if to.is_terminal() { end } else { s.start };
                step(to, process, at);
            }
            if s.status == Failed {
                job.fail("seeded failure", end).expect("fail the job");
                store.update_job(&job, None).expect("update job");
            }
            job
        })
        .collect()
}

/// Seeds on the shared server.
pub fn seed_shared(cluster: &str, seeds: &[Seed]) -> Vec<BackupJob> {
    seed(&shared().data_dir, cluster, seeds)
}

/// The body as the server sent it: the new SDK's untyped map when there is one (the typed
/// model drops unknown fields), else the parsed body.
pub fn wire_body(res: &Value) -> &Value {
    match res.get("raw_body") {
        Some(v) if v.is_object() => v,
        _ => &res["body"],
    }
}

/// Asserts a successful DescribeBackupTasks answer and returns its jobs, checking the
/// envelope on the way: RequestId, no Code, the Items wrapper, every job field a string.
pub fn ok_jobs(res: &Value) -> Vec<Value> {
    assert_eq!(res["ok"], true, "expected success, got {res:#}");
    assert_eq!(res["status"], 200, "{res:#}");
    let body = wire_body(res);
    assert!(body.is_object(), "body is not a JSON object: {res:#}");
    let rid = body["RequestId"].as_str().unwrap_or_default();
    assert!(checks::is_request_id(rid), "bad RequestId {rid:?}: {res:#}");
    assert!(
        body.get("Code").is_none(),
        "a success body has Code: {res:#}"
    );
    if let Some(h) = res["headers"].as_object().filter(|h| !h.is_empty()) {
        assert_eq!(
            h.get("x-acs-request-id").and_then(Value::as_str),
            Some(rid),
            "x-acs-request-id differs from the body's RequestId: {res:#}"
        );
        let ctype = h.get("content-type").and_then(Value::as_str).unwrap_or("");
        assert_eq!(ctype, "application/json;charset=utf-8", "{res:#}");
    }
    let jobs = body["Items"]["BackupJob"]
        .as_array()
        .unwrap_or_else(|| panic!("no Items.BackupJob array: {res:#}"))
        .clone();
    for job in &jobs {
        assert_job_shape(job);
    }
    jobs
}

/// Exactly the six documented fields, all strings, in their documented formats.
pub fn assert_job_shape(job: &Value) {
    let obj = job.as_object().unwrap_or_else(|| panic!("job is {job}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "BackupJobId",
            "BackupProgressStatus",
            "JobMode",
            "Process",
            "StartTime",
            "TaskAction"
        ],
        "{job}"
    );
    for (k, v) in obj {
        assert!(v.is_string(), "{k} is not a string in {job}");
    }
    let s = |k: &str| job[k].as_str().unwrap_or_default().to_string();
    assert!(checks::is_digits(&s("BackupJobId")), "{job}");
    assert!(checks::is_utc_seconds(&s("StartTime")), "{job}");
    let process: u8 = s("Process").parse().unwrap_or(255);
    assert!(process <= 100, "{job}");
    assert!(
        ["Automated", "Manual"].contains(&s("JobMode").as_str()),
        "{job}"
    );
    assert!(
        ["NormalBackupTask", "TempBackupTask"].contains(&s("TaskAction").as_str()),
        "{job}"
    );
    assert!(
        [
            "NoStart",
            "Preparing",
            "Waiting",
            "Uploading",
            "Checking",
            "Finished",
            "Failed"
        ]
        .contains(&s("BackupProgressStatus").as_str()),
        "{job}"
    );
}

/// The job as DescribeBackupTasks must show it.
pub fn expected(job: &BackupJob) -> Value {
    serde_json::json!({
        "BackupJobId": job.id.0.to_string(),
        "BackupProgressStatus": job.status.as_str(),
        "JobMode": job.mode.as_str(),
        "Process": job.process.to_string(),
        "StartTime": api_time(job.start_time),
        "TaskAction": job.action.as_str(),
    })
}

/// The job ids of a job list, in order.
pub fn ids(jobs: &[Value]) -> Vec<String> {
    jobs.iter()
        .map(|j| j["BackupJobId"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub fn job_ids(jobs: &[BackupJob]) -> Vec<String> {
    jobs.iter().map(|j| j.id.0.to_string()).collect()
}

/// Asserts a refusal as the SDK parsed it: HTTP status and error Code.
pub fn assert_error(res: &Value, status: u16, code: &str) {
    assert_eq!(
        res["ok"], false,
        "expected {status} {code}, got success: {res:#}"
    );
    assert_eq!(res["status"], status, "expected {status} {code}: {res:#}");
    assert_eq!(res["code"], code, "expected {status} {code}: {res:#}");
}

/// Asserts the server's JSON error envelope: five string fields, RequestId in the header too.
pub fn assert_error_envelope(res: &Value) {
    let body = wire_body(res);
    for field in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
        assert!(
            body[field].is_string(),
            "error field {field} is not a string: {res:#}"
        );
    }
    let rid = body["RequestId"].as_str().unwrap_or_default();
    assert!(checks::is_request_id(rid), "bad RequestId: {res:#}");
    if let Some(h) = res["headers"].as_object().filter(|h| !h.is_empty()) {
        assert_eq!(
            h.get("x-acs-request-id").and_then(Value::as_str),
            Some(rid),
            "{res:#}"
        );
    }
}

/// Records backup sets directly in the store, as a worker would have left them: for each
/// (mode, status, start) a job that ran 20 s and its set. Returns the ids.
pub fn seed_sets(
    data_dir: &Path,
    cluster: &str,
    seeds: &[(JobMode, BackupSetStatus, Timestamp)],
) -> Vec<String> {
    let store = SqliteStore::open(data_dir).expect("open the store");
    let cluster = DbClusterId::parse(cluster).expect("cluster id");
    seeds
        .iter()
        .map(|&(mode, status, start)| {
            let end = start + SignedDuration::from_secs(20);
            let mut job = store
                .insert_job(&cluster, mode, TaskAction::NormalBackupTask, start)
                .expect("insert a job");
            job.advance(JobStatus::Preparing, 1, start)
                .expect("advance");
            job.advance(JobStatus::Uploading, 50, start)
                .expect("advance");
            match status {
                BackupSetStatus::Success => {
                    job.advance(JobStatus::Checking, 95, end).expect("advance");
                    job.advance(JobStatus::Finished, 100, end).expect("advance");
                }
                BackupSetStatus::Failed => job.fail("seeded failure", end).expect("fail"),
            }
            let ok = status == BackupSetStatus::Success;
            let set = BackupSet {
                id: job.id,
                cluster_id: cluster.clone(),
                mode,
                status,
                start_time: start,
                end_time: end,
                consistent_time: ok.then_some(start + SignedDuration::from_secs(10)),
                size: if ok { 1_000_000 + job.id.0 } else { 0 },
                stored_size: if ok { 1000 } else { 0 },
                comment: None,
                wal: ok.then_some(polarbackup_model::WalRange {
                    timeline: 1,
                    start: polarbackup_model::Lsn(0x0100_0028),
                    end: polarbackup_model::Lsn(0x0100_0100),
                }),
                corrupt: None,
                parent: None,
            };
            store.end_job(&job, Some(&set), None).expect("end the job");
            job.id.to_string()
        })
        .collect()
}

/// Polls `probe` every 250 ms until it answers; on a timeout, fails with `context()` (a server
/// log, say).
pub fn wait_for<T>(
    what: &str,
    secs: u64,
    context: impl Fn() -> String,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// The database's clock, to the microsecond, as `--recovery-time` takes it.
pub fn db_now(pg: &polarbackup_testkit::pg::PgCluster) -> String {
    pg.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"');")
}

/// CreateBackup of the tenant's cluster through the V3 SDK; it must be accepted. The job id.
pub fn create_backup_v3(server: &Server, t: &Tenant) -> String {
    let res = call_v3(
        server,
        t,
        "CreateBackup",
        serde_json::json!({"DBClusterId": t.cluster_id}),
    );
    assert_eq!(res["ok"], true, "CreateBackup: {res:#}");
    wire_body(&res)["BackupJobId"]
        .as_str()
        .expect("BackupJobId")
        .to_owned()
}

/// `action` with `params` through the V3 SDK, as the tenant: the driver's result.
pub fn call_v3(server: &Server, t: &Tenant, action: &str, params: Value) -> Value {
    let mut req = polarbackup_testkit::request("v3", server, t, params);
    req["action"] = serde_json::json!(action);
    polarbackup_testkit::sdk(req)
}

/// Runs `polarbackup restore --backup-id JOB` as on another machine: a fresh, empty data
/// directory under `elsewhere`, the shared locations as flags, the S3 key pair only in the
/// environment (never argv). Panics with the output unless it succeeded.
pub fn restore_elsewhere(
    elsewhere: &Path,
    job: &str,
    target: &Path,
    metadata_url: &str,
    repository_url: &str,
    (key_id, secret): (&str, &str),
) {
    let out = std::process::Command::new(bin())
        .args(["restore", "--backup-id", job, "--target-dir"])
        .arg(target)
        .arg("--data-dir")
        .arg(elsewhere.join("data"))
        .args([
            "--metadata-url",
            metadata_url,
            "--repository-url",
            repository_url,
        ])
        .env_remove("POLARBACKUP_METADATA_URL")
        .env_remove("POLARBACKUP_REPOSITORY_URL")
        .env(
            "POLARBACKUP_MASTER_KEY",
            polarbackup_testkit::SHARED_MASTER_KEY,
        )
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run restore");
    assert!(
        out.status.success(),
        "restore of {job}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the WAL archiver holds its replication slot `slot` on `pg`.
pub fn wait_for_slot(
    server: &Server,
    pg: &polarbackup_testkit::pg::PgCluster,
    slot: &str,
    secs: u64,
) {
    wait_for(
        "the archiver's slot",
        secs,
        || server.log(),
        || {
            let n = pg.psql(&format!(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}';"
            ));
            (n == "1").then_some(())
        },
    );
}

/// Waits until `cluster` has at least one set and every one succeeded (a failed one fails the
/// test at once, with the server's log); returns them.
pub fn wait_for_sets(
    what: &str,
    secs: u64,
    server: &Server,
    store: &SqliteStore,
    cluster: &DbClusterId,
) -> Vec<BackupSet> {
    wait_for(
        what,
        secs,
        || server.log(),
        || {
            let sets = store.cluster_sets(cluster).unwrap();
            assert!(
                sets.iter().all(|s| s.status == BackupSetStatus::Success),
                "{sets:?}\n{}",
                server.log()
            );
            (!sets.is_empty()).then_some(sets)
        },
    )
}

/// A server archiving a database's WAL (partials every second) after its first full backup:
/// where every point-in-time test starts.
pub struct Archiving {
    pub server: Server,
    pub tenant: Tenant,
    pub cluster: DbClusterId,
    pub store: SqliteStore,
}

/// Starts [`Archiving`] for `pg`: the archiver's slot holds the WAL from before the backup on.
pub fn archiving_after_a_backup(pg: &polarbackup_testkit::pg::PgCluster) -> Archiving {
    let server = Server::start(
        bin(),
        None,
        &["--log-backup", "on", "--wal-partial-secs", "1"],
    );
    let mut tenant = server.tenant();
    tenant.cluster_id = tenant.add_cluster_at(bin(), &server.data_dir, pg.port, "postgres");
    let cluster = DbClusterId::parse(&tenant.cluster_id).unwrap();
    let store = SqliteStore::open(&server.data_dir).unwrap();
    let slot = polarbackup_model::log_backup::slot_name(&cluster);
    wait_for_slot(&server, pg, &slot, 60);
    create_backup_v3(&server, &tenant);
    wait_for_sets("the full backup", 120, &server, &store, &cluster);
    Archiving {
        server,
        tenant,
        cluster,
        store,
    }
}

/// `polarbackup restore` of set `id` into a fresh directory owned by `postgres`, checked by
/// `pg_verifybackup`, started: the restored server's table digests of `db`.
pub fn restored_digests(
    server: &Server,
    id: &str,
    db: &str,
) -> std::collections::BTreeMap<String, (u64, String)> {
    use polarbackup_testkit::pg::{self, PgCluster};
    let (scratch, target) = pg::restore_target();
    let out = server.restore(id, &target, &[]);
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pg::chown_to_postgres(scratch.path(), true);
    let verify = pg::verify_backup(&target);
    assert!(
        verify.status.success(),
        "pg_verifybackup: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    PgCluster::start_on(&target).table_digests(db)
}

/// The first second at which job `id`'s lease has lapsed, as crash recovery decides it
/// (`abandoned_jobs`), once nobody renews it any more (its server was killed): a recovered job
/// must end no earlier. Read right after the kill, while the job is still running.
pub fn lease_lapses_at(store: &dyn Store, id: &str) -> i64 {
    let id = polarbackup_model::BackupJobId::parse(id).expect("job id");
    let from = SystemClock.now().as_second();
    (from..from + 3600)
        .find(|s| {
            let at = Timestamp::from_second(*s).expect("a time");
            let abandoned = store.abandoned_jobs(at).expect("abandoned jobs");
            abandoned.iter().any(|j| j.id == id)
        })
        .expect("the lease lapses within the hour")
}
