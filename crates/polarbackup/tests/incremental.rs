//! Incremental sets through the real binary and the official SDKs: DescribeBackups lists them
//! like full ones (`FullBackup`, `Snapshot`), DeleteBackup of the set they are built on is
//! refused with 403 `OperationDenied.BackupDependency` until they are gone, and `admin cluster
//! full-backup-every` sets a cluster's schedule of full backups.

mod common;

use common::{assert_error, assert_error_envelope, shared, tenant, wire_body};
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::policy::FullBackupEvery;
use polarbackup_model::{
    BackupJobId, BackupSet, BackupSetStatus, DbClusterId, JobMode, JobStatus, Lsn, TaskAction,
    WalRange,
};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::{admin_output, request, sdk_batch, Server, Tenant};
use serde_json::{json, Value};
use std::path::Path;

/// Records a finished set of `mode`, incremental on `parent` when given, as a worker would.
fn seed(
    data_dir: &Path,
    cluster: &str,
    mode: JobMode,
    parent: Option<u64>,
    start: Timestamp,
) -> u64 {
    let store = SqliteStore::open(data_dir).expect("open the store");
    let cluster = DbClusterId::parse(cluster).expect("cluster id");
    let end = start + SignedDuration::from_secs(20);
    let mut job = store
        .insert_job(&cluster, mode, TaskAction::NormalBackupTask, start)
        .expect("insert a job");
    for (status, process) in [
        (JobStatus::Preparing, 1),
        (JobStatus::Uploading, 50),
        (JobStatus::Checking, 95),
        (JobStatus::Finished, 100),
    ] {
        job.advance(status, process, end).expect("advance");
    }
    let set = BackupSet {
        id: job.id,
        cluster_id: cluster,
        mode,
        status: BackupSetStatus::Success,
        start_time: start,
        end_time: end,
        consistent_time: Some(start + SignedDuration::from_secs(10)),
        size: 1_000_000,
        stored_size: 1000,
        comment: None,
        wal: Some(WalRange {
            timeline: 1,
            start: Lsn(0x0100_0028),
            end: Lsn(0x0100_0100),
        }),
        corrupt: None,
        parent: parent.map(BackupJobId),
    };
    store.end_job(&job, Some(&set), None).expect("end the job");
    job.id.0
}

fn call(server: &Server, t: &Tenant, action: &str, params: Value) -> Value {
    let mut req = request("v3", server, t, params);
    req["action"] = json!(action);
    req
}

fn describe(server: &Server, t: &Tenant) -> Value {
    call(
        server,
        t,
        "DescribeBackups",
        json!({"DBClusterId": t.cluster_id, "StartTime": "2000-01-01T00:00Z",
               "EndTime": "2099-01-01T00:00Z"}),
    )
}

fn delete(server: &Server, t: &Tenant, ids: &str) -> Value {
    call(
        server,
        t,
        "DeleteBackup",
        json!({"DBClusterId": t.cluster_id, "BackupId": ids}),
    )
}

fn ago(hours: i64) -> Timestamp {
    polarbackup_model::SystemClock.now() - SignedDuration::from_hours(hours)
}

use polarbackup_model::Clock as _;

#[test]
fn incremental_sets_list_as_full_snapshots_and_keep_their_base() {
    let server = shared();
    let t = tenant();
    let data = &server.data_dir;
    let base = seed(data, &t.cluster_id, JobMode::Manual, None, ago(30));
    let child = seed(data, &t.cluster_id, JobMode::Automated, Some(base), ago(20));
    let grandchild = seed(
        data,
        &t.cluster_id,
        JobMode::Automated,
        Some(child),
        ago(10),
    );

    let r = sdk_batch(vec![
        describe(server, &t),
        delete(server, &t, &base.to_string()),
    ]);
    assert_eq!(r[0]["ok"], true, "{:#}", r[0]);
    let items = wire_body(&r[0])["Items"]["Backup"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len(), 3, "{:#}", r[0]);
    for item in &items {
        assert_eq!(item["BackupType"], "FullBackup", "{item}");
        assert_eq!(item["BackupMethod"], "Snapshot", "{item}");
        assert_eq!(item["IsAvail"], "1", "{item}");
    }
    assert_error(&r[1], 403, "OperationDenied.BackupDependency");
    assert_error_envelope(&r[1]);
    assert_eq!(
        r[1]["message"]
            .as_str()
            .or(wire_body(&r[1])["Message"].as_str()),
        Some(
            format!(
                "Backup set {base} is the base of incremental backup sets {child}; delete them \
                 first, or let the retention policy remove them together."
            )
            .as_str()
        ),
        "{:#}",
        r[1]
    );

    // Retention takes the chain tip first (as the scheduler would); the base stays refused
    // while its direct child is listed, and goes once that one is gone too.
    let store = SqliteStore::open(data).expect("open");
    store
        .expire_sets(&[BackupJobId(grandchild)])
        .expect("expire");
    let r = sdk_batch(vec![delete(server, &t, &base.to_string())]);
    assert_error(&r[0], 403, "OperationDenied.BackupDependency");
    store.expire_sets(&[BackupJobId(child)]).expect("expire");
    let r = sdk_batch(vec![
        delete(server, &t, &base.to_string()),
        describe(server, &t),
    ]);
    assert_eq!(r[0]["ok"], true, "{:#}", r[0]);
    assert_eq!(wire_body(&r[1])["TotalRecordCount"], "0", "{:#}", r[1]);
}

#[test]
fn admin_sets_a_clusters_schedule_of_full_backups() {
    let server = shared();
    let t = tenant();
    let data = &server.data_dir;
    let cluster = DbClusterId::parse(&t.cluster_id).expect("id");
    let setting = || {
        SqliteStore::open(data)
            .expect("open")
            .cluster(&cluster)
            .expect("read")
            .expect("cluster")
            .full_backup_every
    };
    assert_eq!(setting(), None);
    for (arg, want) in [
        ("always", Some(FullBackupEvery::Always)),
        ("week", Some(FullBackupEvery::Week)),
        ("default", None),
    ] {
        let out = admin_output(
            common::bin(),
            data,
            &[
                "cluster",
                "full-backup-every",
                "--cluster",
                &t.cluster_id,
                arg,
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let printed: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            printed,
            json!({"DBClusterId": t.cluster_id, "FullBackupEvery": arg})
        );
        assert_eq!(setting(), want);
    }
    for bad in [
        vec![
            "cluster",
            "full-backup-every",
            "--cluster",
            &t.cluster_id,
            "daily",
        ],
        vec![
            "cluster",
            "full-backup-every",
            "--cluster",
            "pc-zzzzzzzzzzzzzzz",
            "week",
        ],
    ] {
        let out = admin_output(common::bin(), data, &bad);
        assert!(!out.status.success(), "{bad:?}: {out:?}");
        assert_eq!(setting(), None, "nothing changed");
    }
}

/// `admin backup ARGS… --cluster C --wait` on `server`'s installation; asserts success and
/// returns the outcome it printed.
fn admin_backup(server: &Server, cluster: &str, kind: &str) -> Value {
    let out = admin_output(
        common::bin(),
        &server.data_dir,
        &["backup", "--cluster", cluster, "--type", kind, "--wait"],
    );
    assert!(
        out.status.success(),
        "admin backup --type {kind}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn an_incremental_backup_taken_with_admin_backup_builds_on_the_previous_set_and_restores_whole() {
    use polarbackup_testkit::pg::PgCluster;
    let db = PgCluster::init();
    db.pgbench_init("postgres", 2);
    let server = Server::start(common::bin(), None, &["--scheduler", "off"]);
    let t = Tenant::create_at(common::bin(), &server.data_dir, "admin-backup", db.port);

    let full = admin_backup(&server, &t.cluster_id, "full");
    let full_id = full["BackupJobId"].as_str().expect("an id").to_owned();
    assert_eq!(full["Status"], "Finished", "{full:#}");
    assert_eq!(full["Kind"], "Full", "{full:#}");
    assert_eq!(full["ParentBackupId"], Value::Null, "{full:#}");
    db.pgbench_run("postgres", 300);
    let expected = db.table_digests("postgres");

    let incremental = admin_backup(&server, &t.cluster_id, "incremental");
    assert_eq!(incremental["Status"], "Finished", "{incremental:#}");
    assert_eq!(incremental["Kind"], "Incremental", "{incremental:#}");
    assert_eq!(incremental["FailureReason"], Value::Null, "{incremental:#}");
    assert_eq!(
        incremental["ParentBackupId"].as_str(),
        Some(full_id.as_str()),
        "built on the full set: {incremental:#}"
    );
    let incremental_id = incremental["BackupJobId"].as_str().expect("an id");
    // What it printed is what the store recorded.
    let store = SqliteStore::open(&server.data_dir).expect("open the store");
    let set = store
        .backup_set(BackupJobId(incremental_id.parse().expect("numeric")))
        .expect("read")
        .expect("a set");
    assert_eq!(
        (
            incremental["BackupSize"].as_u64(),
            incremental["StoredSize"].as_u64(),
            set.mode
        ),
        (Some(set.size), Some(set.stored_size), JobMode::Manual)
    );
    let full_stored = full["StoredSize"].as_u64().expect("a size");
    assert!(
        set.stored_size * 2 < full_stored,
        "incremental {} bytes stored, full {full_stored}",
        set.stored_size
    );

    assert_eq!(
        common::restored_digests(&server, incremental_id, "postgres"),
        expected
    );

    // Manual backups count against CreateBackup's limit: a third is queued (without --wait it
    // prints only its id), a fourth refused with a message naming the limit.
    let out = admin_output(
        common::bin(),
        &server.data_dir,
        &[
            "backup",
            "--cluster",
            &t.cluster_id,
            "--type",
            "incremental",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let queued: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        queued
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["BackupJobId".to_owned()]),
        "{queued}"
    );
    let out = admin_output(
        common::bin(),
        &server.data_dir,
        &["backup", "--cluster", &t.cluster_id],
    );
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("BackupTimesExceeded"), "{stderr}");
}
