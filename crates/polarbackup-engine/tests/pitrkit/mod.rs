//! Shared by the point-in-time restore tests: a full backup by the engine, WAL objects put into
//! the repository as the archiver would, and a restore started with a plain `pg_ctl start`.

#![allow(dead_code)]

use polarbackup_engine::pg::{ConnectConfig, PgHost, TlsMode};
use polarbackup_engine::{
    backup, restore_to_point, BackupRequest, BackupSummary, Phase, PitrRequest, PitrSummary,
    ProgressSink,
};
use polarbackup_model::log_backup::{plan_restore, RecoveryTarget};
use polarbackup_model::{
    BackupJobId, BackupLogId, BackupSet, BackupSetStatus, DbClusterId, JobMode, Lsn, NewWalObject,
    SystemClock, WalObject, WalObjectKind, WalRange,
};
use polarbackup_repo::{Repo, RepoConfig};
use polarbackup_testkit::pg::{chown_to_postgres, restore_target, PgCluster};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const CLUSTER: &str = "pc-pitrpitrpitrpit";
pub const BACKUP_ID: u64 = 7;

struct Quiet;

impl ProgressSink for Quiet {
    fn report(&self, _: Phase) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

pub fn cluster_id() -> DbClusterId {
    DbClusterId::parse(CLUSTER).unwrap()
}

/// A repository in its own temporary directory.
pub fn repo() -> (tempfile::TempDir, Repo) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(&dir.path().join("repo"), RepoConfig::default()).unwrap();
    (dir, repo)
}

/// A full backup of `cluster` by the engine, as set [`BACKUP_ID`], and its set record.
pub async fn full_backup(cluster: &PgCluster, repo: &Repo, scratch: &Path) -> BackupSet {
    backup_as(cluster, repo, scratch, BACKUP_ID, None).await
}

/// A backup of `cluster` by the engine as set `id`, incremental on `parent` when given (the
/// engine may still take it full), and its set record.
pub async fn backup_as(
    cluster: &PgCluster,
    repo: &Repo,
    scratch: &Path,
    id: u64,
    parent: Option<u64>,
) -> BackupSet {
    let mut cfg = ConnectConfig::new(
        PgHost::Unix(cluster.socket_dir().to_path_buf()),
        cluster.port,
        "postgres",
    );
    cfg.tls = TlsMode::Disable;
    let started = crate::pgwal::db_now(cluster);
    let summary: BackupSummary = backup(BackupRequest {
        backup_id: &id.to_string(),
        source: &cfg,
        repo,
        scratch,
        progress: &Quiet,
        cancel: &CancellationToken::new(),
        clock: Arc::new(SystemClock),
        stall: polarbackup_engine::DEFAULT_STALL,
        parent: parent.map(|p| p.to_string()),
    })
    .await
    .unwrap();
    BackupSet {
        id: BackupJobId(id),
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
        corrupt: None,
        parent: summary.parent.map(|p| BackupJobId(p.parse().unwrap())),
    }
}

/// Stores `bytes` as WAL object `id` and returns its record. `start` is where the object's
/// WAL begins (for a history file: where its timeline begins).
#[allow(clippy::too_many_arguments)]
pub async fn put(
    repo: &Repo,
    id: u64,
    kind: WalObjectKind,
    timeline: u32,
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
            timeline,
            kind,
            name: name.to_owned(),
            start,
            end: match kind {
                WalObjectKind::History => start,
                _ => start + size,
            },
            size,
            stored_size: stored.stored_size,
            key: stored.key,
            digest: stored.digest,
            start_time: times.0,
            end_time: times.1,
        },
    }
}

/// A restored and started cluster: what the restore configured, the rows per batch
/// ("A|3,B|4") and the server log.
pub struct Restored {
    pub summary: PitrSummary,
    pub rows: String,
    pub log: String,
}

/// Plans a restore to `target` from `sets` (the base and the sets it is built on) and `wal`,
/// restores it, starts PostgreSQL `major` on the result with a plain `pg_ctl start`, waits for
/// promotion and checks it takes writes.
pub async fn restore_and_start(
    repo: &Repo,
    sets: &[BackupSet],
    wal: &[WalObject],
    major: u32,
    target: RecoveryTarget,
) -> Restored {
    let plan = plan_restore(sets, wal, &[], target).unwrap();
    assert_eq!(
        plan.wal.len(),
        wal.len(),
        "the generous times keep every object"
    );
    let (scratch, dir) = restore_target();
    let progress = |_: u64, _: u64| {};
    let summary = restore_to_point(PitrRequest {
        plan: &plan,
        repo,
        target_dir: &dir,
        tablespace_mapping: &[],
        progress: &progress,
        keep_partial: false,
    })
    .await
    .unwrap();
    assert_eq!(summary.wal_files, wal.len());
    assert_eq!(summary.timeline, plan.timeline);

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
    let rows = restored.psql(
        "SELECT string_agg(batch || '|' || n, ',' ORDER BY batch) \
         FROM (SELECT batch, count(*) n FROM t GROUP BY batch) c;",
    );
    // Read-write: a new row commits and reads back.
    restored.psql("INSERT INTO t VALUES ('after', 1);");
    assert_eq!(
        restored.psql("SELECT count(*) FROM t WHERE batch = 'after';"),
        "1"
    );
    let log = restored.log();
    drop(restored);
    drop(scratch);
    Restored { summary, rows, log }
}

/// Commits `rows` rows of `batch`, one transaction each.
pub fn commit_batch(source: &PgCluster, batch: &str, rows: u32) {
    let mut script = String::new();
    for n in 0..rows {
        script += &format!("INSERT INTO t VALUES ('{batch}', {n});\n");
    }
    source.psql(&script);
}

/// A short pause, so that an instant noted between two batches lies strictly between their
/// commits.
pub async fn pause() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}
