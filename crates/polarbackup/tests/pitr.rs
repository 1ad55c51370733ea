//! `polarbackup restore --cluster … --recovery-time …` end to end on PostgreSQL 13 to 18: a
//! server archiving a real PostgreSQL's WAL, a full backup through CreateBackup, two batches of
//! rows around a noted instant of the database's clock, and restores to that instant and to
//! `latest`, started with a plain `pg_ctl start`. A time outside the recovery window is refused
//! before anything is written, with the window in the error.

mod common;

use common::{archiving_after_a_backup, bin, db_now, wait_for, Archiving};
use polarbackup_model::Lsn;
use polarbackup_store::prelude::*;
use polarbackup_testkit::pg::{chown_to_postgres, restore_target, PgCluster};
use polarbackup_testkit::Server;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn restore_cmd(server: &Server, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("restore")
        .args(args)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .output()
        .unwrap()
}

/// Restores `cluster` to `time` into a fresh directory, starts PostgreSQL on it and returns
/// the printed summary and the rows per batch.
fn restore_and_count(server: &Server, major: u32, cluster: &str, time: &str) -> (Value, String) {
    let (scratch, target) = restore_target();
    let out = restore_cmd(
        server,
        &[
            "--cluster",
            cluster,
            "--recovery-time",
            time,
            "--target-dir",
            target.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "restore to {time}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    chown_to_postgres(scratch.path(), true);
    let restored = PgCluster::start_on_major(&target, major);
    wait_for(
        "promotion",
        60,
        || restored.log(),
        || (restored.psql("SELECT pg_is_in_recovery();") == "f").then_some(()),
    );
    // The end of recovery removed the WAL the restore wrote (`recovery_end_command`).
    wait_for(
        "the restored WAL to be removed",
        30,
        || restored.log(),
        || (!target.join("polarbackup_wal").exists()).then_some(()),
    );
    let rows = restored.psql(
        "SELECT string_agg(batch || '|' || n, ',' ORDER BY batch) \
         FROM (SELECT batch, count(*) n FROM t GROUP BY batch) c;",
    );
    restored.psql("INSERT INTO t VALUES ('after', 0);");
    (printed, rows)
}

#[test]
fn postgresql_13_restores_to_a_point_in_time() {
    restores_to_a_point_in_time_and_refuses_one_outside_the_window(13);
}

#[test]
fn postgresql_14_restores_to_a_point_in_time() {
    restores_to_a_point_in_time_and_refuses_one_outside_the_window(14);
}

#[test]
fn postgresql_15_restores_to_a_point_in_time() {
    restores_to_a_point_in_time_and_refuses_one_outside_the_window(15);
}

#[test]
fn postgresql_16_restores_to_a_point_in_time() {
    restores_to_a_point_in_time_and_refuses_one_outside_the_window(16);
}

#[test]
fn postgresql_17_restores_to_a_point_in_time() {
    restores_to_a_point_in_time_and_refuses_one_outside_the_window(17);
}

#[test]
fn postgresql_18_restores_to_a_point_in_time() {
    restores_to_a_point_in_time_and_refuses_one_outside_the_window(18);
}

fn restores_to_a_point_in_time_and_refuses_one_outside_the_window(major: u32) {
    let pg = PgCluster::init_major(major);
    assert_eq!(pg.major(), major);
    pg.psql(
        "ALTER SYSTEM SET autovacuum = off;\nSELECT pg_reload_conf();\n\
         CREATE TABLE t (batch text, n int);",
    );
    let Archiving {
        server,
        tenant: t,
        cluster,
        store,
    } = archiving_after_a_backup(&pg);

    let pause = || std::thread::sleep(Duration::from_millis(1100));
    pause();
    pg.psql("INSERT INTO t VALUES ('A', 1);\nINSERT INTO t VALUES ('A', 2);");
    pause();
    let between = db_now(&pg);
    pause();
    pg.psql("SET synchronous_commit = on;\nINSERT INTO t VALUES ('B', 1);");
    let flushed: Lsn = pg
        .psql("SELECT pg_current_wal_flush_lsn();")
        .parse()
        .unwrap();
    wait_for(
        "the archive to hold batch B",
        60,
        || server.log(),
        || {
            let wal = store.wal_objects(&cluster).unwrap();
            wal.iter().any(|w| w.object.end >= flushed).then_some(())
        },
    );

    let (printed, rows) = restore_and_count(&server, major, &t.cluster_id, &between);
    assert_eq!(rows, "A|2", "{printed}");
    assert_eq!(printed["RecoveryTarget"], "Time", "{printed}");
    assert_eq!(printed["RecoveryTime"], between.as_str());

    let (printed, rows) = restore_and_count(&server, major, &t.cluster_id, "latest");
    assert_eq!(rows, "A|2,B|1", "{printed}");
    assert_eq!(printed["RecoveryTarget"], "Latest", "{printed}");

    // Before the backup: outside the window, refused before anything is written.
    let scratch = tempfile::tempdir().unwrap();
    let target = scratch.path().join("never");
    let out = restore_cmd(
        &server,
        &[
            "--cluster",
            &t.cluster_id,
            "--recovery-time",
            "2001-02-03T04:05:06Z",
            "--target-dir",
            target.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("2001-02-03T04:05:06Z is outside the recovery window") && err.contains(" to "),
        "{err}"
    );
    assert!(!target.exists(), "nothing is written");
}

#[test]
fn the_command_line_takes_a_backup_or_a_cluster_and_a_time() {
    let server = common::shared();
    let t = common::tenant();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    let target = target.to_str().unwrap();
    let refused = |args: &[&str], needle: &str| {
        let out = restore_cmd(server, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!Path::new(target).exists());
    };
    refused(&["--target-dir", target], "--backup-id");
    refused(
        &["--cluster", &t.cluster_id, "--target-dir", target],
        "--recovery-time",
    );
    refused(
        &[
            "--backup-id",
            "1",
            "--recovery-time",
            "latest",
            "--target-dir",
            target,
        ],
        "cannot be used with",
    );
    refused(
        &[
            "--cluster",
            &t.cluster_id,
            "--recovery-time",
            "yesterday",
            "--target-dir",
            target,
        ],
        "RFC 3339",
    );
    refused(
        &[
            "--cluster",
            "pc-NoSuchCluster",
            "--recovery-time",
            "latest",
            "--target-dir",
            target,
        ],
        "--cluster must be a cluster id",
    );
    refused(
        &[
            "--cluster",
            "pc-nosuchcluster12",
            "--recovery-time",
            "latest",
            "--target-dir",
            target,
        ],
        "does not exist",
    );
    // A cluster without a backup has no window at all.
    refused(
        &[
            "--cluster",
            &t.cluster_id,
            "--recovery-time",
            "latest",
            "--target-dir",
            target,
        ],
        "no usable full backup",
    );
}
