//! Restore to a point in time against real PostgreSQL (13 and the newest): a full backup taken
//! by the engine, batches of rows committed around noted instants of the server's clock, the
//! source's WAL put into the repository as the archiver would (whole segments, then the segment
//! in progress as a partial), a plan from the model, and a plain `pg_ctl start` on each
//! restored directory: exactly the rows committed by the target, read-write.

mod pgwal;

use pgwal::{db_now, lsn, segments, switch_wal, SEG_SIZE};
use polarbackup_engine::pg::{ConnectConfig, PgHost, TlsMode};
use polarbackup_engine::{
    backup, restore_to_point, BackupRequest, BackupSummary, ConfiguredTarget, Phase, PitrRequest,
    ProgressSink, WAL_DIR,
};
use polarbackup_model::log_backup::{plan_restore, RecoveryTarget};
use polarbackup_model::{
    BackupJobId, BackupLogId, BackupSet, BackupSetStatus, DbClusterId, JobMode, Lsn, NewWalObject,
    SystemClock, WalObject, WalObjectKind, WalRange,
};
use polarbackup_repo::{Repo, RepoConfig};
use polarbackup_testkit::pg::{chown_to_postgres, restore_target, PgCluster};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Quiet;

impl ProgressSink for Quiet {
    fn report(&self, _: Phase) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

const CLUSTER: &str = "pc-pitrpitrpitrpit";
const BACKUP_ID: u64 = 7;

fn cluster_id() -> DbClusterId {
    DbClusterId::parse(CLUSTER).unwrap()
}

/// Commits `rows` rows of `batch`, one transaction each.
fn commit_batch(source: &PgCluster, batch: &str, rows: u32) {
    let mut script = String::new();
    for n in 0..rows {
        script += &format!("INSERT INTO t VALUES ('{batch}', {n});\n");
    }
    source.psql(&script);
}

/// A short pause on the server's side of the clock, so that an instant noted between two
/// batches lies strictly between their commits.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// The instants and archive of the scenario.
struct Source {
    /// The source, kept running while its WAL is restored.
    _cluster: PgCluster,
    repo_dir: tempfile::TempDir,
    repo: Repo,
    base: BackupSet,
    wal: Vec<WalObject>,
    /// After A, after B, after C.
    noted: [jiff::Timestamp; 3],
}

async fn put(
    repo: &Repo,
    id: u64,
    kind: WalObjectKind,
    name: &str,
    start: Lsn,
    bytes: Vec<u8>,
    times: (jiff::Timestamp, jiff::Timestamp),
) -> WalObject {
    let key_name = match kind {
        WalObjectKind::Partial => format!("{name}.partial"),
        _ => name.to_owned(),
    };
    let size = bytes.len() as u64;
    let stored = repo.put_wal(CLUSTER, &key_name, bytes).await.unwrap();
    WalObject {
        id: BackupLogId(id),
        object: NewWalObject {
            cluster_id: cluster_id(),
            timeline: 1,
            kind,
            name: name.to_owned(),
            start,
            end: start + size,
            size,
            stored_size: stored.stored_size,
            key: stored.key,
            digest: stored.digest,
            start_time: times.0,
            end_time: times.1,
        },
    }
}

/// Backup, then batch A, noted instant, batch B, noted instant, a segment switch, batch C
/// (flushed), noted instant; the source's WAL from the backup's end into the repository.
async fn source(major: u32) -> Source {
    let cluster = PgCluster::init_major(major);
    // No background transaction may commit between the noted instants and the batches.
    cluster.psql("ALTER SYSTEM SET autovacuum = off; SELECT pg_reload_conf();");
    cluster.psql("CREATE TABLE t (batch text, n int);");
    // Settings a standby or an earlier restore leaves behind, ignored by the running primary
    // but backed up with it: the restore must neutralise them (two targets are refused, a
    // standby never opens read-write).
    cluster.psql(
        "ALTER SYSTEM SET recovery_target_name = 'elsewhere';\n\
         ALTER SYSTEM SET primary_conninfo = 'host=192.0.2.1 connect_timeout=1';\n\
         ALTER SYSTEM SET recovery_target_action = 'shutdown';",
    );
    std::fs::write(cluster.data_dir().join("standby.signal"), "").unwrap();
    let repo_dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(&repo_dir.path().join("repo"), RepoConfig::default()).unwrap();
    let mut cfg = ConnectConfig::new(
        PgHost::Unix(cluster.socket_dir().to_path_buf()),
        cluster.port,
        "postgres",
    );
    cfg.tls = TlsMode::Disable;
    let started = db_now(&cluster);
    let summary: BackupSummary = backup(BackupRequest {
        backup_id: &BACKUP_ID.to_string(),
        source: &cfg,
        repo: &repo,
        scratch: repo_dir.path(),
        progress: &Quiet,
        cancel: &CancellationToken::new(),
        clock: Arc::new(SystemClock),
    })
    .await
    .unwrap();

    pause().await;
    commit_batch(&cluster, "A", 3);
    pause().await;
    let after_a = db_now(&cluster);
    pause().await;
    commit_batch(&cluster, "B", 4);
    pause().await;
    let after_b = db_now(&cluster);
    pause().await;
    let switched = switch_wal(&cluster);
    // Committed durably (the testkit's servers default to synchronous_commit = off), so the
    // flushed WAL holds it.
    cluster.psql(
        "SET synchronous_commit = on;\n\
         INSERT INTO t VALUES ('C', 0);\nINSERT INTO t VALUES ('C', 1);",
    );
    let flushed = lsn(&cluster, "pg_current_wal_flush_lsn()");
    pause().await;
    let after_c = db_now(&cluster);

    // Generous times: every object starts at the backup and ends well after the last batch.
    let times = (
        summary.consistent_time,
        after_c + jiff::SignedDuration::from_hours(1),
    );
    let mut wal = Vec::new();
    for (i, s) in segments(&cluster, 1, summary.end_lsn, switched)
        .into_iter()
        .enumerate()
    {
        let object = put(
            &repo,
            i as u64 + 1,
            WalObjectKind::Segment,
            &s.name,
            s.start,
            s.bytes,
            times,
        )
        .await;
        wal.push(object);
    }
    assert!(flushed > switched && flushed.0 - switched.0 < SEG_SIZE);
    let name = switched.wal_file_name(1, SEG_SIZE);
    let current = std::fs::read(cluster.data_dir().join("pg_wal").join(&name)).unwrap();
    let partial = current[..(flushed.0 - switched.0) as usize].to_vec();
    let id = wal.len() as u64 + 1;
    wal.push(
        put(
            &repo,
            id,
            WalObjectKind::Partial,
            &name,
            switched,
            partial,
            times,
        )
        .await,
    );

    let base = BackupSet {
        id: BackupJobId(BACKUP_ID),
        cluster_id: cluster_id(),
        mode: JobMode::Manual,
        status: BackupSetStatus::Success,
        start_time: started,
        end_time: summary.consistent_time,
        consistent_time: Some(summary.consistent_time),
        size: summary.raw_bytes,
        stored_size: summary.stored_bytes,
        comment: None,
        wal: Some(WalRange {
            timeline: summary.timeline,
            start: summary.start_lsn,
            end: summary.end_lsn,
        }),
    };
    Source {
        _cluster: cluster,
        repo_dir,
        repo,
        base,
        wal,
        noted: [after_a, after_b, after_c],
    }
}

/// Restores to `target`, starts PostgreSQL on the result and returns the configured target,
/// the rows per batch ("A|3,B|4") and the server log.
async fn restore_and_start(
    src: &Source,
    major: u32,
    target: RecoveryTarget,
) -> (ConfiguredTarget, String, String) {
    let plan = plan_restore(std::slice::from_ref(&src.base), &src.wal, &[], target).unwrap();
    assert_eq!(
        plan.wal.len(),
        src.wal.len(),
        "the generous times keep every object"
    );
    let (scratch, dir) = restore_target();
    let progress = |_: u64, _: u64| {};
    let summary = restore_to_point(PitrRequest {
        plan: &plan,
        repo: &src.repo,
        target_dir: &dir,
        tablespace_mapping: &[],
        progress: &progress,
    })
    .await
    .unwrap();
    assert_eq!(summary.wal_files, src.wal.len());
    assert_eq!(
        summary.wal_bytes,
        src.wal.len() as u64 * SEG_SIZE,
        "the partial is padded"
    );
    assert_eq!(summary.timeline, 1);
    let partial = std::fs::metadata(dir.join(WAL_DIR).join(&src.wal.last().unwrap().object.name));
    assert_eq!(partial.unwrap().len(), SEG_SIZE);

    chown_to_postgres(scratch.path(), true);
    let restored = PgCluster::start_on_major(&dir, major);
    let mut in_recovery = String::new();
    for _ in 0..120 {
        in_recovery = restored.psql("SELECT pg_is_in_recovery();");
        if in_recovery == "f" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(in_recovery, "f", "promoted: {}", restored.log());
    let rows = restored
        .psql("SELECT string_agg(batch || '|' || n, ',' ORDER BY batch) FROM (SELECT batch, count(*) n FROM t GROUP BY batch) c;");
    // Read-write: a new row commits and reads back.
    restored.psql("INSERT INTO t VALUES ('after', 1);");
    assert_eq!(
        restored.psql("SELECT count(*) FROM t WHERE batch = 'after';"),
        "1"
    );
    let log = restored.log();
    drop(restored);
    drop(scratch);
    (summary.target, rows, log)
}

async fn scenario(major: u32) {
    let src = source(major).await;
    let [after_a, after_b, after_c] = src.noted;

    let (target, rows, log) = restore_and_start(&src, major, RecoveryTarget::Time(after_a)).await;
    assert_eq!(target, ConfiguredTarget::Time(after_a));
    assert_eq!(rows, "A|3", "{log}");
    assert!(log.contains("recovery stopping before commit"), "{log}");

    // The commit that stops replay is in the padded partial segment.
    let (target, rows, log) = restore_and_start(&src, major, RecoveryTarget::Time(after_b)).await;
    assert_eq!(target, ConfiguredTarget::Time(after_b));
    assert_eq!(rows, "A|3,B|4", "{log}");

    let (target, rows, log) = restore_and_start(&src, major, RecoveryTarget::Latest).await;
    assert_eq!(target, ConfiguredTarget::EndOfWal { requested: None });
    assert_eq!(rows, "A|3,B|4,C|2", "{log}");

    // No commit after the target was archived: PostgreSQL would refuse the target it never
    // reaches, so the restore replays everything, which is the state at the target.
    let (target, rows, log) = restore_and_start(&src, major, RecoveryTarget::Time(after_c)).await;
    assert_eq!(
        target,
        ConfiguredTarget::EndOfWal {
            requested: Some(after_c)
        }
    );
    assert_eq!(rows, "A|3,B|4,C|2", "{log}");
    drop(src.repo_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_to_a_point_in_time_on_postgresql_13() {
    scenario(13).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_to_a_point_in_time_on_postgresql_18() {
    scenario(18).await;
}
