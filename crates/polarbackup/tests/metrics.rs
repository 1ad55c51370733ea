//! `serve --metrics-listen`: a real backup and WAL archiving of a PostgreSQL 15 cluster, then
//! `/metrics` scraped and parsed with the Prometheus project's own text-format parser (PyPI
//! `prometheus-client`), its values checked against what the API reports through the SDK.

mod common;

use common::*;
use jiff::Timestamp;
use polarbackup_model::{DbClusterId, Lsn};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::pg::PgCluster;
use polarbackup_testkit::Server;
use serde_json::{json, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

/// A well-formed cluster id nobody has.
const GHOST: &str = "pc-zzzzzzzzzzzzzzz";

/// Fetches `/metrics` and parses it with `prometheus_client.parser`; also checks the
/// Content-Type. Every sample as `{"name", "labels", "value"}`.
fn scrape(addr: SocketAddr) -> Vec<Value> {
    const SCRIPT: &str = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
    assert r.status == 200, r.status
    ctype = r.headers["Content-Type"]
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    text = r.read().decode()
out = []
for family in text_string_to_metric_families(text):
    for s in family.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type})
json.dump(out, sys.stdout)
"#;
    let out = Command::new(polarbackup_testkit::python())
        .args(["-c", SCRIPT, &format!("http://{addr}/metrics")])
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "scrape failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// The one sample named `name` whose labels include `labels`.
fn value(samples: &[Value], name: &str, labels: Value) -> Option<f64> {
    let want = labels.as_object().expect("labels");
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s["name"] == name)
        .filter(|s| want.iter().all(|(k, v)| &s["labels"][k] == v))
        .map(|s| s["value"].as_f64().expect("value"))
        .collect();
    assert!(found.len() <= 1, "{name} {labels}: {found:?}");
    found.first().copied()
}

fn must(samples: &[Value], name: &str, labels: Value) -> f64 {
    value(samples, name, labels.clone())
        .unwrap_or_else(|| panic!("no sample {name} {labels} in {samples:#?}"))
}

fn epoch(api_time: &Value) -> f64 {
    let s = api_time.as_str().expect("a time");
    s.parse::<Timestamp>()
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .as_second() as f64
}

fn ok_body(res: &Value) -> Value {
    assert_eq!(res["ok"], true, "expected success, got {res:#}");
    wire_body(res).clone()
}

#[test]
fn metrics_match_what_the_api_reports_after_a_backup() {
    let pg = PgCluster::init();
    pg.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g;",
    );
    let server = Server::start(
        bin(),
        None,
        &[
            "--log-backup",
            "on",
            "--wal-partial-secs",
            "1",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let addr = server
        .metrics_addr
        .expect("the Listening line names the metrics listener");
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, pg.port, "postgres");
    let cluster = DbClusterId::parse(&t.cluster_id).unwrap();
    let c = t.cluster_id.as_str();

    // Before any backup: the cluster is listed, with no last backup and no window.
    let before = scrape(addr);
    assert_eq!(must(&before, "polarbackup_store_up", json!({})), 1.0);
    assert_eq!(must(&before, "polarbackup_worker_slots", json!({})), 2.0);
    assert!(
        must(
            &before,
            "polarbackup_cluster_created_timestamp_seconds",
            json!({"cluster": c})
        ) > 0.0
    );
    assert_eq!(
        value(
            &before,
            "polarbackup_last_successful_backup_timestamp_seconds",
            json!({"cluster": c})
        ),
        None
    );
    assert_eq!(
        must(
            &before,
            "polarbackup_backup_jobs",
            json!({"cluster": c, "status": "Finished"})
        ),
        0.0
    );
    assert_eq!(
        must(
            &before,
            "polarbackup_log_backup_retention_seconds",
            json!({"cluster": c})
        ),
        7.0 * 86_400.0,
        "the default LogBackupRetentionPeriod"
    );

    let store = SqliteStore::open(&server.data_dir).unwrap();
    wait_for_slot(
        &server,
        &pg,
        &polarbackup_model::log_backup::slot_name(&cluster),
        60,
    );
    let job = create_backup_v3(&server, &t);
    wait_for_sets("the backup", 120, &server, &store, &cluster);
    // Some WAL a second after the backup, archived: the window reaches past the backup.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    pg.psql("SET synchronous_commit = on;\nINSERT INTO t VALUES (0, 'after');");
    let flushed: Lsn = pg
        .psql("SELECT pg_current_wal_flush_lsn();")
        .parse()
        .unwrap();
    wait_for(
        "the archive to pass the insert",
        60,
        || server.log(),
        || {
            let wal = store.wal_objects(&cluster).unwrap();
            wal.iter().any(|w| w.object.end >= flushed).then_some(())
        },
    );
    // One refused call, counted under its error code.
    let ghost = call_v3(
        &server,
        &t,
        "DescribeBackups",
        json!({"DBClusterId": GHOST, "StartTime": "2000-01-01T00:00Z", "EndTime": "2099-01-01T00:00Z"}),
    );
    assert_eq!(ghost["ok"], false, "{ghost:#}");
    let ghost_code = wire_body(&ghost)["Code"].as_str().expect("Code").to_owned();
    assert_eq!(ghost_code, "InvalidDBClusterId.NotFound", "{ghost:#}");

    let sets = ok_body(&call_v3(
        &server,
        &t,
        "DescribeBackups",
        json!({"DBClusterId": c, "StartTime": "2000-01-01T00:00Z", "EndTime": "2099-01-01T00:00Z"}),
    ));
    let items = sets["Items"]["Backup"].as_array().expect("Items.Backup");
    assert_eq!(items.len(), 1, "{sets:#}");
    let set = &items[0];
    assert_eq!(set["BackupId"], job.as_str());
    let window_before = ok_body(&call_v3(
        &server,
        &t,
        "DescribeLocalAvailableRecoveryTime",
        json!({"DBClusterId": c}),
    ));
    let after = scrape(addr);
    let window_after = ok_body(&call_v3(
        &server,
        &t,
        "DescribeLocalAvailableRecoveryTime",
        json!({"DBClusterId": c}),
    ));

    let per = json!({"cluster": c});
    let end = epoch(&set["BackupEndTime"]);
    let start = epoch(&set["BackupStartTime"]);
    assert_eq!(
        must(
            &after,
            "polarbackup_last_successful_backup_timestamp_seconds",
            per.clone()
        ),
        end
    );
    assert_eq!(
        must(
            &after,
            "polarbackup_last_successful_backup_duration_seconds",
            per.clone()
        ),
        end - start
    );
    let size: f64 = set["BackupSetSize"]
        .as_str()
        .expect("size")
        .parse()
        .unwrap();
    assert_eq!(
        must(
            &after,
            "polarbackup_last_successful_backup_size_bytes",
            per.clone()
        ),
        size
    );
    assert!(
        must(
            &after,
            "polarbackup_last_successful_backup_stored_bytes",
            per.clone()
        ) > 0.0
    );
    assert_eq!(
        must(&after, "polarbackup_backup_sets_available", per.clone()),
        1.0
    );
    let jobs = ok_body(&call_v3(
        &server,
        &t,
        "DescribeBackupTasks",
        json!({"DBClusterId": c}),
    ));
    let finished = jobs["Items"]["BackupJob"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["BackupProgressStatus"] == "Finished")
        .count();
    assert_eq!(finished, 1, "{jobs:#}");
    assert_eq!(
        must(
            &after,
            "polarbackup_backup_jobs",
            json!({"cluster": c, "status": "Finished"})
        ),
        finished as f64
    );
    assert_eq!(
        must(
            &after,
            "polarbackup_backup_jobs",
            json!({"cluster": c, "status": "Failed"})
        ),
        0.0
    );

    // The window: its start fixed by the backup, its end between the two API answers (the
    // archiver stores a partial every second).
    assert_eq!(
        must(
            &after,
            "polarbackup_recovery_window_start_timestamp_seconds",
            per.clone()
        ),
        epoch(&window_before["RecoveryBeginTime"])
    );
    let shown_end = must(
        &after,
        "polarbackup_recovery_window_end_timestamp_seconds",
        per.clone(),
    );
    assert!(
        epoch(&window_before["RecoveryEndTime"]) <= shown_end
            && shown_end <= epoch(&window_after["RecoveryEndTime"]),
        "{shown_end} not within {window_before} .. {window_after}"
    );
    let shown_start = must(
        &after,
        "polarbackup_recovery_window_start_timestamp_seconds",
        per.clone(),
    );
    assert_eq!(
        must(&after, "polarbackup_recovery_window_seconds", per.clone()),
        shown_end - shown_start
    );
    assert!(
        must(
            &after,
            "polarbackup_wal_last_archived_timestamp_seconds",
            per.clone()
        ) >= end
    );
    let lag = must(&after, "polarbackup_wal_archive_lag_bytes", per.clone());
    assert!((0.0..(16 << 20) as f64).contains(&lag), "lag {lag}");

    // Requests: the backup, the refusal (under its code), the listings; and their latency.
    let sdk_calls = |action: &str, code: &str| {
        value(
            &after,
            "polarbackup_api_requests_total",
            json!({"action": action, "code": code}),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(sdk_calls("CreateBackup", "Success"), 1.0);
    assert_eq!(sdk_calls("DescribeBackups", &ghost_code), 1.0);
    assert_eq!(sdk_calls("DescribeBackups", "Success"), 1.0);
    assert_eq!(
        sdk_calls("DescribeLocalAvailableRecoveryTime", "Success"),
        1.0
    );
    assert_eq!(
        must(
            &after,
            "polarbackup_api_request_duration_seconds_count",
            json!({"action": "DescribeBackups"})
        ),
        2.0
    );
    assert_eq!(
        must(
            &after,
            "polarbackup_api_request_duration_seconds_bucket",
            json!({"action": "DescribeBackups", "le": "+Inf"})
        ),
        2.0
    );

    assert_alerts_name_only(&after);

    // Workers: the backup ran on one of them for a while, and none runs now.
    assert_eq!(must(&after, "polarbackup_workers_busy", json!({})), 0.0);
    assert!(must(&after, "polarbackup_worker_busy_seconds_total", json!({})) > 0.0);
}

#[test]
fn metrics_are_off_unless_asked_for_and_serve_nothing_else() {
    let server = shared();
    assert_eq!(server.metrics_addr, None, "no metrics listener by default");

    let on = Server::start(bin(), None, &["--metrics-listen", "127.0.0.1:0"]);
    let addr = on.metrics_addr.expect("metrics listener");
    // The listener answers /metrics only: not the API, not the health check.
    for path in ["/", "/healthz", "/?Action=DescribeBackupTasks"] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut raw).unwrap();
        let (status, _, _) = polarbackup_testkit::http::split_response(&raw);
        assert_eq!(status, 404, "{path}");
    }
    // A bad address is refused at start with the setting named.
    let out = Command::new(bin())
        .args(["serve", "--metrics-listen", "localhost:9187", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metrics_listen") || err.contains("metrics-listen"),
        "{err}"
    );
}

/// `examples/prometheus-alerts.yml` is valid for Prometheus, and its unit tests
/// (`examples/prometheus-alerts.test.yml`: each alert fires when it should, once per cluster
/// however many servers export it, and not otherwise) pass under `promtool`.
#[test]
fn the_shipped_alerts_are_valid_and_fire_as_their_tests_say() {
    let examples = polarbackup_testkit::workspace_root().join("examples");
    for args in [
        vec!["check", "rules", "prometheus-alerts.yml"],
        vec!["test", "rules", "prometheus-alerts.test.yml"],
    ] {
        let tool = polarbackup_testkit::promtool();
        let out = Command::new(&tool)
            .args(&args)
            .current_dir(&examples)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (scripts/install-deps.sh): {e}",
                    tool.display()
                )
            });
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every metric the shipped alerts name is one a server exports (checked against a real
/// scrape in [`metrics_match_what_the_api_reports_after_a_backup`]).
fn assert_alerts_name_only(samples: &[Value]) {
    let rules = std::fs::read_to_string(
        polarbackup_testkit::workspace_root().join("examples/prometheus-alerts.yml"),
    )
    .unwrap();
    let exported: std::collections::HashSet<&str> =
        samples.iter().filter_map(|s| s["name"].as_str()).collect();
    let named: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("polarbackup_"))
        .collect();
    assert!(named.len() >= 5, "{named:?}");
    for name in named {
        assert!(
            exported.contains(name),
            "the alerts name {name}, which no scrape shows"
        );
    }
}
