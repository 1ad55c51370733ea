//! `serve --test-controls` through the real binary, a real PostgreSQL and the official SDK:
//! moving the clock past a backup window makes an Automated job appear and finish (while the
//! SDK's real-time signatures still pass); a fault injected at Uploading ends the job Failed
//! with its reason, its data removed, and only as many times as asked; `--slow-mibps` holds an
//! upload until cleared, and a clock moved meanwhile does not make its lease look lapsed; a
//! server without the flag refuses every such command.

mod common;

use common::{bin, call_v3, create_backup_v3, wait_for, wire_body};
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::{Clock, SystemClock};
use polarbackup_testkit::pg::PgCluster;
use polarbackup_testkit::{Server, Tenant};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const REFUSED: &str = "was not started with --test-controls";

/// A server with test controls, and a tenant whose cluster is `pg`.
fn controlled(pg: &PgCluster, extra: &[&str]) -> (Server, Tenant) {
    let mut args = vec!["--test-controls"];
    args.extend_from_slice(extra);
    let server = Server::start(bin(), None, &args);
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, pg.port, "postgres");
    (server, t)
}

/// The tenant's jobs as DescribeBackupTasks (V3 SDK) lists them, newest first.
fn jobs(server: &Server, t: &Tenant, filter: Value) -> Vec<Value> {
    let mut params = json!({"DBClusterId": t.cluster_id});
    params
        .as_object_mut()
        .expect("object")
        .extend(filter.as_object().cloned().unwrap_or_default());
    let res = call_v3(server, t, "DescribeBackupTasks", params);
    assert_eq!(res["ok"], true, "DescribeBackupTasks: {res:#}");
    wire_body(&res)["Items"]["BackupJob"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn job(server: &Server, t: &Tenant, id: &str) -> Value {
    jobs(server, t, json!({"BackupJobId": id}))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("job {id} is not listed"))
}

/// Polls the job until it is Finished or Failed.
fn ended(server: &Server, t: &Tenant, id: &str) -> Value {
    wait_for(
        "the job to end",
        180,
        || server.log(),
        || {
            let j = job(server, t, id);
            ["Finished", "Failed"]
                .contains(&j["BackupProgressStatus"].as_str().unwrap_or_default())
                .then_some(j)
        },
    )
}

/// `admin fault inject --cluster` the tenant's cluster, with `args`.
fn inject(server: &Server, t: &Tenant, args: &[&str]) -> Value {
    let mut all = vec!["fault", "inject", "--cluster", &t.cluster_id];
    all.extend_from_slice(args);
    server.admin(&all)
}

fn repo_has(data_dir: &Path, id: &str) -> bool {
    data_dir.join("repo").join("backups").join(id).exists()
}

/// The window one hour long starting `hours` whole hours from now (UTC).
fn window_in(hours: i64) -> String {
    let hour = (SystemClock.now() + SignedDuration::from_hours(hours))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .hour();
    format!("{:02}:00Z-{:02}:00Z", hour, (hour + 1) % 24)
}

#[test]
fn advancing_the_clock_past_a_backup_window_runs_an_automated_backup_to_finished() {
    let pg = PgCluster::init();
    let (server, t) = controlled(&pg, &["--scheduler", "on"]);
    let window = window_in(3);
    let res = call_v3(
        &server,
        &t,
        "ModifyBackupPolicy",
        json!({
            "DBClusterId": t.cluster_id,
            "PreferredBackupTime": window,
            "PreferredBackupPeriod": "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
        }),
    );
    assert_eq!(res["ok"], true, "{res:#}");
    // The window is hours away: a few scheduler passes (every 2 s) queue nothing.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        jobs(&server, &t, json!({"BackupMode": "Automated"})),
        Vec::<Value>::new(),
        "nothing is due before the window\n{}",
        server.log()
    );
    let shown = server.admin(&["clock", "show"]);
    assert_eq!(shown["OffsetSeconds"], 0, "{shown}");

    let before = SystemClock.now();
    let moved = server.admin(&["clock", "advance", "--by", "25h"]);
    assert_eq!(moved["OffsetSeconds"], 90_000, "{moved}");
    let now: Timestamp = moved["Now"].as_str().expect("Now").parse().expect("a time");
    assert!(now >= before + SignedDuration::from_hours(25), "{moved}");
    assert_eq!(server.admin(&["clock", "show"])["OffsetSeconds"], 90_000);

    // SDK calls, signed with the real time, still pass; the window has passed for the server.
    let automated = wait_for(
        "an automated job",
        60,
        || server.log(),
        || {
            jobs(&server, &t, json!({"BackupMode": "Automated"}))
                .into_iter()
                .next()
        },
    );
    let id = automated["BackupJobId"].as_str().expect("id").to_owned();
    let done = ended(&server, &t, &id);
    assert_eq!(
        done["BackupProgressStatus"],
        "Finished",
        "{done:#}\n{}",
        server.log()
    );
    assert_eq!(done["JobMode"], "Automated");
    assert_eq!(done["TaskAction"], "NormalBackupTask");
    // The job's times are the server's: a day ahead of the wall clock.
    let started: Timestamp = done["StartTime"]
        .as_str()
        .expect("StartTime")
        .parse()
        .expect("a time");
    assert!(
        started >= before + SignedDuration::from_hours(24),
        "started {started}, wall clock {before}"
    );
    let listed = jobs(&server, &t, json!({"BackupMode": "Automated"}));
    assert_eq!(listed.len(), 1, "one job for the one slot: {listed:#?}");
    let res = call_v3(
        &server,
        &t,
        "DescribeBackups",
        json!({"DBClusterId": t.cluster_id, "StartTime": "2000-01-01T00:00Z", "EndTime": "2099-01-01T00:00Z"}),
    );
    let sets = wire_body(&res)["Items"]["Backup"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sets.len(), 1, "{res:#}");
    assert_eq!(sets[0]["BackupId"], done["BackupJobId"]);
    assert_eq!(sets[0]["BackupMode"], "Automated");
    assert_eq!(sets[0]["BackupStatus"], "Success");
    // The clock only moves forward.
    let out = server.target().output(&["clock", "advance", "--by", "0s"]);
    assert!(!out.status.success());
    assert_eq!(server.admin(&["clock", "show"])["OffsetSeconds"], 90_000);
}

#[test]
fn a_fault_injected_at_uploading_fails_the_next_backup_there_with_its_reason() {
    let pg = PgCluster::init();
    let (server, t) = controlled(&pg, &[]);
    let reason = "injected: the object store is full (test)";
    let injected = inject(&server, &t, &["--phase", "Uploading", "--reason", reason]);
    assert_eq!(injected["Faults"][0]["Phase"], "Uploading", "{injected}");
    assert_eq!(injected["Faults"][0]["Times"], 1, "{injected}");

    // Through the SDK: the job ends Failed, its set Failed, nothing of it stored.
    let id = create_backup_v3(&server, &t);
    let done = ended(&server, &t, &id);
    assert_eq!(
        done["BackupProgressStatus"],
        "Failed",
        "{done:#}\n{}",
        server.log()
    );
    let res = call_v3(
        &server,
        &t,
        "DescribeBackups",
        json!({"DBClusterId": t.cluster_id, "BackupId": id, "StartTime": "2000-01-01T00:00Z", "EndTime": "2099-01-01T00:00Z"}),
    );
    let sets = wire_body(&res)["Items"]["Backup"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sets.len(), 1, "{res:#}");
    assert_eq!(sets[0]["BackupStatus"], "Failed", "{res:#}");
    assert_eq!(sets[0]["IsAvail"], "0", "{res:#}");
    assert!(
        !repo_has(&server.data_dir, &id),
        "the failed backup left data behind"
    );
    let log = server.log();
    assert!(
        log.contains("failing the backup") && log.contains("phase=Uploading"),
        "the fault fired in another phase:\n{log}"
    );
    // Its reason, as the job records it (`admin backup --wait` prints it): the fault was used
    // up by that one backup, so the next one finishes.
    let out = server
        .target()
        .output(&["backup", "--cluster", &t.cluster_id, "--wait"]);
    let next: Value = serde_json::from_slice(&out.stdout).expect("admin backup's JSON");
    assert!(out.status.success(), "{next:#}\n{}", server.log());
    assert_eq!(next["Status"], "Finished", "{next:#}");

    // `--times 2`: the next two fail with the reason, then backups succeed again.
    inject(
        &server,
        &t,
        &["--phase", "Uploading", "--reason", reason, "--times", "2"],
    );
    for _ in 0..2 {
        let out = server
            .target()
            .output(&["backup", "--cluster", &t.cluster_id, "--wait"]);
        let failed: Value = serde_json::from_slice(&out.stdout).expect("admin backup's JSON");
        assert!(!out.status.success(), "{failed:#}");
        assert_eq!(failed["Status"], "Failed", "{failed:#}");
        assert_eq!(failed["FailureReason"], reason, "{failed:#}");
        let failed_id = failed["BackupJobId"].as_str().expect("id");
        assert!(!repo_has(&server.data_dir, failed_id));
        assert_eq!(
            job(&server, &t, failed_id)["BackupProgressStatus"],
            "Failed"
        );
    }
    let out = server
        .target()
        .output(&["backup", "--cluster", &t.cluster_id, "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A phase fault without --reason names the phase; clear removes it before it fires.
    let injected = inject(&server, &t, &["--phase", "Checking"]);
    let default = injected["Faults"][0]["Reason"].as_str().expect("a reason");
    assert!(default.contains("Checking"), "{injected}");
    let cleared = server.admin(&["fault", "clear", "--cluster", &t.cluster_id]);
    assert_eq!(cleared["ClustersCleared"], 1, "{cleared}");
    assert_eq!(cleared["Faults"], json!([]), "{cleared}");
}

#[test]
fn a_slow_upload_is_held_to_its_rate_until_cleared() {
    let pg = PgCluster::init();
    pg.pgbench_init("postgres", 2);
    let (server, t) = controlled(&pg, &[]);
    inject(&server, &t, &["--slow-mibps", "1"]);
    let id = create_backup_v3(&server, &t);
    wait_for(
        "the upload to start",
        60,
        || server.log(),
        || (job(&server, &t, &id)["BackupProgressStatus"] == "Uploading").then_some(()),
    );
    // At 1 MiB/s the ~60 MiB of the database take a minute: some seconds later the upload is
    // still in its first part. Meanwhile the clock jumps a day: leases follow the wall clock,
    // so crash recovery (every worker pass, 2 s) does not take the running job for abandoned.
    let held = Instant::now();
    server.admin(&["clock", "advance", "--by", "1d"]);
    std::thread::sleep(Duration::from_secs(6));
    let during = job(&server, &t, &id);
    assert_eq!(during["BackupProgressStatus"], "Uploading", "{during:#}");
    let process: u8 = during["Process"]
        .as_str()
        .unwrap_or("")
        .parse()
        .expect("Process");
    assert!(process < 40, "{during:#}");
    server.admin(&["fault", "clear"]);
    let done = ended(&server, &t, &id);
    assert_eq!(
        done["BackupProgressStatus"],
        "Finished",
        "{done:#}\n{}",
        server.log()
    );
    assert!(held.elapsed() >= Duration::from_secs(6));
}

#[test]
fn without_test_controls_every_command_is_refused_and_no_socket_exists() {
    let server = Server::start(bin(), None, &[]);
    let t = server.tenant();
    assert!(!server.data_dir.join("test-controls.sock").exists());
    let commands: [&[&str]; 6] = [
        &["clock", "advance", "--by", "25h"],
        &["clock", "show"],
        &[
            "fault",
            "inject",
            "--cluster",
            &t.cluster_id,
            "--phase",
            "Uploading",
        ],
        &[
            "fault",
            "inject",
            "--cluster",
            &t.cluster_id,
            "--slow-mibps",
            "5",
        ],
        &["fault", "clear"],
        &["fault", "clear", "--cluster", &t.cluster_id],
    ];
    for args in commands {
        let out = server.target().output(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(REFUSED), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A server's clock is the wall clock: a job queued now starts now.
    let id = create_backup_v3(&server, &t);
    let started: Timestamp = job(&server, &t, &id)["StartTime"]
        .as_str()
        .expect("StartTime")
        .parse()
        .expect("a time");
    assert!(started <= SystemClock.now());

    // A server with test controls removes its socket when it stops; then they are refused too.
    let mut controlled = Server::start(bin(), None, &["--test-controls"]);
    let socket = controlled.data_dir.join("test-controls.sock");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&socket)
            .expect("the socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    assert!(controlled.log().contains("TEST CONTROLS ARE ON"));
    controlled.admin(&["clock", "advance", "--by", "7d"]);
    // Faults name a cluster the installation has.
    let out = controlled.target().output(&[
        "fault",
        "inject",
        "--cluster",
        "pc-000000000000000",
        "--phase",
        "Preparing",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cluster pc-000000000000000 does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(controlled.stop().success());
    assert!(!socket.exists(), "the socket outlived its server");
    let out = controlled.target().output(&["clock", "show"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(REFUSED));
}
