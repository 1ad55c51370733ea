//! Restore to a point in time against real PostgreSQL (13 and the newest): a full backup taken
//! by the engine, batches of rows committed around noted instants of the server's clock, the
//! source's WAL put into the repository as the archiver would (whole segments, then the segment
//! in progress as a partial), a plan from the model, and a plain `pg_ctl start` on each
//! restored directory: exactly the rows committed by the target, read-write. And restores
//! that fail: refused before anything is written, or stopped midway, what was written removed.

mod pgwal;
mod pitrkit;

use pgwal::{db_now, lsn, segments, switch_wal, SEG_SIZE};
use pitrkit::{
    backup_as, commit_batch, full_backup, pause, put, repo, restore_and_start, BACKUP_ID,
};
use polarbackup_engine::{restore_to_point, ConfiguredTarget, PitrRequest, PitrSummary};
use polarbackup_model::log_backup::{RecoveryTarget, RestorePlan};
use polarbackup_model::{BackupJobId, BackupSet, WalObject, WalObjectKind};
use polarbackup_repo::Repo;
use polarbackup_testkit::pg::{restore_target, PgCluster};
use std::path::Path;

/// The instants and archive of the scenario.
struct Source {
    /// The source, kept running while its WAL is restored.
    _cluster: PgCluster,
    _repo_dir: tempfile::TempDir,
    repo: Repo,
    /// The base and the sets it is built on.
    sets: Vec<BackupSet>,
    wal: Vec<WalObject>,
    /// After A, after B, after C.
    noted: [jiff::Timestamp; 3],
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
    let (repo_dir, repo) = repo();
    // From 17 on, the base is PostgreSQL's own incremental backup on an earlier full one, so
    // the restore rebuilds the chain before it replays.
    let sets = if major >= 17 {
        cluster.psql("ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf(); CHECKPOINT;");
        let full = backup_as(&cluster, &repo, repo_dir.path(), BACKUP_ID + 1000, None).await;
        cluster.psql("CREATE TABLE before_incremental AS SELECT generate_series(1, 5000) AS n;");
        let base = backup_as(
            &cluster,
            &repo,
            repo_dir.path(),
            BACKUP_ID,
            Some(BACKUP_ID + 1000),
        )
        .await;
        assert_eq!(base.parent, Some(BackupJobId(BACKUP_ID + 1000)));
        let m = repo
            .manifest(&BACKUP_ID.to_string())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.meta["incremental"], "native");
        vec![full, base]
    } else {
        let base = full_backup(&cluster, &repo, repo_dir.path()).await;
        vec![base]
    };
    let base = sets.last().unwrap().clone();
    let base_end = base.wal.unwrap().end;

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
        base.consistent_time.unwrap(),
        after_c + jiff::SignedDuration::from_hours(1),
    );
    let mut wal = Vec::new();
    for s in segments(&cluster, 1, base_end, switched) {
        let id = wal.len() as u64 + 1;
        let kind = WalObjectKind::Segment;
        wal.push(put(&repo, id, kind, 1, &s.name, s.start, s.bytes, times).await);
    }
    assert!(flushed > switched && flushed.0 - switched.0 < SEG_SIZE);
    let name = switched.wal_file_name(1, SEG_SIZE);
    let current = std::fs::read(cluster.data_dir().join("pg_wal").join(&name)).unwrap();
    let partial = current[..(flushed.0 - switched.0) as usize].to_vec();
    let id = wal.len() as u64 + 1;
    let kind = WalObjectKind::Partial;
    wal.push(put(&repo, id, kind, 1, &name, switched, partial, times).await);
    Source {
        _cluster: cluster,
        _repo_dir: repo_dir,
        repo,
        sets,
        wal,
        noted: [after_a, after_b, after_c],
    }
}

async fn scenario(major: u32) {
    let src = source(major).await;
    let [after_a, after_b, after_c] = src.noted;
    let run = |target| restore_and_start(&src.repo, &src.sets, &src.wal, major, target);

    let r = run(RecoveryTarget::Time(after_a)).await;
    assert_eq!(r.summary.target, ConfiguredTarget::Time(after_a));
    assert_eq!(r.rows, "A|3", "{}", r.log);
    assert!(
        r.log.contains("recovery stopping before commit"),
        "{}",
        r.log
    );
    assert_eq!(
        r.summary.wal_bytes,
        src.wal.len() as u64 * SEG_SIZE,
        "the partial is written padded to a whole segment"
    );
    assert_eq!(r.summary.timeline, 1);

    // The commit that stops replay is in the padded partial segment.
    let r = run(RecoveryTarget::Time(after_b)).await;
    assert_eq!(r.summary.target, ConfiguredTarget::Time(after_b));
    assert_eq!(r.rows, "A|3,B|4", "{}", r.log);

    let r = run(RecoveryTarget::Latest).await;
    assert_eq!(
        r.summary.target,
        ConfiguredTarget::EndOfWal { requested: None }
    );
    assert_eq!(r.rows, "A|3,B|4,C|2", "{}", r.log);

    // No commit after the target was archived: PostgreSQL would refuse the target it never
    // reaches, so the restore replays everything, which is the state at the target.
    let r = run(RecoveryTarget::Time(after_c)).await;
    assert_eq!(
        r.summary.target,
        ConfiguredTarget::EndOfWal {
            requested: Some(after_c)
        }
    );
    assert_eq!(r.rows, "A|3,B|4,C|2", "{}", r.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_to_a_point_in_time_on_postgresql_13() {
    scenario(13).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_to_a_point_in_time_on_postgresql_18() {
    scenario(18).await;
}

/// A plan that replays `wal` after `base` to its end.
fn replay_all(base: &BackupSet, wal: &[WalObject]) -> RestorePlan {
    RestorePlan {
        base: base.clone(),
        wal: wal.to_vec(),
        timeline: base.wal.unwrap().timeline,
        target_time: None,
        reaches: base.consistent_time.unwrap(),
    }
}

/// The restore's error, as the command prints it.
async fn restore_error(repo: &Repo, plan: &RestorePlan, dir: &Path) -> String {
    let progress = |_: u64, _: u64| {};
    let restored: Result<PitrSummary, _> = restore_to_point(PitrRequest {
        plan,
        repo,
        target_dir: dir,
        tablespace_mapping: &[],
        progress: &progress,
        keep_partial: false,
    })
    .await;
    restored.expect_err("the restore fails").to_string()
}

/// The backup and the segment it ends in, stored in `repo`.
async fn base_and_segment(
    source: &PgCluster,
    repo: &Repo,
    scratch: &Path,
) -> (BackupSet, WalObject) {
    let base = full_backup(source, repo, scratch).await;
    let range = base.wal.unwrap();
    let start = range.end.segment_start(SEG_SIZE);
    let name = start.wal_file_name(range.timeline, SEG_SIZE);
    let bytes = std::fs::read(source.data_dir().join("pg_wal").join(&name)).unwrap();
    let at = base.consistent_time.unwrap();
    let kind = WalObjectKind::Segment;
    let segment = put(repo, 1, kind, range.timeline, &name, start, bytes, (at, at)).await;
    (base, segment)
}

/// No recovery is configured in `dir`, so it cannot pass for a finished restore: the restore
/// emptied the directory (it was empty before) and wrote no `global/pg_control`.
fn assert_unconfigured(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "left behind in {}: {left:?}",
        dir.display()
    );
    assert!(!dir.join("global/pg_control").exists());
    assert!(!dir.join("recovery.signal").exists());
    let auto = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap_or_default();
    assert!(!auto.contains("polarbackup"), "{auto}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_restore_is_refused_up_front_or_said_to_be_incomplete() {
    let source = PgCluster::init();
    let (repo_dir, repo) = repo();
    let (base, segment) = base_and_segment(&source, &repo, repo_dir.path()).await;
    let plan = replay_all(&base, std::slice::from_ref(&segment));

    // A target that is not empty is refused before the WAL directory is made in it.
    let (_scratch, dir) = restore_target();
    std::fs::write(dir.join("keep"), "").unwrap();
    let err = restore_error(&repo, &plan, &dir).await;
    assert!(
        err.contains("not empty") && !err.contains("incomplete"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["keep"]);

    // A WAL object that fails its check while the base is restored: the object's error, not
    // the base's cancellation, and the directory said to be incomplete.
    let mut damaged = segment.clone();
    damaged.object.digest = "0".repeat(64);
    let (_scratch, dir) = restore_target();
    let err = restore_error(&repo, &replay_all(&base, &[damaged]), &dir).await;
    assert!(
        err.contains(&segment.object.name) && err.contains("BLAKE3"),
        "{err}"
    );
    assert!(
        err.contains("incomplete") && !err.contains("cancelled"),
        "{err}"
    );
    assert_unconfigured(&dir);

    // A source restored to a point in time keeps its polarbackup_wal/ until its recovery ends
    // (or when an older polarbackup restored it):
    // its old files are never mixed with the plan's.
    let own = source.data_dir().join("polarbackup_wal");
    std::fs::create_dir(&own).unwrap();
    std::fs::write(own.join("00000001.history"), "").unwrap();
    let (repo2_dir, repo2) = pitrkit::repo();
    let (base2, segment2) = base_and_segment(&source, &repo2, repo2_dir.path()).await;
    let (_scratch, dir) = restore_target();
    let err = restore_error(&repo2, &replay_all(&base2, &[segment2]), &dir).await;
    assert!(
        err.contains("00000001.history") && err.contains("not in the plan"),
        "{err}"
    );
    assert!(err.contains("incomplete"), "{err}");
    assert_unconfigured(&dir);

    // The base fails (its archive lost a chunk) while the WAL is fetched: the base's error.
    let chunks = repo_dir
        .path()
        .join(format!("repo/backups/{}/base.tar", base.id));
    let last = std::fs::read_dir(&chunks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    std::fs::remove_file(&last).unwrap();
    let (_scratch, dir) = restore_target();
    let err = restore_error(&repo, &plan, &dir).await;
    assert!(
        err.contains("base.tar") && err.contains("incomplete"),
        "{err}"
    );
    assert!(!err.contains("cancelled"), "{err}");
    assert_unconfigured(&dir);
}
