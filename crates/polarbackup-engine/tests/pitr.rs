//! Restore to a point in time against real PostgreSQL (13 and the newest): a full backup taken
//! by the engine, batches of rows committed around noted instants of the server's clock, the
//! source's WAL put into the repository as the archiver would (whole segments, then the segment
//! in progress as a partial), a plan from the model, and a plain `pg_ctl start` on each
//! restored directory: exactly the rows committed by the target, read-write.

mod pgwal;
mod pitrkit;

use pgwal::{db_now, lsn, segments, switch_wal, SEG_SIZE};
use pitrkit::{commit_batch, full_backup, pause, put, repo, restore_and_start};
use polarbackup_engine::ConfiguredTarget;
use polarbackup_model::log_backup::RecoveryTarget;
use polarbackup_model::{BackupSet, WalObject, WalObjectKind};
use polarbackup_repo::Repo;
use polarbackup_testkit::pg::PgCluster;

/// The instants and archive of the scenario.
struct Source {
    /// The source, kept running while its WAL is restored.
    _cluster: PgCluster,
    _repo_dir: tempfile::TempDir,
    repo: Repo,
    base: BackupSet,
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
    let base = full_backup(&cluster, &repo, repo_dir.path()).await;
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
        base,
        wal,
        noted: [after_a, after_b, after_c],
    }
}

async fn scenario(major: u32) {
    let src = source(major).await;
    let [after_a, after_b, after_c] = src.noted;
    let run = |target| restore_and_start(&src.repo, &src.base, &src.wal, major, target);

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
