//! Fault injection on the backup path, each ending in an error that becomes the job's readable
//! reason, and the next backup succeeding once the fault is gone: the database stalled or cut
//! off (the testkit's proxy), restarted mid-backup, the repository's disk full (a real tmpfs),
//! and the repository's storage failing, slow or corrupting data (`repo::faults`); and a
//! restore onto a full disk.

mod common;

use polarbackup_engine::pg::{ConnectConfig, PgHost, TlsMode};
use polarbackup_engine::DEFAULT_STALL;
use polarbackup_engine::{
    backup, restore, BackupRequest, BackupSummary, EngineError, Phase, ProgressSink, RestoreRequest,
};
use polarbackup_model::SystemClock;
use polarbackup_repo::faults::{Call, Faults};
use polarbackup_repo::{Repo, RepoConfig};
use polarbackup_testkit::pg::PgCluster;
use polarbackup_testkit::{ThrottledProxy, Tmpfs};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The deadline in the stall tests: short, so they are quick.
const STALL: Duration = Duration::from_secs(2);

/// Counts the bytes uploaded and wakes waiters on each report.
#[derive(Default)]
struct Watch {
    uploaded: AtomicU64,
    changed: Notify,
}

impl ProgressSink for Watch {
    fn report(&self, phase: Phase) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Phase::Uploading { done, .. } = phase {
                self.uploaded.store(done, Ordering::SeqCst);
            }
            self.changed.notify_waiters();
        })
    }
}

impl Watch {
    /// Waits until some data has been uploaded: the backup is in the middle of its stream.
    async fn mid_upload(&self) {
        while self.uploaded.load(Ordering::SeqCst) == 0 {
            let changed = self.changed.notified();
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }
}

fn tcp(port: u16) -> ConnectConfig {
    let mut c = ConnectConfig::new(PgHost::Tcp("127.0.0.1".into()), port, "postgres");
    c.tls = TlsMode::Disable;
    c
}

async fn run(
    id: &str,
    src: &ConnectConfig,
    repo: &Repo,
    scratch: &Path,
    progress: &Watch,
    stall: Duration,
) -> Result<BackupSummary, EngineError> {
    backup(BackupRequest {
        backup_id: id,
        source: src,
        repo,
        scratch,
        progress,
        cancel: &CancellationToken::new(),
        clock: Arc::new(SystemClock),
        stall,
        parent: None,
    })
    .await
}

/// A backup of `src` into `repo` that must succeed: the one after each fault.
async fn next_backup_succeeds(id: &str, src: &ConnectConfig, repo: &Repo, scratch: &Path) {
    let r = run(id, src, repo, scratch, &Watch::default(), DEFAULT_STALL).await;
    assert!(r.is_ok(), "the next backup: {r:?}");
    repo.verify(id, &mut |_, _| {}).await.unwrap();
}

/// A throwaway server, reached through a proxy pacing it so that uploading takes a few
/// seconds on any machine: room to strike mid-stream.
struct Source {
    pg: PgCluster,
    proxy: ThrottledProxy,
    dir: tempfile::TempDir,
    repo: Repo,
}

impl Source {
    fn new() -> Source {
        let pg = PgCluster::init();
        let bytes: u64 = pg
            .psql("SELECT sum(pg_database_size(datname)) FROM pg_database;")
            .parse()
            .unwrap();
        let proxy = ThrottledProxy::start(pg.port, (bytes / 4).max(1_000_000));
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::open_fs(&dir.path().join("repo"), RepoConfig::default()).unwrap();
        Source {
            pg,
            proxy,
            dir,
            repo,
        }
    }

    fn src(&self) -> ConnectConfig {
        tcp(self.proxy.port())
    }

    /// Starts a backup and waits until it is mid-upload.
    async fn strike_mid_upload<'a>(
        &'a self,
        id: &'a str,
        stall: Duration,
    ) -> tokio::task::JoinHandle<Result<BackupSummary, EngineError>> {
        let watch = Arc::new(Watch::default());
        let (src, repo, scratch, w) = (
            self.src(),
            self.repo.clone(),
            self.dir.path().to_path_buf(),
            watch.clone(),
        );
        let id = id.to_string();
        let task = tokio::spawn(async move { run(&id, &src, &repo, &scratch, &w, stall).await });
        tokio::time::timeout(Duration::from_secs(60), watch.mid_upload())
            .await
            .expect("the backup never started uploading");
        task
    }

    /// With the fault gone: the failed backup left nothing, and the next one succeeds.
    async fn recovers(&self, next_id: &str) {
        assert!(
            self.repo.list_backup_ids().await.unwrap().is_empty(),
            "a failed backup leaves nothing"
        );
        self.proxy.stall(false);
        self.proxy.set_rate(0);
        next_backup_succeeds(next_id, &self.src(), &self.repo, self.dir.path()).await;
    }
}

/// The error a struck backup ended with, and how long after the strike it ended.
async fn failure(
    task: tokio::task::JoinHandle<Result<BackupSummary, EngineError>>,
) -> (EngineError, Duration) {
    let struck = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("a struck backup must end")
        .unwrap();
    (r.unwrap_err(), struck.elapsed())
}

/// Gap 1: a database that stops sending mid-upload (the proxy holds every byte, as with its
/// walsenders SIGSTOPped) fails the backup as stalled once the deadline passes; without the
/// deadline the backup waited forever. The connections are closed, so the next one runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_fails_the_backup_after_the_deadline() {
    let s = Source::new();
    let task = s.strike_mid_upload("2001", STALL).await;
    s.proxy.stall(true);
    let (err, took) = failure(task).await;
    eprintln!("stalled at mid-upload; failed after {took:?}: {err}");
    assert!(
        matches!(
            err,
            EngineError::Stalled {
                secs: 2,
                what: "backup"
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no data from the database for 2 s; the backup stalled"
    );
    // The deadline runs from the last byte received, which may precede the stall by what was
    // in flight, so it can end a little under STALL after `stall(true)`; never much sooner.
    assert!(
        took >= STALL - Duration::from_millis(500),
        "not before the deadline: {took:?}"
    );
    s.recovers("2002").await;
}

/// The replication connections cut mid-upload (a reset): the backup fails at once, saying the
/// server closed the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_replication_stream_fails_the_backup() {
    let s = Source::new();
    let task = s.strike_mid_upload("2011", DEFAULT_STALL).await;
    s.proxy.cut();
    let (err, took) = failure(task).await;
    eprintln!("cut; failed after {took:?}: {err}");
    assert!(matches!(err, EngineError::Stream(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("the replication connection to the database failed: ")
            && (text.contains("closed the connection") || text.contains("reset")),
        "{text}"
    );
    s.recovers("2012").await;
}

/// `pg_ctl restart -m fast` mid-backup: the server ends the walsenders with its own word for
/// it, which is the reason; once it is back, the next backup runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restarted_mid_backup_fails_the_backup() {
    let s = Source::new();
    let task = s.strike_mid_upload("2021", DEFAULT_STALL).await;
    s.pg.restart_fast();
    let (err, took) = failure(task).await;
    eprintln!("restarted; failed after {took:?}: {err}");
    assert!(matches!(err, EngineError::Stream(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("terminating") || text.contains("closed the connection"),
        "{text}"
    );
    s.recovers("2022").await;
}

/// The repository on a real 16 MiB tmpfs and 24 MiB of incompressible data to store: the
/// backup fails with the storage's "No space left on device", gives back the space it took,
/// and succeeds once the disk is larger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_backup_and_frees_what_it_wrote() {
    let cluster = common::Cluster::shared();
    let db = format!("noise_{}", std::process::id());
    cluster.psql(&format!("CREATE DATABASE {db};"));
    let src = cluster.unix();
    let noise = format!(
        "\\c {db}\n\
         CREATE TABLE noise (b bytea);\n\
         ALTER TABLE noise ALTER COLUMN b SET STORAGE EXTERNAL;\n\
         INSERT INTO noise SELECT (SELECT decode(string_agg(lpad(to_hex((random() * 4294967295)::bigint), 8, '0'), ''), 'hex') \
           FROM generate_series(1, 262144) WHERE i > 0) FROM generate_series(1, 24) i;"
    );
    cluster.psql(&noise);
    let disk = Tmpfs::mount(16);
    let repo = Repo::open_fs(&disk.path().join("repo"), RepoConfig::default()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let result = run(
        "2031",
        &src,
        &repo,
        scratch.path(),
        &Watch::default(),
        DEFAULT_STALL,
    )
    .await;
    cluster.psql(&format!("DROP DATABASE {db};"));
    let err = result.unwrap_err();
    eprintln!("disk full: {err}");
    assert!(matches!(err, EngineError::Repo(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("backup repository: ")
            && err.to_string().contains("No space left on device"),
        "{err}"
    );
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
    assert!(
        disk.used_bytes() < 1 << 20,
        "the failed backup's objects are gone: {} bytes used",
        disk.used_bytes()
    );
    disk.resize(256);
    next_backup_succeeds("2032", &src, &repo, scratch.path()).await;
}

/// A restore onto a real 8 MiB tmpfs, smaller than the data: the file writers' "No space
/// left on device" is the error, and everything the restore made is removed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_restore_and_removes_what_it_wrote() {
    let cluster = common::Cluster::shared();
    let scratch = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(&scratch.path().join("repo"), RepoConfig::default()).unwrap();
    run(
        "2041",
        &cluster.unix(),
        &repo,
        scratch.path(),
        &Watch::default(),
        DEFAULT_STALL,
    )
    .await
    .unwrap();
    let disk = Tmpfs::mount(8);
    let (target, ts) = (disk.path().join("data"), disk.path().join("ts"));
    let mapping = [(cluster.tablespace_dir.display().to_string(), ts.clone())];
    let err = restore(RestoreRequest {
        repo: &repo,
        backup_id: "2041",
        target: &target,
        tablespace_mapping: &mapping,
        progress: &|_, _| {},
        keep_partial: false,
    })
    .await
    .unwrap_err()
    .to_string();
    eprintln!("disk full: {err}");
    assert!(
        err.contains("No space left on device") && err.contains("was removed"),
        "{err}"
    );
    let left: Vec<_> = walk(disk.path());
    assert!(!target.exists() && !ts.exists(), "left behind: {left:?}");
    assert!(
        disk.used_bytes() < 1 << 20,
        "the failed restore's files are gone: {} bytes used",
        disk.used_bytes()
    );
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        found.push(path.clone());
        if path.is_dir() {
            found.extend(walk(&path));
        }
    }
    found
}

/// A repository whose storage misbehaves as planned by `faults`.
fn faulty_repo(dir: &Path, faults: &Faults) -> Repo {
    Repo::open_fs_with_faults(&dir.join("repo"), RepoConfig::default(), faults).unwrap()
}

/// Runs one backup on the shared server into a repository with `plan`'s faults, returns its
/// error, then heals the storage and runs the next backup on the same repository.
async fn with_storage_faults(
    ids: (&str, &str),
    plan: impl FnOnce(&Faults),
) -> Result<BackupSummary, EngineError> {
    let cluster = common::Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let repo = faulty_repo(dir.path(), &faults);
    plan(&faults);
    let src = cluster.unix();
    let r = run(
        ids.0,
        &src,
        &repo,
        dir.path(),
        &Watch::default(),
        Duration::from_secs(1),
    )
    .await;
    faults.heal();
    if r.is_err() {
        assert!(repo.list_backup_ids().await.unwrap().is_empty());
    }
    next_backup_succeeds(ids.1, &src, &repo, dir.path()).await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_storage_write_fails_the_backup() {
    let err = with_storage_faults(("2041", "2042"), |f| f.fail_nth(Call::Write, 3))
        .await
        .unwrap_err();
    eprintln!("write failed: {err}");
    let text = err.to_string();
    assert!(
        text.starts_with("backup repository: ") && text.contains("injected failure of Write"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_storage_read_fails_the_check() {
    let err = with_storage_faults(("2051", "2052"), |f| f.fail_nth(Call::Read, 1))
        .await
        .unwrap_err();
    eprintln!("read failed: {err}");
    let text = err.to_string();
    assert!(
        text.starts_with("backup repository: ") && text.contains("injected failure of Read"),
        "{text}"
    );
}

/// A bit flipped on its way to storage is caught when the writer reads the object back, and
/// the error names the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_corrupted_on_write_is_caught_by_the_check() {
    let err = with_storage_faults(("2061", "2062"), |f| f.corrupt_nth(Call::Write, 2))
        .await
        .unwrap_err();
    eprintln!("corrupted on write: {err}");
    corrupt_reason(&err);
}

/// A bit flipped on its way back from storage (the writer's read-back) is caught the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_corrupted_on_read_is_caught_by_the_check() {
    let err = with_storage_faults(("2071", "2072"), |f| f.corrupt_nth(Call::Read, 1))
        .await
        .unwrap_err();
    eprintln!("corrupted on read: {err}");
    corrupt_reason(&err);
}

fn corrupt_reason(err: &EngineError) {
    assert!(matches!(err, EngineError::Repo(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("backup repository: ") && text.contains("backups/"),
        "the reason names the object: {text}"
    );
}

/// Storage slower than the stall deadline is not a stalled database: only waits on the
/// database count, so a backup whose writes each take longer than the deadline still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_storage_is_not_a_stalled_database() {
    let r = with_storage_faults(("2081", "2082"), |f| {
        f.delay_from(Call::Write, 1, Duration::from_millis(1500))
    })
    .await;
    assert!(r.is_ok(), "{r:?}");
}
