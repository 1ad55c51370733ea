//! The engine end to end against a real PostgreSQL: backup into a real repository (its WAL
//! streamed beside the data files), the Checking phase catching corruption, permission
//! failures, and restore.

mod common;

use common::{Cluster, NO_REPL_USER, SUPERUSER};
use polarbackup_engine::pg::{ConnectConfig, PgHost, TlsMode};
use polarbackup_engine::{
    backup, restore, BackupRequest, EngineError, Phase, ProgressSink, RestoreRequest,
};
use polarbackup_model::ManualClock;
use polarbackup_repo::{Repo, RepoConfig};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Records phases; optionally damages one stored object when Checking begins (after the
/// writer read it back), the way a lost write would: it loses its last byte.
struct Sink {
    phases: Mutex<Vec<Phase>>,
    corrupt_under: Option<PathBuf>,
    corrupted: std::sync::atomic::AtomicBool,
}

impl ProgressSink for Sink {
    fn report(&self, phase: Phase) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let checking = matches!(phase, Phase::Checking { .. });
            let first = checking
                && !self
                    .corrupted
                    .swap(true, std::sync::atomic::Ordering::SeqCst);
            if let (Some(dir), true) = (&self.corrupt_under, first) {
                let victim = first_chunk(dir);
                let mut bytes = std::fs::read(&victim).unwrap();
                bytes.pop();
                std::fs::write(&victim, bytes).unwrap();
            }
            self.phases.lock().unwrap().push(phase);
        })
    }
}

fn first_chunk(dir: &Path) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "zst") {
                return p;
            }
        }
    }
    panic!("no chunk under {}", dir.display());
}

fn source(cluster: &Cluster, user: &str) -> ConnectConfig {
    let mut cfg = cluster.unix();
    cfg.user = user.into();
    cfg
}

struct Env {
    dir: tempfile::TempDir,
    repo: Repo,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(&dir.path().join("repo"), RepoConfig::default()).unwrap();
    Env { dir, repo }
}

/// The service's clock in these tests, decades behind the database's: a backup's consistent
/// time must not come from it.
fn service_time() -> jiff::Timestamp {
    "2003-05-06T07:08:09Z".parse().unwrap()
}

/// The database's own clock, read from the source.
fn db_now(cluster: &Cluster) -> jiff::Timestamp {
    let micros = cluster.psql("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint");
    jiff::Timestamp::from_microsecond(micros.trim().parse().unwrap()).unwrap()
}

/// `pg_verifybackup` (as `postgres`, who is given the test's directory) passes on `target`.
fn assert_verifies(cluster: &Cluster, env: &Env, target: &Path) {
    let chown = std::process::Command::new("chown")
        .args(["-R", "postgres"])
        .arg(env.dir.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let out = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(cluster.bin("pg_verifybackup"))
        .arg(target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_verifybackup: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn run(
    env: &Env,
    src: &ConnectConfig,
    id: &str,
    sink: &Sink,
) -> Result<polarbackup_engine::BackupSummary, EngineError> {
    backup(BackupRequest {
        backup_id: id,
        source: src,
        repo: &env.repo,
        scratch: env.dir.path(),
        progress: sink,
        cancel: &CancellationToken::new(),
        clock: Arc::new(ManualClock::new(service_time())),
        stall: polarbackup_engine::DEFAULT_STALL,
        parent: None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_reports_every_phase_and_restores_a_verifiable_directory() {
    let cluster = Cluster::shared();
    let env = env();
    let sink = Sink {
        phases: Mutex::new(Vec::new()),
        corrupt_under: None,
        corrupted: Default::default(),
    };
    let before = db_now(&cluster);
    let summary = run(&env, &source(&cluster, SUPERUSER), "1001", &sink)
        .await
        .unwrap();
    let after = db_now(&cluster);
    assert!(summary.end_lsn > summary.start_lsn);
    // The consistent time is the database's: within the backup, a few seconds before its end.
    let consistent = summary.consistent_time;
    assert!(
        before <= consistent && consistent <= after,
        "{before} <= {consistent} <= {after}"
    );
    assert!(
        after.duration_since(consistent) < jiff::SignedDuration::from_secs(5),
        "{consistent} is close to {after}"
    );
    assert!(summary.raw_bytes > 1_000_000 && summary.stored_bytes < summary.raw_bytes);
    let phases = sink.phases.lock().unwrap().clone();
    assert_eq!(phases[0], Phase::Preparing);
    assert_eq!(phases[1], Phase::Waiting);
    assert!(phases
        .iter()
        .any(|p| matches!(p, Phase::Uploading { done, total } if *done > 0 && done < total)));
    assert!(matches!(phases.last(), Some(Phase::Checking { .. })));
    let manifest = env.repo.manifest("1001").await.unwrap().unwrap();
    assert_eq!(
        manifest.meta["consistent_time"],
        consistent.to_string(),
        "the manifest records it too"
    );
    let names: Vec<&str> = manifest.archives.iter().map(|a| a.name.as_str()).collect();
    assert!(
        names.contains(&"base.tar") && names.contains(&"pg_wal.tar") && names.len() == 3,
        "{names:?}"
    );

    // The tablespace's original location is the live cluster's: refused, and nothing written.
    let target = env.dir.path().join("restored");
    let progress = |_: u64, _: u64| {};
    let err = restore(RestoreRequest {
        repo: &env.repo,
        backup_id: "1001",
        target: &target,
        tablespace_mapping: &[],
        progress: &progress,
        keep_partial: false,
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(
        !target.exists(),
        "nothing is written before every destination is checked"
    );

    // With a mapping, the restored directory verifies with pg_verifybackup.
    let ts = env.dir.path().join("ts-restored");
    let mapping = [(cluster.tablespace_dir.display().to_string(), ts.clone())];
    let summary = restore(RestoreRequest {
        repo: &env.repo,
        backup_id: "1001",
        target: &target,
        tablespace_mapping: &mapping,
        progress: &progress,
        keep_partial: false,
    })
    .await
    .unwrap();
    assert_eq!(summary.archives, 3);
    let link = std::fs::read_dir(target.join("pg_tblspc"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(std::fs::read_link(link).unwrap(), ts);
    assert_verifies(&cluster, &env, &target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checking_catches_a_corrupted_object_and_nothing_is_left() {
    let cluster = Cluster::shared();
    let env = env();
    let sink = Sink {
        phases: Mutex::new(Vec::new()),
        corrupt_under: Some(env.dir.path().join("repo")),
        corrupted: Default::default(),
    };
    let err = run(&env, &source(&cluster, SUPERUSER), "1002", &sink)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Repo(_)), "{err}");
    assert!(
        err.to_string().contains(".zst"),
        "the reason names the object: {err}"
    );
    assert!(
        env.repo.list_backup_ids().await.unwrap().is_empty(),
        "nothing is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_replication_is_refused_before_anything_is_stored() {
    let cluster = Cluster::shared();
    let env = env();
    let sink = Sink {
        phases: Mutex::new(Vec::new()),
        corrupt_under: None,
        corrupted: Default::default(),
    };
    let err = run(&env, &source(&cluster, NO_REPL_USER), "1003", &sink)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Permission(_)), "{err}");
    assert!(err.to_string().contains("REPLICATION"), "{err}");
    assert!(env.repo.list_backup_ids().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_connection_failure() {
    let env = env();
    let sink = Sink {
        phases: Mutex::new(Vec::new()),
        corrupt_under: None,
        corrupted: Default::default(),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut src = ConnectConfig::new(PgHost::Tcp("127.0.0.1".into()), port, "postgres");
    src.tls = TlsMode::Disable;
    let err = run(&env, &src, "1004", &sink).await.unwrap_err();
    assert!(matches!(err, EngineError::Connect(_)), "{err}");
    assert!(env.repo.list_backup_ids().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_up_over_verified_tls_with_scram() {
    let cluster = Cluster::shared();
    let ca = cluster.ca_file.clone();
    let env = env();
    let sink = Sink {
        phases: Mutex::new(Vec::new()),
        corrupt_under: None,
        corrupted: Default::default(),
    };
    let mut src = cluster.tcp(common::SCRAM_USER.0, Some(common::SCRAM_USER.1));
    src.tls = TlsMode::Require;
    src.tls_ca_file = Some(ca);
    let summary = run(&env, &src, "1005", &sink).await.unwrap();
    assert!(summary.raw_bytes > 0);
    // Verification fails against the system roots: the certificate is the fixture's own.
    let mut untrusted = src.clone();
    untrusted.tls_ca_file = None;
    let err = run(&env, &untrusted, "1006", &sink).await.unwrap_err();
    assert!(matches!(err, EngineError::Connect(_)), "{err}");
}

/// Pauses the backup's data stream when it reports `Uploading` first, and meanwhile watches
/// the backup's slot: taken by a walsender, and moving past WAL written during the pause.
struct Watcher {
    cluster: Arc<Cluster>,
    slot_prefix: String,
    seen: Mutex<Option<(bool, bool)>>,
}

impl Watcher {
    /// The backup's slot as `(active, restart_lsn >= lsn)`, if it exists.
    async fn slot(&self, lsn: &str) -> Option<(bool, bool)> {
        let (cluster, sql) = (
            self.cluster.clone(),
            format!(
                "SELECT active, restart_lsn >= '{lsn}' FROM pg_replication_slots \
                 WHERE slot_name LIKE '{}%'",
                self.slot_prefix
            ),
        );
        let row = tokio::task::spawn_blocking(move || cluster.psql(&sql))
            .await
            .unwrap();
        let mut cols = row.trim().split('|');
        match (cols.next(), cols.next()) {
            (Some(active), Some(past)) => Some((active == "t", past == "t")),
            _ => None,
        }
    }

    /// Polls `slot(lsn)` for up to 20 s until `done` holds.
    async fn wait(&self, lsn: &str, done: impl Fn((bool, bool)) -> bool) -> bool {
        for _ in 0..400 {
            if self.slot(lsn).await.is_some_and(&done) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    }
}

impl ProgressSink for Watcher {
    fn report(&self, phase: Phase) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if !matches!(phase, Phase::Uploading { .. }) || self.seen.lock().unwrap().is_some() {
                return;
            }
            let streaming = self.wait("0/0", |(active, _)| active).await;
            // Two segments' worth of switches while no data file moves: their WAL must come
            // through the slot now, and be released, not kept until the data is done.
            let cluster = self.cluster.clone();
            let lsn = tokio::task::spawn_blocking(move || {
                cluster.psql(
                    "CREATE TABLE during_1007 AS SELECT g FROM generate_series(1, 1000) g;\n\
                     SELECT pg_switch_wal();\n\
                     INSERT INTO during_1007 SELECT g FROM generate_series(1, 1000) g;\n\
                     SELECT pg_switch_wal();\n\
                     SELECT pg_current_wal_lsn();",
                )
            })
            .await
            .unwrap();
            let lsn = lsn.lines().last().unwrap().trim().to_string();
            let released = self.wait(&lsn, |(_, past)| past).await;
            *self.seen.lock().unwrap() = Some((streaming, released));
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_streams_and_is_released_while_the_data_files_stream() {
    let cluster = Cluster::shared();
    let env = env();
    let watcher = Watcher {
        cluster: cluster.clone(),
        slot_prefix: "polarbackup\\_1007\\_".into(),
        seen: Mutex::new(None),
    };
    let summary = backup(BackupRequest {
        backup_id: "1007",
        source: &source(&cluster, SUPERUSER),
        repo: &env.repo,
        scratch: env.dir.path(),
        progress: &watcher,
        cancel: &CancellationToken::new(),
        clock: Arc::new(ManualClock::new(service_time())),
        stall: polarbackup_engine::DEFAULT_STALL,
        parent: None,
    })
    .await
    .unwrap();
    assert_eq!(
        *watcher.seen.lock().unwrap(),
        Some((true, true)),
        "(a walsender had the slot, the slot moved past the WAL written) while the data waited"
    );
    // The WAL of the pause spans three segments; the set holds them all, and they verify.
    let wal = env
        .repo
        .manifest("1007")
        .await
        .unwrap()
        .unwrap()
        .archives
        .into_iter()
        .find(|a| a.name == "pg_wal.tar")
        .unwrap();
    assert!(wal.raw_size >= 3 * 16 * 1024 * 1024, "{}", wal.raw_size);
    assert!(summary.end_lsn > summary.start_lsn);
    let target = env.dir.path().join("restored");
    let ts = env.dir.path().join("ts-restored");
    let mapping = [(cluster.tablespace_dir.display().to_string(), ts)];
    restore(RestoreRequest {
        repo: &env.repo,
        backup_id: "1007",
        target: &target,
        tablespace_mapping: &mapping,
        progress: &|_: u64, _: u64| {},
        keep_partial: false,
    })
    .await
    .unwrap();
    assert_verifies(&cluster, &env, &target);
    cluster.psql("DROP TABLE during_1007");
}
