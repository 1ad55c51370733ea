//! Restore to a point in time across a timeline switch, against real PostgreSQL (13 and the
//! newest): a standby (made from the engine's own backup) is promoted, the archive holds the
//! old timeline up to the switch (its last segment as a partial), the history file and the new
//! timeline, and restores land on either side of the switch.

mod pgwal;
mod pitrkit;

use pgwal::{db_now, lsn, segments, switch_wal, SEG_SIZE};
use pitrkit::{commit_batch, full_backup, pause, put, repo, restore_and_start};
use polarbackup_engine::{restore, ConfiguredTarget, RestoreRequest};
use polarbackup_model::log_backup::RecoveryTarget;
use polarbackup_model::{Lsn, WalObjectKind};
use polarbackup_testkit::pg::{chown_to_postgres, restore_target, PgCluster};
use std::time::Duration;

/// Polls `sql` on `cluster` until it answers `want`.
async fn wait_until(cluster: &PgCluster, sql: &str, want: &str) {
    for _ in 0..240 {
        if cluster.psql(sql) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{sql} never gave {want}: {}", cluster.log());
}

async fn scenario(major: u32) {
    let primary = PgCluster::init_major(major);
    primary.psql(
        "ALTER SYSTEM SET autovacuum = off; SELECT pg_reload_conf();\n\
         CREATE TABLE t (batch text, n int);",
    );
    let (repo_dir, repo) = repo();
    let base = full_backup(&primary, &repo, repo_dir.path()).await;
    let base_end = base.wal.unwrap().end;

    // A standby of the primary, from the same backup.
    let (standby_scratch, standby_dir) = restore_target();
    let progress = |_: u64, _: u64| {};
    restore(RestoreRequest {
        repo: &repo,
        backup_id: &base.id.to_string(),
        target: &standby_dir,
        tablespace_mapping: &[],
        progress: &progress,
        keep_partial: false,
    })
    .await
    .unwrap();
    std::fs::write(standby_dir.join("standby.signal"), "").unwrap();
    let conf = format!(
        "\nprimary_conninfo = 'host={} port={} user=postgres'\n",
        primary.socket_dir().display(),
        primary.port
    );
    let auto = standby_dir.join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&auto).unwrap();
    text += &conf;
    std::fs::write(&auto, text).unwrap();
    chown_to_postgres(standby_scratch.path(), true);
    let standby = PgCluster::start_on_major(&standby_dir, major);

    pause().await;
    commit_batch(&primary, "A", 2);
    pause().await;
    let after_a = db_now(&primary);
    pause().await;
    primary.psql("SET synchronous_commit = on;\nINSERT INTO t VALUES ('B', 0);");
    let sent = lsn(&primary, "pg_current_wal_flush_lsn()");
    wait_until(
        &standby,
        &format!("SELECT pg_last_wal_replay_lsn() >= '{sent}'::pg_lsn;"),
        "t",
    )
    .await;
    // The primary goes away; the standby takes over on timeline 2.
    primary.stop_immediate();
    assert_eq!(standby.psql("SELECT pg_promote(true, 60);"), "t");
    let history = std::fs::read_to_string(standby_dir.join("pg_wal/00000002.history")).unwrap();
    let switch: Lsn = history
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{history:?}"))
        .parse()
        .unwrap();
    assert!(switch > base_end);

    pause().await;
    let after_b = db_now(&standby);
    pause().await;
    commit_batch(&standby, "C", 3);
    pause().await;
    let after_c = db_now(&standby);
    pause().await;
    commit_batch(&standby, "D", 1);
    pause().await;
    let after_d = db_now(&standby);
    let end = switch_wal(&standby);

    // The archive: timeline 1 up to the switch (the last segment as a partial, cut at the
    // switch point), the history file, timeline 2 from the switch's segment on.
    let times = (
        base.consistent_time.unwrap(),
        after_d + jiff::SignedDuration::from_hours(1),
    );
    let switch_segment = switch.segment_start(SEG_SIZE);
    let mut wal = Vec::new();
    let mut id = 0u64;
    let mut bump = || {
        id += 1;
        id
    };
    if base_end < switch_segment {
        for s in segments(&primary, 1, base_end, switch_segment) {
            let kind = WalObjectKind::Segment;
            wal.push(put(&repo, bump(), kind, 1, &s.name, s.start, s.bytes, times).await);
        }
    }
    let old_name = switch.wal_file_name(1, SEG_SIZE);
    let old = std::fs::read(primary.data_dir().join("pg_wal").join(&old_name)).unwrap();
    let head = old[..(switch.0 - switch_segment.0) as usize].to_vec();
    let kind = WalObjectKind::Partial;
    wal.push(
        put(
            &repo,
            bump(),
            kind,
            1,
            &old_name,
            switch_segment,
            head,
            times,
        )
        .await,
    );
    let kind = WalObjectKind::History;
    let history_bytes = history.into_bytes();
    wal.push(
        put(
            &repo,
            bump(),
            kind,
            2,
            "00000002.history",
            switch,
            history_bytes,
            times,
        )
        .await,
    );
    for s in segments(&standby, 2, switch_segment, end) {
        let kind = WalObjectKind::Segment;
        wal.push(put(&repo, bump(), kind, 2, &s.name, s.start, s.bytes, times).await);
    }
    let run = |target| restore_and_start(&repo, std::slice::from_ref(&base), &wal, major, target);

    // Before the switch: replay stops on timeline 1, at B's commit.
    let r = run(RecoveryTarget::Time(after_a)).await;
    assert_eq!(r.summary.target, ConfiguredTarget::Time(after_a));
    assert_eq!(r.summary.timeline, 2);
    assert_eq!(r.rows, "A|2", "{}", r.log);

    // On the new timeline: the scan follows the switch to D's commit.
    let r = run(RecoveryTarget::Time(after_c)).await;
    assert_eq!(r.summary.target, ConfiguredTarget::Time(after_c));
    assert_eq!(r.rows, "A|2,B|1,C|3", "{}", r.log);

    // Between the switch and C: B is the last commit on the old timeline.
    let r = run(RecoveryTarget::Time(after_b)).await;
    assert_eq!(r.rows, "A|2,B|1", "{}", r.log);

    let r = run(RecoveryTarget::Latest).await;
    assert_eq!(r.rows, "A|2,B|1,C|3,D|1", "{}", r.log);
    drop(standby);
    drop(standby_scratch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_across_a_timeline_switch_on_postgresql_13() {
    scenario(13).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_across_a_timeline_switch_on_postgresql_18() {
    scenario(18).await;
}
