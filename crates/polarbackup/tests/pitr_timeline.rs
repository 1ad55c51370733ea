//! A point-in-time restore across a timeline switch, end to end on PostgreSQL 13 and 18: `serve`
//! archives a primary reached through the testkit's proxy (the cluster's address), a full
//! backup comes from CreateBackup, a streaming standby is promoted once the primary stops and
//! the address moves to it. The archive keeps timeline 1 up to the switch, the history file
//! and timeline 2 with no gap; a restore to an instant on timeline 2 and one to `latest`,
//! started with a plain `pg_ctl start`, hold exactly the rows committed before each.

mod common;

use common::{bin, create_backup_v3, db_now, wait_for, wait_for_slot, wire_body};
use jiff::Timestamp;
use polarbackup_model::log_backup::{recovery_window, slot_name};
use polarbackup_model::{BackupSetStatus, DbClusterId, Lsn, WalObject, WalObjectKind};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::pg::{
    as_postgres, chown_to_postgres, restore_target, server_bin_dir, PgCluster,
};
use polarbackup_testkit::{request, sdk, Server, Tenant, ThrottledProxy};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SEG: u64 = 16 << 20;

fn flushed(pg: &PgCluster) -> Lsn {
    pg.psql("SELECT pg_current_wal_flush_lsn();")
        .parse()
        .unwrap()
}

/// Commits `n` rows of `batch`, flushed before it returns.
fn commit_batch(pg: &PgCluster, batch: &str, n: u32) {
    pg.psql(&format!(
        "SET synchronous_commit = on;\n\
         INSERT INTO t SELECT '{batch}', i FROM generate_series(1, {n}) i;"
    ));
}

/// Commit times a whole second apart, so that an instant noted between two batches lies
/// strictly between their commits, even at the API's one-second resolution.
fn pause() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// `pg_ctl ARGS` of `major` on `data`, as `postgres`.
fn pg_ctl(major: u32, data: &Path, args: &[&str]) {
    let mut all = vec!["-D", data.to_str().unwrap(), "-w", "-t", "120"];
    all.extend_from_slice(args);
    let out = as_postgres(&server_bin_dir(major).join("pg_ctl"), &all);
    assert!(
        out.status.success(),
        "pg_ctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// DescribeLocalAvailableRecoveryTime through the SDK: (begin, end).
fn api_window(server: &Server, t: &Tenant) -> (Timestamp, Timestamp) {
    let mut req = request("v3", server, t, json!({"DBClusterId": t.cluster_id}));
    req["action"] = json!("DescribeLocalAvailableRecoveryTime");
    let res = sdk(req);
    assert_eq!(
        res["ok"], true,
        "DescribeLocalAvailableRecoveryTime: {res:#}"
    );
    let body = wire_body(&res);
    let at = |field: &str| -> Timestamp {
        body[field]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{field} in {res:#}"))
    };
    (at("RecoveryBeginTime"), at("RecoveryEndTime"))
}

/// `polarbackup restore ARGS --data-dir …` into a fresh directory, then PostgreSQL of `major`
/// started on it, out of recovery. Returns the printed summary, the restored server and the
/// directory that holds it (keep it alive).
fn restore(server: &Server, major: u32, args: &[&str]) -> (Value, PgCluster, tempfile::TempDir) {
    let (scratch, target) = restore_target();
    let out = Command::new(bin())
        .arg("restore")
        .args(args)
        .arg("--target-dir")
        .arg(&target)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    chown_to_postgres(scratch.path(), true);
    let pg = PgCluster::start_on_major(&target, major);
    (printed, pg, scratch)
}

/// A point-in-time restore started with `pg_ctl start`: once it opens read-write, its rows
/// per batch and the timeline it writes on.
fn restore_to(server: &Server, cluster: &str, major: u32, time: &str) -> (Value, String, u32) {
    let args = ["--cluster", cluster, "--recovery-time", time];
    let (printed, pg, _scratch) = restore(server, major, &args);
    wait_for(
        &format!("the restore to {time} to open read-write"),
        180,
        || pg.log(),
        || (pg.psql("SELECT pg_is_in_recovery();") == "f").then_some(()),
    );
    let rows = pg.psql(
        "SELECT string_agg(batch || '|' || n, ',' ORDER BY batch) \
         FROM (SELECT batch, count(*) n FROM t GROUP BY batch) c;",
    );
    pg.psql("INSERT INTO t VALUES ('after', 0);");
    // A checkpoint records the timeline the server now writes on.
    let timeline = pg
        .psql("CHECKPOINT;\nSELECT timeline_id FROM pg_control_checkpoint();")
        .parse()
        .unwrap();
    (printed, rows, timeline)
}

fn scenario(major: u32) {
    let primary = PgCluster::init_major(major);
    assert_eq!(primary.major(), major);
    primary.psql(
        "ALTER SYSTEM SET autovacuum = off;\nSELECT pg_reload_conf();\n\
         CREATE TABLE t (batch text, n int);",
    );
    // The cluster's address: the primary now, the promoted standby later.
    let address = ThrottledProxy::start(primary.port, 0);
    let server = Server::start(
        bin(),
        None,
        &["--log-backup", "on", "--wal-partial-secs", "1"],
    );
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, address.port(), "postgres");
    let cluster = DbClusterId::parse(&t.cluster_id).unwrap();
    let store = SqliteStore::open(&server.data_dir).unwrap();

    let slot = slot_name(&cluster);
    wait_for_slot(&server, &primary, &slot, 120);
    create_backup_v3(&server, &t);
    let base = wait_for(
        "the full backup",
        180,
        || server.log(),
        || {
            let sets = store.cluster_sets(&cluster).unwrap();
            assert!(
                sets.iter().all(|s| s.status == BackupSetStatus::Success),
                "{sets:?}\n{}",
                server.log()
            );
            sets.into_iter().next()
        },
    );

    // A streaming standby, from that very backup (the newest client programs may not
    // stream from a newer server, so no pg_basebackup).
    let (standby_scratch, standby_dir) = restore_target();
    let out = server.restore(&base.id.to_string(), &standby_dir, &[]);
    assert!(
        out.status.success(),
        "restore of the standby: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(standby_dir.join("standby.signal"), "").unwrap();
    let auto = standby_dir.join("postgresql.auto.conf");
    let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
    conf += &format!(
        "\nprimary_conninfo = 'host={} port={} user=postgres'\n",
        primary.socket_dir().display(),
        primary.port
    );
    std::fs::write(&auto, conf).unwrap();
    chown_to_postgres(standby_scratch.path(), true);
    let standby = PgCluster::start_on_major(&standby_dir, major);
    let standby_log = || format!("{}\n---- standby ----\n{}", server.log(), standby.log());

    pause();
    commit_batch(&primary, "A", 2);
    let a_end = flushed(&primary);
    wait_for("the standby to replay A", 120, standby_log, || {
        let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{a_end}'::pg_lsn;");
        (standby.psql(&sql) == "t").then_some(())
    });

    // Switch-over: the primary stops cleanly (its last WAL reaches the standby), the standby
    // takes over on timeline 2 and the cluster's address moves to it.
    pg_ctl(major, primary.data_dir(), &["-m", "fast", "stop"]);
    assert_eq!(
        standby.psql("SELECT pg_promote(true, 60);"),
        "t",
        "{}",
        standby_log()
    );
    address.set_target(standby.port);
    let history = std::fs::read_to_string(standby_dir.join("pg_wal/00000002.history")).unwrap();
    let switch: Lsn = history
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{history:?}"))
        .parse()
        .unwrap();
    let new_primary = &standby;

    pause();
    commit_batch(new_primary, "B", 3);
    pause();
    let between = db_now(new_primary);
    let between_ts: Timestamp = between.parse().unwrap();
    pause();
    commit_batch(new_primary, "C", 1);
    let c_end = flushed(new_primary);

    // The window reaches past C's commit: its WAL is archived on timeline 2, and the window's
    // end (the server's clock when it sent that WAL) is a second past the noted instant.
    let on_two = |w: &WalObject| w.object.timeline == 2 && w.object.kind != WalObjectKind::History;
    let window = wait_for(
        "the recovery window to reach past C",
        180,
        standby_log,
        || {
            let inputs = store.recovery_inputs(&cluster).unwrap();
            let archived = inputs
                .wal
                .iter()
                .any(|w| on_two(w) && w.object.end >= c_end);
            let window = recovery_window(&inputs.sets, &inputs.wal, &inputs.gaps)?;
            (archived && window.end >= between_ts + jiff::SignedDuration::from_secs(1))
                .then_some(window)
        },
    );
    let (begin, end) = api_window(&server, &t);
    // One backup and no gap: the window opens at that backup, the second after its
    // consistent time (kept to the second).
    let consistent = base.consistent_time.unwrap().as_second() + 1;
    assert_eq!(window.begin.as_second(), consistent);
    assert_eq!(begin.as_second(), consistent);
    assert!(
        end > between_ts,
        "the API's window ends at {end}, before {between}"
    );

    // The archive: timeline 1 up to the switch (its last segment a partial cut there), the
    // history file, timeline 2 from the switch's segment on, and no gap.
    let wal = store.wal_objects(&cluster).unwrap();
    let listing = || format!("{:#?}", wal.iter().map(|w| &w.object).collect::<Vec<_>>());
    let h = wal
        .iter()
        .find(|w| w.object.kind == WalObjectKind::History)
        .unwrap_or_else(|| panic!("no history file in {}", listing()));
    assert_eq!(
        (h.object.timeline, h.object.name.as_str(), h.object.end),
        (2, "00000002.history", switch),
        "{}",
        listing()
    );
    let last_one = wal
        .iter()
        .filter(|w| w.object.timeline == 1)
        .max_by_key(|w| w.object.end)
        .unwrap();
    assert_eq!(
        (last_one.object.kind, last_one.object.end),
        (WalObjectKind::Partial, switch),
        "{}",
        listing()
    );
    let first_two = wal
        .iter()
        .filter(|w| on_two(w))
        .min_by_key(|w| w.object.start)
        .unwrap_or_else(|| panic!("nothing on timeline 2 in {}", listing()));
    assert_eq!(first_two.object.start, switch.segment_start(SEG));
    assert_eq!(store.gaps(&cluster).unwrap(), vec![]);
    assert_eq!(
        store.cluster_sets(&cluster).unwrap().len(),
        1,
        "no new backup"
    );

    // Between B and C, on timeline 2: exactly A and B, then a timeline of its own.
    let (printed, rows, timeline) = restore_to(&server, &t.cluster_id, major, &between);
    assert_eq!(rows, "A|2,B|3", "{printed}");
    assert_eq!(printed["RecoveryTarget"], "Time", "{printed}");
    assert_eq!(printed["Timeline"], 2, "{printed}");
    assert_eq!(timeline, 3, "a timeline of its own after 2");

    let (printed, rows, timeline) = restore_to(&server, &t.cluster_id, major, "latest");
    assert_eq!(rows, "A|2,B|3,C|1", "{printed}");
    assert_eq!(printed["RecoveryTarget"], "Latest", "{printed}");
    assert_eq!(printed["Timeline"], 2, "{printed}");
    assert_eq!(timeline, 3, "a timeline of its own after 2");
}

#[test]
fn restores_after_a_timeline_switch_on_postgresql_13() {
    scenario(13);
}

#[test]
fn restores_after_a_timeline_switch_on_postgresql_18() {
    scenario(18);
}
