//! Automated backups with a real PostgreSQL: a policy whose window is open now makes the
//! scheduler queue an Automated job, which runs to Finished and lists as BackupMode Automated;
//! the policy round-trips through the official SDK and every Malformed field is refused; an
//! automated job after the week's first is incremental on it, and restores the whole database.

mod common;

use common::{bin, wire_body};
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::{AccountId, Clock, NewCluster, SystemClock, TlsMode};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::pg::PgCluster;
use polarbackup_testkit::{request, sdk, Server, Tenant};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn call(server: &Server, t: &Tenant, client: &str, action: &str, params: Value) -> Value {
    let mut req = request(client, server, t, params);
    req["action"] = json!(action);
    sdk(req)
}

/// Registers `port` as a cluster created at `created` (its schedule starts then: the slots
/// after it are owed).
fn cluster_created_at(server: &Server, t: &Tenant, port: u16, created: Timestamp) -> String {
    let store = SqliteStore::open(&server.data_dir).expect("open the server's store");
    store
        .create_cluster(
            &NewCluster {
                account: AccountId::parse(&t.account_id).expect("account id"),
                region: "cn-hangzhou".into(),
                engine: "postgresql".into(),
                host: "127.0.0.1".into(),
                port,
                user: "postgres".into(),
                password: None,
                database: None,
                description: None,
                tls_mode: TlsMode::Disable,
                tls_ca_file: None,
            },
            created,
        )
        .expect("cluster")
        .id
        .to_string()
}

/// Registers `port` as a cluster created two hours ago.
fn cluster_created_earlier(server: &Server, t: &Tenant, port: u16) -> String {
    cluster_created_at(
        server,
        t,
        port,
        SystemClock.now() - SignedDuration::from_hours(2),
    )
}

/// The one-hour window `now` is in, and the second before it opened.
fn current_window(now: Timestamp) -> (String, Timestamp) {
    let hour = now.to_zoned(jiff::tz::TimeZone::UTC).hour();
    let opened =
        Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(3600)).expect("a time");
    (
        format!("{:02}:00Z-{:02}:00Z", hour, (hour + 1) % 24),
        opened - SignedDuration::from_secs(1),
    )
}

#[test]
fn an_automated_backup_due_now_runs_to_finished() {
    let pg = PgCluster::init();
    pg.pgbench_init("postgres", 1);
    let server = Server::start(bin(), None, &["--scheduler", "on"]);
    let mut t = server.tenant();
    // The cluster exists from just before the window open now, so that window's slot is owed,
    // and no other: the scheduler runs (every 2 s) before the policy below is set, and a
    // cluster created earlier could owe a slot of the default policy (02:00Z) too; between
    // 03:00Z and 04:00Z it queued that one first (two jobs, "one job per slot" failed).
    let (window, just_before) = current_window(SystemClock.now());
    t.cluster_id = cluster_created_at(&server, &t, pg.port, just_before);

    let res = call(
        &server,
        &t,
        "v3",
        "ModifyBackupPolicy",
        json!({"DBClusterId": t.cluster_id, "PreferredBackupTime": window}),
    );
    assert_eq!(res["ok"], true, "{res:#}");

    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let res = call(
            &server,
            &t,
            "v3",
            "DescribeBackupTasks",
            json!({"DBClusterId": t.cluster_id, "BackupMode": "Automated"}),
        );
        let jobs = wire_body(&res)["Items"]["BackupJob"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(j) = jobs.first() {
            if j["BackupProgressStatus"] == "Finished" || j["BackupProgressStatus"] == "Failed" {
                assert_eq!(jobs.len(), 1, "one job per slot: {jobs:#?}");
                break j.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no automated backup finished\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        job["BackupProgressStatus"],
        "Finished",
        "{job:#}\n{}",
        server.log()
    );
    assert_eq!(job["JobMode"], "Automated");
    assert_eq!(job["TaskAction"], "NormalBackupTask");
    let res = call(
        &server,
        &t,
        "v3",
        "DescribeBackups",
        json!({"DBClusterId": t.cluster_id, "StartTime": "2000-01-01T00:00Z", "EndTime": "2099-01-01T00:00Z"}),
    );
    let sets = wire_body(&res)["Items"]["Backup"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sets.len(), 1, "{res:#}");
    assert_eq!(sets[0]["BackupMode"], "Automated");
    assert_eq!(sets[0]["BackupStatus"], "Success");
    assert_eq!(sets[0]["IsAvail"], "1");
    assert_eq!(sets[0]["BackupId"], job["BackupJobId"]);
    // Automated sets belong to retention: DeleteBackup refuses them.
    let res = call(
        &server,
        &t,
        "v3",
        "DeleteBackup",
        json!({"DBClusterId": t.cluster_id, "BackupId": job["BackupJobId"]}),
    );
    assert_eq!(
        (res["status"].as_u64(), res["code"].as_str()),
        (Some(403), Some("OperationDenied.AutomatedBackup")),
        "{res:#}"
    );
}

#[test]
fn the_backup_policy_round_trips_and_each_malformed_field_is_refused() {
    let server = Server::start(bin(), None, &[]);
    let t = server.tenant();
    for client in ["v3", "old-typed-post"] {
        let res = call(
            &server,
            &t,
            client,
            "DescribeBackupPolicy",
            json!({"DBClusterId": t.cluster_id}),
        );
        assert_eq!(res["ok"], true, "{client}: {res:#}");
        let body = wire_body(&res);
        for field in [
            "PreferredBackupPeriod",
            "PreferredBackupTime",
            "PreferredNextBackupTime",
            "BackupFrequency",
            "DataLevel1BackupRetentionPeriod",
            "BackupRetentionPolicyOnClusterDeletion",
        ] {
            assert!(body[field].is_string(), "{client}: {field} in {body:#}");
        }
    }
    let change = json!({"DBClusterId": t.cluster_id, "PreferredBackupPeriod": "Monday,Thursday", "PreferredBackupTime": "15:00Z-16:00Z", "DataLevel1BackupRetentionPeriod": "10", "BackupRetentionPolicyOnClusterDeletion": "LATEST"});
    let res = call(&server, &t, "v3", "ModifyBackupPolicy", change);
    assert_eq!(res["ok"], true, "{res:#}");
    let res = call(
        &server,
        &t,
        "old-typed-post",
        "DescribeBackupPolicy",
        json!({"DBClusterId": t.cluster_id}),
    );
    let body = wire_body(&res);
    assert_eq!(body["PreferredBackupPeriod"], "Monday,Thursday");
    assert_eq!(body["DataLevel1BackupPeriod"], "Monday,Thursday");
    assert_eq!(body["PreferredBackupTime"], "15:00Z-16:00Z");
    assert_eq!(body["DataLevel1BackupRetentionPeriod"], "10");
    assert_eq!(body["BackupRetentionPolicyOnClusterDeletion"], "LATEST");
    assert!(
        body["PreferredNextBackupTime"]
            .as_str()
            .is_some_and(|s| s.ends_with("T15:00Z")),
        "{body:#}"
    );

    let cases = [
        (
            "PreferredBackupPeriod",
            "Monday",
            "InvalidPreferredBackupPeriod.Malformed",
        ),
        (
            "PreferredBackupPeriod",
            "monday,tuesday",
            "InvalidPreferredBackupPeriod.Malformed",
        ),
        (
            "PreferredBackupTime",
            "15:30Z-16:30Z",
            "InvalidPreferredBackupTime.Malformed",
        ),
        (
            "PreferredBackupTime",
            "15:00Z-17:00Z",
            "InvalidPreferredBackupTime.Malformed",
        ),
        (
            "BackupFrequency",
            "5/24H",
            "InvalidBackupFrequency.Malformed",
        ),
        (
            "DataLevel1BackupRetentionPeriod",
            "2",
            "InvalidDataLevel1BackupRetentionPeriod.Malformed",
        ),
        (
            "DataLevel1BackupRetentionPeriod",
            "15",
            "InvalidDataLevel1BackupRetentionPeriod.Malformed",
        ),
        (
            "DataLevel1BackupTime",
            "1:00Z-2:00Z",
            "InvalidDataLevel1BackupTime.Malformed",
        ),
        (
            "DataLevel1BackupPeriod",
            "Sunday",
            "InvalidDataLevel1BackupPeriod.Malformed",
        ),
        (
            "DataLevel1BackupFrequency",
            "daily",
            "InvalidDataLevel1BackupFrequency.Malformed",
        ),
        (
            "BackupRetentionPolicyOnClusterDeletion",
            "SOME",
            "InvalidBackupRetentionPolicyOnClusterDeletion.Malformed",
        ),
    ];
    for (field, value, code) in cases {
        let mut params = json!({"DBClusterId": t.cluster_id});
        params[field] = json!(value);
        let res = call(&server, &t, "v3", "ModifyBackupPolicy", params);
        assert_eq!(
            (res["status"].as_u64(), res["code"].as_str()),
            (Some(400), Some(code)),
            "{field}={value}: {res:#}"
        );
    }
    // Features not built are refused, not ignored.
    let res = call(
        &server,
        &t,
        "v3",
        "ModifyBackupPolicy",
        json!({"DBClusterId": t.cluster_id, "DataLevel2BackupRetentionPeriod": "30"}),
    );
    assert_eq!(
        (res["status"].as_u64(), res["code"].as_str()),
        (Some(403), Some("IncorrectBackupPolicy")),
        "{res:#}"
    );
    let res = call(
        &server,
        &t,
        "v3",
        "DescribeBackupPolicy",
        json!({"DBClusterId": "pc-000000000000000"}),
    );
    assert_eq!(
        (res["status"].as_u64(), res["code"].as_str()),
        (Some(404), Some("InvalidDBClusterId.NotFound")),
        "{res:#}"
    );
}

/// Waits until job `id` of `cluster` ended, and returns it.
fn ended_job(
    server: &Server,
    cluster: &polarbackup_model::DbClusterId,
    id: polarbackup_model::BackupJobId,
) -> polarbackup_model::BackupJob {
    let store = SqliteStore::open(&server.data_dir).expect("open the server's store");
    let filter = polarbackup_store::JobFilter {
        job_id: Some(id),
        mode: None,
        ended_since: jiff::Timestamp::UNIX_EPOCH,
    };
    common::wait_for(
        "the automated job to end",
        120,
        || server.log(),
        || {
            let job = store
                .list_jobs(cluster, &filter)
                .expect("read the job")
                .pop()?;
            job.ended_at.is_some().then_some(job)
        },
    )
}

#[test]
fn automated_backups_after_the_first_of_a_week_are_incremental_and_restore_whole() {
    use polarbackup_model::{BackupKind, DbClusterId, JobStatus};
    let pg = PgCluster::init();
    pg.pgbench_init("postgres", 2);
    let server = Server::start(bin(), None, &["--scheduler", "off"]);
    let t = server.tenant();
    let cluster = cluster_created_earlier(&server, &t, pg.port);
    let id = DbClusterId::parse(&cluster).expect("cluster id");
    let store = SqliteStore::open(&server.data_dir).expect("open the server's store");
    // Two slots of this week, as the scheduler queues them: the first full, the next not.
    let now = SystemClock.now();
    let queue = |minutes_ago: i64, kind: BackupKind| {
        let slot = now - SignedDuration::from_mins(minutes_ago);
        let job = store
            .schedule_automated_job(&id, slot, kind, SystemClock.now())
            .expect("schedule")
            .expect("queued");
        ended_job(&server, &id, job.id)
    };
    let full = queue(2, BackupKind::Full);
    assert_eq!(full.status, JobStatus::Finished, "{}", server.log());
    pg.pgbench_run("postgres", 300);
    let incremental = queue(1, BackupKind::Incremental);
    assert_eq!(incremental.status, JobStatus::Finished, "{}", server.log());
    let expected = pg.table_digests("postgres");

    let set = store
        .backup_set(incremental.id)
        .expect("read the set")
        .expect("a set");
    assert_eq!(set.parent, Some(full.id), "built on the week's full set");
    let base = store.backup_set(full.id).expect("read").expect("a set");
    assert!(
        set.stored_size * 2 < base.stored_size,
        "incremental {} bytes stored, full {}",
        set.stored_size,
        base.stored_size
    );

    assert_eq!(
        common::restored_digests(&server, &incremental.id.to_string(), "postgres"),
        expected
    );
}
