//! Three `serve` processes on one PostgreSQL metadata store and one S3 repository (SeaweedFS):
//! backups asked of any server run exactly once and every server answers alike; a server
//! killed mid-backup has its job failed and its data removed by another once the lease lapses;
//! `restore` run elsewhere brings the data back; a signed request replayed at another server is
//! refused; and an object store that goes away mid-backup fails the job cleanly.

mod common;

use common::{bin, lease_lapses_at, restore_elsewhere, wait_for, wire_body};
use jiff::Timestamp;
use polarbackup_model::{BackupJob, BackupJobId, DbClusterId, JobStatus, TlsMode};
use polarbackup_repo::{Repo, RepoConfig, RepoUrl, S3Credentials};
use polarbackup_store::prelude::*;
use polarbackup_store::{JobFilter, PgOptions, PgStore};
use polarbackup_testkit::pg::{self, PgCluster};
use polarbackup_testkit::s3::SeaweedFs;
use polarbackup_testkit::{request, sdk_batch, Server, Tenant, ThrottledProxy, SHARED_MASTER_KEY};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A job's lease for these servers: short, so a crashed server's job is recovered soon, yet
/// with room for heartbeats starved by six backups on a busy machine.
const LEASE_SECS: &str = "10";
/// Clusters registered on the shared store.
const CLUSTERS: usize = 20;
/// A time range that holds every backup set.
const ALL_TIME: (&str, &str) = ("2000-01-01T00:00Z", "2099-01-01T00:00Z");
/// The SDK clients that ask for backups: V3, and V1 through the new and the old SDK.
const CLIENTS: [&str; 3] = ["v3", "v1-new", "old-typed-post"];

/// The metadata store and repository every server of a test shares, with the link secret.
struct Shared {
    meta: PgCluster,
    metadata_url: String,
    weed: SeaweedFs,
    repository_url: String,
    /// The S3 key pair: access key id, secret access key.
    creds: (String, String),
    link_secret: std::path::PathBuf,
    _dir: TempDir,
}

impl Shared {
    fn new() -> Shared {
        let meta = PgCluster::init();
        meta.psql("CREATE DATABASE polarbackup;");
        let metadata_url = format!(
            "postgres://postgres@127.0.0.1:{}/polarbackup?sslmode=disable",
            meta.port
        );
        let dir = tempfile::tempdir().expect("tmp");
        let weed = SeaweedFs::start();
        let repository_url = weed.url("multi");
        let creds = weed.credentials();
        let link_secret = dir.path().join("link-secret.key");
        write_private(&link_secret, &rand::random::<[u8; 32]>());
        Shared {
            meta,
            metadata_url,
            weed,
            repository_url,
            creds,
            link_secret,
            _dir: dir,
        }
    }

    /// A server with its own data directory on the shared store and repository.
    fn server(&self, args: &[&str]) -> Server {
        Server::builder(bin())
            .metadata_url(&self.metadata_url)
            .repository_url(&self.repository_url)
            .s3_credentials(&self.creds.0, &self.creds.1)
            .env("POLARBACKUP_MASTER_KEY", SHARED_MASTER_KEY)
            .env(
                "POLARBACKUP_LINK_SECRET_FILE",
                self.link_secret.to_str().expect("utf-8 path"),
            )
            .args(&["--log-format", "json"])
            .args(args)
            .start()
    }

    /// The store as any server sees it (the API shows no failure reason).
    fn store(&self) -> PgStore {
        let mut options = PgOptions::new("127.0.0.1", self.meta.port, "postgres", "polarbackup");
        options.tls_mode = TlsMode::Disable;
        options.pool_size = 1;
        PgStore::open(&options).expect("open the metadata store")
    }

    fn stored_job(&self, cluster: &str, job: &str) -> BackupJob {
        let filter = JobFilter {
            job_id: Some(BackupJobId::parse(job).expect("job id")),
            mode: None,
            ended_since: Timestamp::MIN,
        };
        let cluster = DbClusterId::parse(cluster).expect("cluster id");
        let jobs = self
            .store()
            .list_jobs(&cluster, &filter)
            .expect("list jobs");
        jobs.into_iter().next().expect("the job is stored")
    }

    /// The backup ids with anything in the repository (complete or not).
    fn stored_ids(&self) -> Vec<String> {
        let url: RepoUrl = self.repository_url.parse().expect("a repository URL");
        let creds = S3Credentials::new(&self.creds.0, &self.creds.1);
        let repo =
            Repo::open_url(&url, Some(&creds), RepoConfig::default()).expect("open the repo");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut ids = runtime
            .block_on(repo.list_backup_ids())
            .expect("list the repository");
        ids.sort();
        ids
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create a private file");
    f.write_all(bytes).expect("write");
}

/// A driver request for `action` through `client`.
fn ask(client: &str, server: &Server, t: &Tenant, action: &str, params: Value) -> Value {
    let mut req = request(client, server, t, params);
    req["action"] = json!(action);
    req
}

fn tasks(server: &Server, t: &Tenant, cluster: &str) -> Value {
    ask(
        "v3",
        server,
        t,
        "DescribeBackupTasks",
        json!({"DBClusterId": cluster}),
    )
}

fn backups(server: &Server, t: &Tenant, cluster: &str) -> Value {
    ask(
        "v3",
        server,
        t,
        "DescribeBackups",
        json!({"DBClusterId": cluster, "StartTime": ALL_TIME.0, "EndTime": ALL_TIME.1}),
    )
}

/// The answer without its RequestId, which is fresh on every response.
fn answer(res: &Value) -> Value {
    assert_eq!(res["ok"], true, "{res:#}");
    let mut body = wire_body(res).clone();
    body.as_object_mut()
        .unwrap_or_else(|| panic!("{res:#}"))
        .remove("RequestId");
    body
}

fn job_of(res: &Value) -> String {
    assert_eq!(res["ok"], true, "CreateBackup: {res:#}");
    wire_body(res)["BackupJobId"]
        .as_str()
        .unwrap_or_else(|| panic!("no BackupJobId: {res:#}"))
        .to_owned()
}

/// Each job's status as DescribeBackupTasks shows it, asked of random servers.
fn statuses(
    servers: &[&Server],
    t: &Tenant,
    jobs: &[(String, String)],
    rng: &mut StdRng,
) -> Vec<String> {
    let reqs = jobs
        .iter()
        .map(|(cluster, job)| {
            let server = servers[rng.gen_range(0..servers.len())];
            ask(
                "v3",
                server,
                t,
                "DescribeBackupTasks",
                json!({"DBClusterId": cluster, "BackupJobId": job}),
            )
        })
        .collect();
    sdk_batch(reqs)
        .iter()
        .map(|res| {
            wire_body(res)["Items"]["BackupJob"][0]["BackupProgressStatus"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Waits until every job ended; returns their statuses.
fn wait_ended(
    servers: &[&Server],
    t: &Tenant,
    jobs: &[(String, String)],
    secs: u64,
    rng: &mut StdRng,
) -> Vec<String> {
    wait_for(
        "the backups to end",
        secs,
        || logs(servers),
        || {
            let now = statuses(servers, t, jobs, rng);
            now.iter()
                .all(|s| s == "Finished" || s == "Failed")
                .then_some(now)
        },
    )
}

fn logs(servers: &[&Server]) -> String {
    servers
        .iter()
        .map(|s| format!("---- server {} ----\n{}", s.endpoint(), tail(&s.log(), 80)))
        .collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The events of a server's JSON log with this message and `job` field.
fn events(server: &Server, message: &str, job: &str) -> usize {
    server
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["fields"]["message"] == message && e["fields"]["job"] == job)
        .count()
}

/// Which of `servers` started the backup `job`, once one has; panics if more than one did.
fn runner(servers: &[Server], job: &str) -> Option<usize> {
    let started: Vec<usize> = (0..servers.len())
        .filter(|&i| events(&servers[i], "backup started", job) > 0)
        .collect();
    assert!(
        started.len() <= 1,
        "job {job} started on servers {started:?}"
    );
    started.first().copied()
}

#[test]
fn three_servers_on_one_store_and_repository_run_each_backup_once_and_recover_a_crashed_one() {
    let started = Instant::now();
    let seed: u64 = match std::env::var("POLARBACKUP_TEST_SEED") {
        Ok(s) => s.parse().expect("POLARBACKUP_TEST_SEED is a number"),
        Err(_) => rand::random(),
    };
    eprintln!("seed {seed} (POLARBACKUP_TEST_SEED={seed} repeats this run's choices)");
    let mut rng = StdRng::seed_from_u64(seed);
    let shared = Shared::new();

    // Three small sources; the first cluster reaches its source through a proxy that the
    // crash below throttles, so that backup is still running when its server dies.
    let sources: Vec<PgCluster> = (0..3).map(|_| PgCluster::init()).collect();
    for (i, src) in sources.iter().enumerate() {
        src.psql("CREATE DATABASE app;");
        src.psql_db(
            "app",
            &format!(
                "CREATE TABLE items AS SELECT g AS id, md5((g + {i})::text) AS h \
                   FROM generate_series(1, 5000) g;\n\
                 ALTER TABLE items ADD PRIMARY KEY (id);\nCHECKPOINT;"
            ),
        );
    }
    let proxy = ThrottledProxy::start(sources[0].port, 0);

    let lease = ["--lease-secs", LEASE_SECS];
    let mut servers: Vec<Server> = (0..3).map(|_| shared.server(&lease)).collect();
    let mut t = servers[0].tenant();
    let clusters: Vec<String> = (0..CLUSTERS)
        .map(|i| {
            let port = if i == 0 {
                proxy.port()
            } else {
                sources[i % sources.len()].port
            };
            // Registered through any server: they share one store.
            t.add_cluster_on(&servers[i % servers.len()].target(), port, "postgres")
        })
        .collect();
    t.cluster_id = clusters[0].clone();
    eprintln!("set up in {:.1?}", started.elapsed());

    // 1. A backup of every cluster, each asked of a random server through a random client.
    let asked: Vec<(usize, &str)> = (0..CLUSTERS)
        .map(|_| {
            (
                rng.gen_range(0..servers.len()),
                CLIENTS[rng.gen_range(0..CLIENTS.len())],
            )
        })
        .collect();
    let created = sdk_batch(
        clusters
            .iter()
            .zip(&asked)
            .map(|(c, &(s, client))| {
                ask(
                    client,
                    &servers[s],
                    &t,
                    "CreateBackup",
                    json!({"DBClusterId": c}),
                )
            })
            .collect(),
    );
    let jobs: Vec<(String, String)> = clusters
        .iter()
        .zip(&created)
        .map(|(c, res)| (c.clone(), job_of(res)))
        .collect();
    let mut ids: Vec<&str> = jobs.iter().map(|(_, j)| j.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), CLUSTERS, "job ids repeat: {jobs:?}");

    let all: Vec<&Server> = servers.iter().collect();
    let ended = wait_ended(&all, &t, &jobs, 300, &mut rng);
    eprintln!(
        "{CLUSTERS} backups ended {:.1?} after the start",
        started.elapsed()
    );
    for ((cluster, job), status) in jobs.iter().zip(&ended) {
        let reason = shared.stored_job(cluster, job).failure_reason;
        assert_eq!(status, "Finished", "job {job}: {reason:?}\n{}", logs(&all));
    }

    // Each ran once, on one server; every server answers alike: one job and one set each.
    for (_, job) in &jobs {
        let runs: usize = servers
            .iter()
            .map(|s| events(s, "backup started", job))
            .sum();
        assert_eq!(runs, 1, "job {job} started {runs} times\n{}", logs(&all));
    }
    let mut reqs = Vec::new();
    for (cluster, _) in &jobs {
        for s in &servers {
            reqs.push(tasks(s, &t, cluster));
            reqs.push(backups(s, &t, cluster));
        }
    }
    let answers: Vec<Value> = sdk_batch(reqs).iter().map(answer).collect();
    let per_cluster = 2 * servers.len();
    for ((cluster, job), got) in jobs.iter().zip(answers.chunks(per_cluster)) {
        for (i, pair) in got.chunks(2).enumerate() {
            assert_eq!(
                pair,
                &got[..2],
                "server {i} answers otherwise for {cluster}"
            );
        }
        let listed = got[0]["Items"]["BackupJob"].as_array().expect("jobs");
        assert_eq!(listed.len(), 1, "{cluster}: {:#}", got[0]);
        assert_eq!(listed[0]["BackupJobId"], job.as_str());
        assert_eq!(listed[0]["BackupProgressStatus"], "Finished");
        assert_eq!(listed[0]["Process"], "100");
        let sets = got[1]["Items"]["Backup"].as_array().expect("sets");
        assert_eq!(sets.len(), 1, "{cluster}: {:#}", got[1]);
        assert_eq!(sets[0]["BackupId"], job.as_str());
        assert_eq!(sets[0]["BackupStatus"], "Success");
    }
    let mut expected: Vec<String> = jobs.iter().map(|(_, j)| j.clone()).collect();
    expected.sort();
    assert_eq!(shared.stored_ids(), expected);

    // 2. Kill -9 the server running a backup: a live one fails it once the lease lapses.
    let first_source = &sources[0];
    let bytes: u64 = first_source
        .psql("SELECT sum(pg_database_size(datname)) FROM pg_database;")
        .parse()
        .expect("a size");
    // About 15 s of upload, so the backup is surely running when looked at.
    proxy.set_rate((bytes / 15).max(500_000));
    let via = rng.gen_range(0..servers.len());
    let res = sdk_batch(vec![ask(
        "v3",
        &servers[via],
        &t,
        "CreateBackup",
        json!({"DBClusterId": clusters[0]}),
    )]);
    let doomed = job_of(&res[0]);
    let victim = wait_for(
        "a server to start the backup",
        60,
        || logs(&all),
        || runner(&servers, &doomed),
    );
    wait_for(
        "the backup to store data",
        60,
        || logs(&all),
        || shared.stored_ids().contains(&doomed).then_some(()),
    );
    // From here a trickle: however busy the machine, it cannot finish before the kill.
    proxy.set_rate(50_000);
    servers[victim].kill();
    let killed_at = Instant::now();
    eprintln!("killed server {victim} running job {doomed}");
    // Where the lease ends, as the store holds it now that nobody renews it: recovery may take
    // the job only after that second. (A fixed time after the kill is no bound: the kill comes
    // anywhere in a heartbeat's period, and a late heartbeat leaves less of the lease.)
    let lapses = lease_lapses_at(&shared.store(), &doomed);

    let live: Vec<&Server> = servers.iter().filter(|s| s.pid().is_some()).collect();
    let doomed_job = [(clusters[0].clone(), doomed.clone())];
    let ended = wait_ended(&live, &t, &doomed_job, 120, &mut rng);
    let recovered_after = killed_at.elapsed();
    eprintln!("recovered {recovered_after:.1?} after the kill");
    assert_eq!(ended, ["Failed"], "{}", logs(&live));
    let stored = shared.stored_job(&clusters[0], &doomed);
    let ended = stored.ended_at.expect("ended").as_second();
    assert!(
        ended >= lapses,
        "recovered at {ended}, before the lease ran out at {lapses} ({recovered_after:?} after the kill)"
    );
    assert_eq!(stored.status, JobStatus::Failed, "{stored:?}");
    let reason = stored.failure_reason.unwrap_or_default();
    assert!(reason.contains("interrupted"), "{reason:?}");
    let recoverers = live
        .iter()
        .filter(|s| {
            events(
                s,
                "a backup whose worker stopped ended Failed; removing its data",
                &doomed,
            ) > 0
        })
        .count();
    assert!(
        recoverers >= 1,
        "no live server recovered {doomed}\n{}",
        logs(&live)
    );
    // Recovery records the job Failed first and removes its data after (a failed set owns
    // none): the job can be seen Failed while its objects are still being deleted.
    wait_for(
        "the interrupted backup's data to be removed",
        60,
        || format!("{:?}\n{}", shared.stored_ids(), logs(&live)),
        || (!shared.stored_ids().contains(&doomed)).then_some(()),
    );
    let mut reqs = Vec::new();
    for s in &live {
        reqs.push(tasks(s, &t, &clusters[0]));
        reqs.push(backups(s, &t, &clusters[0]));
    }
    let got: Vec<Value> = sdk_batch(reqs).iter().map(answer).collect();
    assert_eq!(got[..2], got[2..], "the live servers answer otherwise");
    let sets = got[1]["Items"]["Backup"].as_array().expect("sets");
    let failed: Vec<&Value> = sets
        .iter()
        .filter(|s| s["BackupId"] == doomed.as_str())
        .collect();
    assert_eq!(failed.len(), 1, "{:#}", got[1]);
    assert_eq!(failed[0]["BackupStatus"], "Failed");
    assert_eq!(failed[0]["IsAvail"], "0");

    // The cluster is not left busy: its next backup runs to the end on a live server.
    proxy.set_rate(0);
    let res = sdk_batch(vec![ask(
        "v1-new",
        live[rng.gen_range(0..live.len())],
        &t,
        "CreateBackup",
        json!({"DBClusterId": clusters[0]}),
    )]);
    let next = job_of(&res[0]);
    let next_job = [(clusters[0].clone(), next.clone())];
    let ended = wait_ended(&live, &t, &next_job, 180, &mut rng);
    assert_eq!(ended, ["Finished"], "{}", logs(&live));
    let ran_on = runner(&servers, &next).expect("some server ran it");
    assert_ne!(ran_on, victim);
    assert!(shared.stored_ids().contains(&next));

    // 3. Restore, as on another machine, from the shared store and repository.
    let (_, job) = &jobs[1];
    let src = &sources[1 % sources.len()];
    let elsewhere = tempfile::tempdir().expect("tmp");
    let (scratch, target) = pg::restore_target();
    restore_elsewhere(
        elsewhere.path(),
        job,
        &target,
        &shared.metadata_url,
        &shared.repository_url,
        (&shared.creds.0, &shared.creds.1),
    );
    pg::chown_to_postgres(scratch.path(), true);
    let restored = PgCluster::start_on(&target);
    for db in ["postgres", "app"] {
        assert_eq!(
            restored.table_digests(db),
            src.table_digests(db),
            "database {db} differs after the restore"
        );
    }
    eprintln!("done in {:.1?}", started.elapsed());
}

/// One request as a client sent it, byte for byte.
fn capture(req: &Value) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let catcher = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let bytes = read_request(&mut conn);
        let body = br#"{"RequestId":"00000000-0000-0000-0000-000000000000"}"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body);
        bytes
    });
    let mut req = req.clone();
    req["endpoint"] = json!(addr.to_string());
    sdk_batch(vec![req]);
    catcher.join().expect("the catcher")
}

/// A request's head and its Content-Length body.
fn read_request(conn: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().expect("a length"))
                .unwrap_or(0);
            if bytes.len() >= end + 4 + len {
                return bytes;
            }
        }
        let n = conn.read(&mut buf).expect("read the request");
        assert!(n > 0, "the client closed early: {bytes:?}");
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// Sends `bytes` to `server` as they are; returns the status and the body's `Code`.
fn send(server: &Server, bytes: &[u8]) -> (u16, String) {
    let (status, head, body) =
        polarbackup_testkit::http::exchange(server.addr, bytes, Duration::from_secs(30))
            .expect("an HTTP exchange");
    assert_ne!(status, 0, "no status line: {head}");
    let code: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, code["Code"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn a_signed_request_replayed_at_another_server_is_refused() {
    let shared = Shared::new();
    let api_only = ["--workers", "0"];
    let servers: Vec<Server> = (0..2).map(|_| shared.server(&api_only)).collect();
    let t = servers[0].tenant();
    let mut answered = BTreeMap::new();
    for sig in ["v1", "v3"] {
        let mut req = ask(
            "raw",
            &servers[0],
            &t,
            "DescribeBackupTasks",
            json!({"DBClusterId": t.cluster_id}),
        );
        req["sig"] = json!(sig);
        let bytes = capture(&req);
        // Whichever server sees it first accepts it; every later copy, anywhere, is refused.
        let (first, second) = if sig == "v1" { (0, 1) } else { (1, 0) };
        let got = [
            send(&servers[first], &bytes),
            send(&servers[second], &bytes),
            send(&servers[first], &bytes),
        ];
        answered.insert(sig, got);
    }
    let accepted = (200, String::new());
    let replay = (400, "SignatureNonceUsed".to_owned());
    for (sig, got) in &answered {
        assert_eq!(
            got,
            &[accepted.clone(), replay.clone(), replay.clone()],
            "{sig}"
        );
    }
}

#[test]
fn an_object_store_gone_mid_backup_fails_the_job_cleanly_and_the_next_backup_succeeds() {
    let shared = Shared::new();
    let src = PgCluster::init();
    let bytes: u64 = src
        .psql("SELECT sum(pg_database_size(datname)) FROM pg_database;")
        .parse()
        .expect("a size");
    // About 15 s of upload, so the store is surely gone while the backup still writes.
    let proxy = ThrottledProxy::start(src.port, (bytes / 15).max(500_000));
    let server = shared.server(&[]);
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_on(&server.target(), proxy.port(), "postgres");
    let mut rng = StdRng::seed_from_u64(0);
    let all = [&server];

    let res = sdk_batch(vec![ask(
        "v3",
        &server,
        &t,
        "CreateBackup",
        json!({"DBClusterId": t.cluster_id}),
    )]);
    let job = job_of(&res[0]);
    wait_for(
        "the backup to store data",
        60,
        || logs(&all),
        || shared.stored_ids().contains(&job).then_some(()),
    );
    shared.weed.kill();
    let killed_at = Instant::now();
    // The rest of the source at full speed: the backup now waits only on the object store.
    proxy.set_rate(0);

    let jobs = [(t.cluster_id.clone(), job.clone())];
    let ended = wait_ended(&all, &t, &jobs, 300, &mut rng);
    eprintln!("failed {:.1?} after the store went", killed_at.elapsed());
    assert_eq!(ended, ["Failed"], "{}", logs(&all));
    let reason = shared
        .stored_job(&t.cluster_id, &job)
        .failure_reason
        .unwrap_or_default();
    eprintln!("reason: {reason}");
    assert!(
        reason.contains("storage error"),
        "the reason does not say the repository failed: {reason:?}"
    );
    assert!(
        !reason.contains(&shared.creds.1),
        "the reason shows the secret key"
    );
    // Nothing usable is listed: the job's entry is Failed, never available.
    let got = answer(&sdk_batch(vec![backups(&server, &t, &t.cluster_id)])[0]);
    let sets = got["Items"]["Backup"].as_array().expect("sets");
    assert_eq!(sets.len(), 1, "{got:#}");
    assert_eq!(sets[0]["BackupId"], job.as_str());
    assert_eq!(sets[0]["BackupStatus"], "Failed");
    assert_eq!(sets[0]["IsAvail"], "0");

    // The store is back: the next backup runs to the end and is the only usable set.
    shared.weed.restart();
    let res = sdk_batch(vec![ask(
        "v1-new",
        &server,
        &t,
        "CreateBackup",
        json!({"DBClusterId": t.cluster_id}),
    )]);
    let next = job_of(&res[0]);
    let jobs = [(t.cluster_id.clone(), next.clone())];
    let ended = wait_ended(&all, &t, &jobs, 180, &mut rng);
    assert_eq!(ended, ["Finished"], "{}", logs(&all));
    let got = answer(&sdk_batch(vec![backups(&server, &t, &t.cluster_id)])[0]);
    let usable: Vec<&str> = got["Items"]["Backup"]
        .as_array()
        .expect("sets")
        .iter()
        .filter(|s| s["BackupStatus"] == "Success")
        .filter_map(|s| s["BackupId"].as_str())
        .collect();
    assert_eq!(usable, [next.as_str()], "{got:#}");
    assert!(shared.stored_ids().contains(&next));
}
