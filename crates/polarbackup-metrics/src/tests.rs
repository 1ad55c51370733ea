//! The exposition of a known snapshot, line by line.

use super::*;
use jiff::Timestamp;

struct Fixed(Result<Snapshot, String>);

impl Sampler for Fixed {
    fn sample(&self) -> Result<Snapshot, String> {
        self.0.clone()
    }
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn lines(m: &Metrics) -> Vec<String> {
    m.render().lines().map(str::to_owned).collect()
}

fn has(lines: &[String], want: &str) {
    assert!(
        lines.iter().any(|l| l == want),
        "no line {want:?} in:\n{}",
        lines.join("\n")
    );
}

#[test]
fn a_snapshot_becomes_one_series_per_cluster() {
    let snap = Snapshot {
        clusters: vec![
            ClusterSample {
                cluster: "pc-a".into(),
                created_at: at(1_000),
                last_backup: Some(LastBackup {
                    start: at(2_000),
                    end: at(2_090),
                    size: 5_000,
                    stored_size: 1_200,
                }),
                available_sets: 3,
                jobs: vec![("Finished", 3), ("Failed", 1)],
                newest_wal: Some(at(2_500)),
                wal_lag_bytes: Some(16),
                recovery_window: Some((at(2_091), at(2_500))),
                log_retention_seconds: Some(7 * 86_400),
            },
            ClusterSample {
                cluster: "pc-b".into(),
                created_at: at(1_500),
                last_backup: None,
                available_sets: 0,
                jobs: vec![("Finished", 0), ("Failed", 0)],
                newest_wal: None,
                wal_lag_bytes: None,
                recovery_window: None,
                log_retention_seconds: None,
            },
        ],
        workers: WorkerSample {
            slots: 2,
            busy: 1,
            busy_seconds: 12.5,
        },
    };
    let m = Metrics::new(Arc::new(Fixed(Ok(snap))));
    let l = lines(&m);
    has(&l, "polarbackup_store_up 1.0");
    has(&l, "polarbackup_worker_slots 2.0");
    has(&l, "polarbackup_workers_busy 1.0");
    has(&l, "polarbackup_worker_busy_seconds_total 12.5");
    has(
        &l,
        "# TYPE polarbackup_last_successful_backup_timestamp_seconds gauge",
    );
    has(
        &l,
        "polarbackup_last_successful_backup_timestamp_seconds{cluster=\"pc-a\"} 2090.0",
    );
    has(
        &l,
        "polarbackup_last_successful_backup_duration_seconds{cluster=\"pc-a\"} 90.0",
    );
    has(
        &l,
        "polarbackup_last_successful_backup_size_bytes{cluster=\"pc-a\"} 5000.0",
    );
    has(
        &l,
        "polarbackup_last_successful_backup_stored_bytes{cluster=\"pc-a\"} 1200.0",
    );
    has(
        &l,
        "polarbackup_backup_sets_available{cluster=\"pc-b\"} 0.0",
    );
    has(
        &l,
        "polarbackup_backup_jobs{cluster=\"pc-a\",status=\"Failed\"} 1.0",
    );
    has(
        &l,
        "polarbackup_backup_jobs{cluster=\"pc-b\",status=\"Finished\"} 0.0",
    );
    has(
        &l,
        "polarbackup_wal_archive_lag_bytes{cluster=\"pc-a\"} 16.0",
    );
    has(
        &l,
        "polarbackup_recovery_window_seconds{cluster=\"pc-a\"} 409.0",
    );
    has(
        &l,
        "polarbackup_log_backup_retention_seconds{cluster=\"pc-a\"} 604800.0",
    );
    // A cluster without a backup has no last-backup series (an alert on its absence, or on
    // its age, is the operator's choice), and nothing else is made up for it.
    assert!(!l
        .iter()
        .any(|x| x.contains("last_successful") && x.contains("pc-b")));
    assert!(!l
        .iter()
        .any(|x| x.contains("recovery_window") && x.contains("pc-b")));
}

#[test]
fn an_unreadable_store_shows_as_store_up_0_and_no_cluster_series() {
    let m = Metrics::new(Arc::new(Fixed(Err("connection refused".into()))));
    let l = lines(&m);
    has(&l, "polarbackup_store_up 0.0");
    assert!(!l.iter().any(|x| x.contains("cluster=")), "{l:?}");
    assert!(!m.render().contains("connection refused"));
}

#[test]
fn requests_are_counted_by_action_and_code_with_their_latency() {
    let m = Metrics::new(Arc::new(Fixed(Ok(Snapshot::default()))));
    let ms = Duration::from_millis;
    m.observe_request(Some("DescribeBackupTasks"), SUCCESS.into(), ms(1));
    m.observe_request(Some("DescribeBackupTasks"), SUCCESS.into(), ms(3));
    m.observe_request(Some("CreateBackup"), "Forbidden.RAM".into(), ms(2));
    m.observe_request(None, "InvalidAction.NotFound".into(), ms(1));
    let l = lines(&m);
    has(
        &l,
        "polarbackup_api_requests_total{action=\"DescribeBackupTasks\",code=\"Success\"} 2",
    );
    has(
        &l,
        "polarbackup_api_requests_total{action=\"CreateBackup\",code=\"Forbidden.RAM\"} 1",
    );
    has(
        &l,
        "polarbackup_api_requests_total{action=\"unknown\",code=\"InvalidAction.NotFound\"} 1",
    );
    has(
        &l,
        "polarbackup_api_request_duration_seconds_count{action=\"DescribeBackupTasks\"} 2",
    );
    has(
        &l,
        "polarbackup_api_request_duration_seconds_bucket{action=\"DescribeBackupTasks\",le=\"0.002\"} 1",
    );
}
