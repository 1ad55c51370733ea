//! Crash harness: SIGKILLs `serve` at random moments of manual backups (CreateBackup through the
//! SDK), DeleteBackup, retention, scheduling and WAL streaming, restarts it on the same data
//! directory each time, and checks after every restart that every job ends terminal within the
//! lease and none is lost or duplicated, that every listed set reads back whole, that no
//! orphaned object remains, that `PRAGMA integrity_check` is `ok` and that the WAL archive has
//! no hole (`crash_checks`).
//!
//! `POLARBACKUP_CRASH_POINTS` kill points (30 by default, what CI runs; `bench/crash.sh` runs
//! 1000), drawn from `POLARBACKUP_CRASH_SEED` (random, and printed, when unset).

mod common;
mod crash_checks;

use common::{bin, call_v3, wire_body};
use crash_checks as check;
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::policy::{BackupWindow, PolicyChange};
use polarbackup_model::{
    AccountId, BackupJob, BackupSetStatus, DbClusterId, JobMode, JobStatus, NewCluster, TlsMode,
};
use polarbackup_repo::{Repo, RepoConfig};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::pg::{PgCluster, SUPERUSER};
use polarbackup_testkit::{admin, Server, Tenant};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LEASE_SECS: u64 = 3;

/// Archiving with a partial every second, the shortest lease, the scheduler on.
const SERVE: &[&str] = &[
    "--log-backup",
    "on",
    "--wal-partial-secs",
    "1",
    "--lease-secs",
    "3",
    "--scheduler",
    "on",
];

/// A job running at the kill is failed by recovery once its lease lapsed, at the next worker
/// pass (2 s); the rest is room for a loaded machine.
const RECOVERY: Duration = Duration::from_secs(LEASE_SECS + 2 + 20);
/// A job queued at the kill runs to its end after the restart (a small database's backup).
const RUN_TO_END: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// CreateBackup through the SDK, killed while the backup runs (or before it starts).
    Backup,
    /// DeleteBackup of a finished manual set, killed while its data is removed.
    Delete,
    /// Expired automated sets seeded, killed while retention removes them.
    Retention,
    /// A cluster whose backup window is open now, killed while the scheduler queues its job.
    Schedule,
    /// Only the WAL archiver at work (rows written), killed mid-stream.
    Streaming,
}

/// What the harness did before a kill, for the checks after the restart.
enum Did {
    Backup { job: String, token: String },
    Delete { set: String },
    Retention { sets: Vec<String> },
    Schedule { cluster: DbClusterId },
    Streaming,
}

struct Harness {
    pg: PgCluster,
    _dir: tempfile::TempDir,
    data: PathBuf,
    tenant: Tenant,
    cluster: DbClusterId,
    store: SqliteStore,
    repo: Repo,
    rt: tokio::runtime::Runtime,
    rng: StdRng,
    /// Every cluster the harness made (scheduling ones are deleted after their point).
    clusters: Vec<DbClusterId>,
    rows: u64,
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

fn start(data: &Path) -> Server {
    Server::builder(bin()).data_dir(data).args(SERVE).start()
}

impl Harness {
    fn new(seed: u64) -> (Harness, Server) {
        let pg = PgCluster::init();
        pg.psql("CREATE TABLE t (n bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());");
        let dir = tempfile::Builder::new()
            .prefix("pbcrash")
            .tempdir()
            .expect("a temporary directory");
        let data = dir.path().join("data");
        let server = start(&data);
        let tenant = Tenant::create_at(bin(), &data, "crash", pg.port);
        let cluster = DbClusterId::parse(&tenant.cluster_id).expect("a cluster id");
        let store = SqliteStore::open(&data).expect("open the store");
        let repo = Repo::open_fs(&data.join("repo"), RepoConfig::default()).expect("the repo");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let h = Harness {
            pg,
            _dir: dir,
            data,
            tenant,
            clusters: vec![cluster.clone()],
            cluster,
            store,
            repo,
            rt,
            rng: StdRng::seed_from_u64(seed),
            rows: 0,
        };
        (h, server)
    }

    /// Some WAL for the archiver to stream.
    fn write_rows(&mut self) {
        let from = self.rows + 1;
        self.rows += 200;
        self.pg.psql(&format!(
            "INSERT INTO t (n) SELECT g FROM generate_series({from}, {}) g;",
            self.rows
        ));
    }

    fn manual_in_use(&self) -> (Vec<String>, usize) {
        let sets: Vec<String> = check::listed_sets(&self.store, &self.cluster)
            .into_iter()
            .map(|id| id.to_string())
            .collect();
        let manual: Vec<String> = self
            .store
            .cluster_sets(&self.cluster)
            .expect("sets")
            .into_iter()
            .filter(|s| s.mode == JobMode::Manual && sets.contains(&s.id.to_string()))
            .map(|s| s.id.to_string())
            .collect();
        let open = check::jobs(&self.store, &self.cluster)
            .iter()
            .filter(|j| j.mode == JobMode::Manual && !j.status.is_terminal())
            .count();
        let in_use = manual.len() + open;
        (manual, in_use)
    }

    fn pick(&mut self) -> Scenario {
        let (manual, in_use) = self.manual_in_use();
        match self.rng.gen_range(0..10) {
            0..=3 if in_use < 3 => Scenario::Backup,
            0..=5 if !manual.is_empty() => Scenario::Delete,
            0..=5 => Scenario::Streaming,
            6 => Scenario::Retention,
            7..=8 => Scenario::Schedule,
            _ => Scenario::Streaming,
        }
    }

    /// Runs `scenario` against `server`, up to the moment the kill may come.
    fn act(&mut self, server: &Server, scenario: Scenario, point: u64) -> Did {
        match scenario {
            Scenario::Backup => {
                let token = format!("crash-{point}");
                let res = call_v3(
                    server,
                    &self.tenant,
                    "CreateBackup",
                    json!({"DBClusterId": self.cluster.as_str(), "ClientToken": token}),
                );
                assert_eq!(res["ok"], true, "CreateBackup: {res:#}");
                let job = wire_body(&res)["BackupJobId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{res:#}"))
                    .to_owned();
                Did::Backup { job, token }
            }
            Scenario::Delete => {
                let (manual, _) = self.manual_in_use();
                let set = manual[self.rng.gen_range(0..manual.len())].clone();
                let res = call_v3(
                    server,
                    &self.tenant,
                    "DeleteBackup",
                    json!({"DBClusterId": self.cluster.as_str(), "BackupId": set}),
                );
                assert_eq!(res["ok"], true, "DeleteBackup {set}: {res:#}");
                Did::Delete { set }
            }
            Scenario::Retention => {
                let long_ago = check::now() - SignedDuration::from_hours(24 * 60);
                let sets = common::seed_sets(
                    &self.data,
                    self.cluster.as_str(),
                    &[
                        (JobMode::Automated, BackupSetStatus::Failed, long_ago),
                        (
                            JobMode::Automated,
                            BackupSetStatus::Failed,
                            long_ago + SignedDuration::from_hours(1),
                        ),
                    ],
                );
                Did::Retention { sets }
            }
            Scenario::Schedule => {
                let cluster = self.cluster_due_now();
                self.clusters.push(cluster.clone());
                Did::Schedule { cluster }
            }
            Scenario::Streaming => Did::Streaming,
        }
    }

    /// A cluster on the same PostgreSQL, created the second before the backup window open now
    /// began, with that window: the scheduler owes it one automated backup.
    fn cluster_due_now(&self) -> DbClusterId {
        let now = check::now();
        // Created any earlier, the cluster could owe a slot of the default policy (02:00Z) as
        // well: between 03:00Z and 04:00Z a scheduler pass between the two writes below queued
        // that slot, then the new window's ("the slot ran twice"). Created just before this
        // window, it owes this one slot whichever policy the pass reads.
        let created = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(3600))
            .expect("a time")
            - SignedDuration::from_secs(1);
        let cluster = self
            .store
            .create_cluster(
                &NewCluster {
                    account: AccountId::parse(&self.tenant.account_id).expect("account"),
                    region: "cn-hangzhou".into(),
                    engine: "postgresql".into(),
                    host: "127.0.0.1".into(),
                    port: self.pg.port,
                    user: SUPERUSER.into(),
                    password: None,
                    database: None,
                    description: None,
                    tls_mode: TlsMode::Disable,
                    tls_ca_file: None,
                },
                created,
            )
            .expect("create a cluster")
            .id;
        let hour = now.to_zoned(jiff::tz::TimeZone::UTC).hour();
        let change = PolicyChange {
            window: BackupWindow::starting_at(u8::try_from(hour).expect("an hour")),
            ..PolicyChange::default()
        };
        self.store
            .modify_backup_policy(&cluster, &change)
            .expect("modify the policy")
            .expect("a Running cluster");
        cluster
    }

    /// The checks after a restart. `before`: every job as the store held it at the kill.
    fn check(&mut self, server: &Server, did: &Did, before: &[BackupJob]) -> Result<(), String> {
        // Jobs running at the kill are recovered once their lease lapses.
        let running: Vec<DbClusterId> = before
            .iter()
            .filter(|j| !j.status.is_terminal() && j.status != JobStatus::NoStart)
            .map(|j| j.cluster_id.clone())
            .collect();
        check::wait_terminal(&self.store, &running, RECOVERY)?;
        if let Did::Schedule { cluster } = did {
            self.wait_scheduled(cluster)?;
        }
        let after = check::wait_terminal(&self.store, &self.clusters, RUN_TO_END)?;
        check::none_lost(before, &after)?;
        match did {
            Did::Backup { job, token } => {
                if !after.iter().any(|j| j.id.to_string() == *job) {
                    return Err(format!("CreateBackup's job {job} is not in the store"));
                }
                // The same ClientToken after the crash names the same job, never a new one.
                let res = call_v3(
                    server,
                    &self.tenant,
                    "CreateBackup",
                    json!({"DBClusterId": self.cluster.as_str(), "ClientToken": token}),
                );
                let again = wire_body(&res)["BackupJobId"].as_str().unwrap_or_default();
                if again != job {
                    return Err(format!(
                        "CreateBackup with token {token} again answered {res}, not job {job}"
                    ));
                }
            }
            Did::Delete { set } => self.wait_gone(std::slice::from_ref(set), "deleted set")?,
            Did::Retention { sets } => self.wait_gone(sets, "expired set")?,
            Did::Schedule { .. } | Did::Streaming => {}
        }
        check::verify_listed(&self.rt, &self.repo, &self.store, &self.clusters)?;
        check::no_orphans(&self.rt, &self.repo, &self.store, RECOVERY)?;
        check::integrity(&self.store)?;
        self.check_archive()?;
        if let Did::Schedule { cluster } = did {
            self.drop_cluster(cluster);
        }
        Ok(())
    }

    /// Exactly one automated job for a cluster the scheduler owed one slot (a kill before
    /// the scheduler ran leaves it to the restarted server).
    fn wait_scheduled(&self, cluster: &DbClusterId) -> Result<(), String> {
        let deadline = Instant::now() + RECOVERY;
        loop {
            let automated: Vec<BackupJob> = check::jobs(&self.store, cluster)
                .into_iter()
                .filter(|j| j.mode == JobMode::Automated)
                .collect();
            match automated.len() {
                1 => return Ok(()),
                0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                0 => return Err(format!("no automated job was queued for {cluster}")),
                _ => return Err(format!("the slot of {cluster} ran twice: {automated:?}")),
            }
        }
    }

    /// Sets being deleted or expired are gone from the store and the repository in time.
    fn wait_gone(&self, ids: &[String], what: &str) -> Result<(), String> {
        let deadline = Instant::now() + RECOVERY;
        loop {
            let rows: Vec<String> = self
                .store
                .cluster_sets(&self.cluster)
                .expect("sets")
                .into_iter()
                .map(|s| s.id.to_string())
                .collect();
            let data = self
                .rt
                .block_on(self.repo.list_backup_ids())
                .map_err(|e| e.to_string())?;
            let left: Vec<&String> = ids
                .iter()
                .filter(|id| rows.contains(id) || data.contains(id))
                .collect();
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{what} still present after {RECOVERY:?}: {left:?}"));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// No hole in the main cluster's archive; once the restarted archiver has recorded new
    /// WAL (it removes what a killed one stored unrecorded first), no WAL file stays
    /// unrecorded.
    fn check_archive(&mut self) -> Result<(), String> {
        check::wal_continuous(&self.store, &self.cluster)?;
        let newest = check::newest_wal(&self.store, &self.cluster);
        let deadline = Instant::now() + RECOVERY;
        self.write_rows();
        while check::newest_wal(&self.store, &self.cluster) == newest {
            if Instant::now() >= deadline {
                return Err(format!("the archiver recorded nothing new in {RECOVERY:?}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // The running archiver stores each segment before recording it, so one in flight is
        // briefly unrecorded; a killed archiver's leftover stays until the deadline.
        loop {
            let orphans = check::wal_orphans(&self.data.join("repo"), &self.store, &self.cluster);
            if orphans.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("unrecorded WAL in the repository: {orphans:?}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        check::wal_continuous(&self.store, &self.cluster).map(drop)
    }

    /// Deletes a scheduling point's cluster (NONE: its sets go too), so its archiver stops and
    /// its slot is dropped, and the PostgreSQL keeps walsenders for the next points.
    fn drop_cluster(&mut self, cluster: &DbClusterId) {
        admin(
            bin(),
            &self.data,
            &[
                "cluster",
                "delete",
                "--cluster",
                cluster.as_str(),
                "--retention",
                "NONE",
            ],
        );
        self.clusters.retain(|c| c != cluster);
    }
}

#[test]
fn serve_killed_at_random_moments_keeps_every_invariant() {
    let points = env_number("POLARBACKUP_CRASH_POINTS").unwrap_or(30);
    let seed = env_number("POLARBACKUP_CRASH_SEED").unwrap_or_else(rand::random);
    eprintln!("crash harness: {points} points, POLARBACKUP_CRASH_SEED={seed}");
    let (mut h, mut server) = Harness::new(seed);
    let mut tally: Vec<(Scenario, usize)> = Vec::new();
    for point in 1..=points {
        h.write_rows();
        let scenario = h.pick();
        let did = h.act(&server, scenario, point);
        // Backups of the small database take a few seconds; the other work is quicker.
        let window_ms = match scenario {
            Scenario::Backup | Scenario::Schedule => 6000,
            _ => 2500,
        };
        let delay = Duration::from_millis(h.rng.gen_range(0..window_ms));
        std::thread::sleep(delay);
        server.kill();
        let before = check::all_jobs(&h.store, &h.clusters);
        server = start(&h.data);
        if let Err(e) = h.check(&server, &did, &before) {
            panic!(
                "point {point} ({scenario:?}, killed {delay:?} in) failed: {e}\n\
                 reproduce with POLARBACKUP_CRASH_SEED={seed} POLARBACKUP_CRASH_POINTS={points}\n\
                 server log:\n{}",
                server.log()
            );
        }
        match tally.iter_mut().find(|(s, _)| *s == scenario) {
            Some((_, n)) => *n += 1,
            None => tally.push((scenario, 1)),
        }
        eprintln!("point {point}/{points}: {scenario:?} killed {delay:?} in: ok");
    }
    eprintln!("crash harness: {points} points passed (seed {seed}): {tally:?}");
    server.stop();
}
