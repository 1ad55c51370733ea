//! Moving an embedded installation onto PostgreSQL: `admin migrate-metadata` copies every
//! record, the server on the new store answers every read as before, a second migration is
//! refused; and a metadata URL's password is never taken from, or echoed off, the command line.

mod common;

use common::{bin, seed, seed_sets, wire_body, Seed, API_ONLY};
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::{
    BackupSetStatus, Clock, DbClusterId, JobMode, JobStatus, Lsn, NewWalObject, SystemClock,
    WalGap, WalObjectKind,
};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::pg::PgCluster;
use polarbackup_testkit::{request, sdk_batch, AdminTarget, RamUser, Server, Tenant};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const PASSWORD: &str = "hunter2-never-echoed";

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run polarbackup")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_password_in_a_flag_url_is_refused_and_never_echoed() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let target = dir.path().join("restored");
    let target = target.to_str().expect("utf-8");
    let url = format!("postgres://pb:{PASSWORD}@127.0.0.1:9/meta");
    let unparsable = format!("postgres://pb:{PASSWORD}@127.0.0.1:port/meta");
    for url in [&url, &unparsable] {
        let commands: [&[&str]; 5] = [
            &["serve", "--data-dir", data, "--metadata-url", url],
            &[
                "admin",
                "account",
                "create",
                "--data-dir",
                data,
                "--metadata-url",
                url,
            ],
            &[
                "admin",
                "cluster",
                "delete",
                "--cluster",
                "pc-0123456789abcde",
                "--metadata-url",
                url,
            ],
            &[
                "restore",
                "--backup-id",
                "7",
                "--target-dir",
                target,
                "--data-dir",
                data,
                "--metadata-url",
                url,
            ],
            &["admin", "migrate-metadata", "--data-dir", data, "--to", url],
        ];
        for args in commands {
            let out = run(args, &[]);
            let shown = text(&out);
            assert!(!out.status.success(), "{args:?} succeeded: {shown}");
            assert!(
                !shown.contains(PASSWORD),
                "{args:?} echoed the password: {shown}"
            );
            assert!(
                shown.contains("visible to every user") && shown.contains("PGPASSWORD"),
                "{args:?} does not say why: {shown}"
            );
        }
    }
    assert!(
        !Path::new(data).exists(),
        "a refused command made the data directory"
    );

    // From the environment the same URL is taken (and fails only at connecting, unechoed).
    let out = run(
        &["admin", "account", "create", "--data-dir", data],
        &[("POLARBACKUP_METADATA_URL", &url)],
    );
    let shown = text(&out);
    assert!(!out.status.success(), "port 9 has no PostgreSQL: {shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(!shown.contains("visible to every user"), "{shown}");

    // A config file holding it must be private.
    let config = dir.path().join("pb.toml");
    std::fs::write(&config, format!("metadata_url = {url:?}\n")).expect("write");
    let config = config.to_str().expect("utf-8");
    let out = run(&["admin", "account", "create", "--config", config], &[]);
    let shown = text(&out);
    assert!(
        !out.status.success() && shown.contains("chmod 600") && !shown.contains(PASSWORD),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// migrate-metadata

/// `polarbackup admin migrate-metadata ARGS… --data-dir DATA`.
fn migrate(data: &Path, args: &[&str]) -> Output {
    AdminTarget::new(bin(), data).output(&[&["migrate-metadata"], args].concat())
}

/// A metadata database on `pg` and its URL (trust authentication: no password).
fn metadata_db(pg: &PgCluster, name: &str) -> String {
    pg.psql(&format!("CREATE DATABASE {name};"));
    format!(
        "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
        pg.port
    )
}

const ARCHIVER: &str = "seeded-archiver";
const SEGMENT: u64 = 16 * 1024 * 1024;

/// WAL records (no repository data: the reads compared do not open it) and a gap.
fn seed_wal(data: &Path, cluster: &str, from: Timestamp) {
    let store = SqliteStore::open(data).expect("open the store");
    let cluster = DbClusterId::parse(cluster).expect("cluster id");
    let now = SystemClock.now();
    assert!(store
        .claim_archiver(&cluster, ARCHIVER, now + SignedDuration::from_hours(1), now)
        .expect("claim"));
    for segno in 1..=3u64 {
        let name = format!("00000001{:08X}{:08X}", segno >> 8, segno & 0xff);
        let start_time = from + SignedDuration::from_secs(60 * segno as i64);
        let object = NewWalObject {
            cluster_id: cluster.clone(),
            timeline: 1,
            kind: WalObjectKind::Segment,
            name: name.clone(),
            start: Lsn(segno * SEGMENT),
            end: Lsn((segno + 1) * SEGMENT),
            size: SEGMENT,
            stored_size: 1000 + segno,
            key: format!("wal/{cluster}/{name}.zst"),
            digest: format!("{:064x}", segno),
            start_time,
            end_time: start_time + SignedDuration::from_millis(50_123),
        };
        store
            .record_wal(ARCHIVER, &object, now)
            .expect("record_wal")
            .expect("the lease is held");
    }
    let recorded = store
        .record_gap(
            ARCHIVER,
            &WalGap {
                cluster_id: cluster.clone(),
                timeline: 1,
                from: Lsn(4 * SEGMENT),
                to: Lsn(5 * SEGMENT),
                detected_at: from + SignedDuration::from_secs(400),
                reason: "seeded: slot invalidated".into(),
            },
            now,
        )
        .expect("record_gap");
    assert!(recorded, "the lease is held");
    store.release_archiver(&cluster, ARCHIVER).expect("release");
}

/// Every read the API has, for each caller and cluster, in one driver process.
fn reads(server: &Server, callers: &[(&Tenant, &[&str])]) -> Vec<Value> {
    let window = json!({"StartTime": "2000-01-01T00:00Z", "EndTime": "2099-01-01T00:00Z"});
    let mut requests = Vec::new();
    for (caller, clusters) in callers {
        for cluster in *clusters {
            let c = json!({"DBClusterId": cluster});
            let mut with_window = window.clone();
            with_window["DBClusterId"] = json!(cluster);
            for (action, params) in [
                ("DescribeBackupTasks", c.clone()),
                ("DescribeBackups", with_window.clone()),
                ("DescribeBackupPolicy", c.clone()),
                ("DescribeLogBackupPolicy", c.clone()),
                ("DescribeBackupLogs", with_window.clone()),
                ("DescribeLocalAvailableRecoveryTime", c.clone()),
                ("DescribeDetachedBackups", with_window.clone()),
            ] {
                let mut req = request("v3", server, caller, params);
                req["action"] = json!(action);
                requests.push(req);
            }
        }
    }
    sdk_batch(requests)
        .into_iter()
        .map(|res| {
            let mut body = wire_body(&res).clone();
            // Fresh on every response (the error's Recommend link carries it too).
            if let Some(o) = body.as_object_mut() {
                o.remove("RequestId");
                if let Some(Value::String(r)) = o.get_mut("Recommend") {
                    r.truncate(r.find("&requestId=").unwrap_or(r.len()));
                }
            }
            per_request_links(&mut body);
            json!({"status": res["status"], "code": res["code"], "body": body})
        })
        .collect()
}

/// Download links name the server's address and expire an hour after the request: only
/// their presence is compared.
fn per_request_links(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                if ["DownloadLink", "IntranetDownloadLink", "LinkExpiredTime"].contains(&k.as_str())
                {
                    assert!(v.as_str().is_some_and(|s| !s.is_empty()), "{k}: {v}");
                    *v = json!("(per request)");
                } else {
                    per_request_links(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(per_request_links),
        _ => {}
    }
}

#[test]
fn migrate_metadata_moves_an_installation_that_then_answers_every_read_as_before() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let embedded = AdminTarget::new(bin(), &data);
    let t = Tenant::create_on(&embedded);
    let released = t.add_cluster_on(&embedded, 5433, "postgres");
    let reader = RamUser::create(
        bin(),
        &data,
        &t.account_id,
        "reader",
        &["AliyunPolardbReadOnlyAccess"],
    );
    let day = SignedDuration::from_hours(24);
    let t0 = Timestamp::from_second(SystemClock.now().as_second()).expect("now") - day * 3;
    seed(
        &data,
        &t.cluster_id,
        &[
            Seed::new(JobStatus::Failed, t0),
            Seed::new(JobStatus::NoStart, t0 + day * 2).mode(JobMode::Automated),
        ],
    );
    let sets = seed_sets(
        &data,
        &t.cluster_id,
        &[
            (JobMode::Automated, BackupSetStatus::Success, t0 + day),
            (JobMode::Manual, BackupSetStatus::Failed, t0 + day + day / 2),
            (JobMode::Manual, BackupSetStatus::Success, t0 + day * 2),
        ],
    );
    seed_wal(&data, &t.cluster_id, t0 + day);
    seed_sets(
        &data,
        &released,
        &[(JobMode::Manual, BackupSetStatus::Success, t0)],
    );
    let deleted = embedded.run(&[
        "cluster",
        "delete",
        "--cluster",
        &released,
        "--retention",
        "ALL",
    ]);
    assert_eq!(deleted["Status"], "Deleted", "{deleted}");

    let sqlite = Server::builder(bin())
        .data_dir(&data)
        .args(API_ONLY)
        .start();
    let mut changes = Vec::new();
    for (action, params) in [
        (
            "ModifyBackupPolicy",
            json!({"DBClusterId": t.cluster_id, "PreferredBackupTime": "03:00Z-04:00Z",
                   "PreferredBackupPeriod": "Monday,Thursday"}),
        ),
        (
            "ModifyLogBackupPolicy",
            json!({"DBClusterId": t.cluster_id, "LogBackupRetentionPeriod": "30"}),
        ),
    ] {
        let mut req = request("v3", &sqlite, &t, params);
        req["action"] = json!(action);
        changes.push(req);
    }
    for res in sdk_batch(changes) {
        assert_eq!(res["ok"], true, "{res:#}");
    }
    let reader_t = reader.tenant(&t.cluster_id);
    let callers: [(&Tenant, &[&str]); 2] = [
        (&t, &[t.cluster_id.as_str(), released.as_str()]),
        (&reader_t, &[t.cluster_id.as_str()]),
    ];
    let before = reads(&sqlite, &callers);
    assert!(
        before.iter().filter(|r| r["status"] == 200).count() >= 10,
        "{before:#?}"
    );
    let listed = serde_json::to_string(&before).expect("json");
    for id in [&sets[0], &sets[2]] {
        assert!(
            listed.contains(id.as_str()),
            "set {id} not listed: {listed}"
        );
    }
    let mut sqlite = sqlite;
    sqlite.stop();

    let pg = PgCluster::init();
    let url = metadata_db(&pg, "meta");
    let out = migrate(&data, &["--to", &url]);
    assert!(out.status.success(), "migrate-metadata: {}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let tables = summary["Tables"].as_object().expect("Tables");
    let rows: u64 = tables.values().map(|v| v.as_u64().expect("a count")).sum();
    assert!(tables.len() >= 8 && rows >= 20, "{summary:#}");
    assert_eq!(
        summary["To"],
        format!("postgres://postgres@127.0.0.1:{}/meta", pg.port),
        "{summary:#}"
    );

    let on_pg = Server::builder(bin())
        .data_dir(&data)
        .args(API_ONLY)
        .metadata_url(&url)
        .start();
    let after = reads(&on_pg, &callers);
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "the PostgreSQL store answers differently");
    }
    // The copy is the store now: a new job gets an id after every migrated one.
    let mut create = request("v3", &on_pg, &t, json!({"DBClusterId": t.cluster_id}));
    create["action"] = json!("CreateBackup");
    let res = sdk_batch(vec![create]).remove(0);
    let job: u64 = wire_body(&res)["BackupJobId"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{res:#}"));
    let newest: u64 = sets
        .iter()
        .map(|s| s.parse::<u64>().expect("id"))
        .max()
        .expect("sets");
    assert!(
        job > newest,
        "job id {job} reused or out of order (sets up to {newest})"
    );

    // A target that holds anything is refused, and nothing is copied.
    let again = migrate(&data, &["--to", &url]);
    assert!(
        !again.status.success(),
        "a second migration: {}",
        text(&again)
    );
    assert!(
        text(&again).contains("already holds metadata"),
        "{}",
        text(&again)
    );
    // So is a source that does not exist, and a target that is not PostgreSQL.
    let empty = metadata_db(&pg, "meta2");
    let missing = migrate(
        &data,
        &["--from", "sqlite://nothing.sqlite", "--to", &empty],
    );
    assert!(
        text(&missing).contains("no SQLite store"),
        "{}",
        text(&missing)
    );
    let to_sqlite = migrate(&data, &["--to", "sqlite://other.sqlite"]);
    assert!(
        text(&to_sqlite).contains("postgres://"),
        "{}",
        text(&to_sqlite)
    );
}
