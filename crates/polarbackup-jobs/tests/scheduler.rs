//! The scheduler over weeks of simulated time: exact slots, exactly once across three servers
//! (on SQLite and on PostgreSQL), one catch-up after downtime, full or incremental by the week,
//! retention that keeps the newest set and the sets a kept incremental one is built on.

mod common;

use common::Backend;
use jiff::{SignedDuration, Timestamp};
use polarbackup_jobs::scheduler::tick;
use polarbackup_model::policy::{FullBackupEvery, PolicyChange, RetentionOnClusterDeletion};
use polarbackup_model::{
    AccountId, BackupJob, BackupJobId, BackupKind, BackupSet, BackupSetStatus, Clock, DbClusterId,
    JobMode, JobStatus, Lsn, ManualClock, WalRange,
};
use polarbackup_store::prelude::*;
use polarbackup_store::{DeletionRefusal, JobFilter, SqliteStore};
use std::sync::Arc;

/// Monday 2026-01-05 00:00:00 UTC.
fn monday() -> Timestamp {
    "2026-01-05T00:00:00Z".parse().expect("time")
}

/// Records a job of `mode` that finished at `at` with its set, incremental on `parent` when
/// given, as a worker would; returns its id.
fn finished_set(
    store: &SqliteStore,
    cluster: &DbClusterId,
    mode: JobMode,
    at: Timestamp,
    parent: Option<BackupJobId>,
) -> BackupJobId {
    let job = store
        .insert_job(
            cluster,
            mode,
            polarbackup_model::TaskAction::NormalBackupTask,
            at,
        )
        .expect("job");
    record_finished(store, job, at, None, parent)
}

/// Ends `job` Finished at `at` with its set, as a worker would; returns its id.
fn record_finished(
    store: &SqliteStore,
    mut job: BackupJob,
    at: Timestamp,
    wal: Option<WalRange>,
    parent: Option<BackupJobId>,
) -> BackupJobId {
    for (s, p) in [
        (JobStatus::Preparing, 1),
        (JobStatus::Uploading, 50),
        (JobStatus::Checking, 95),
        (JobStatus::Finished, 100),
    ] {
        job.advance(s, p, at).expect("advance");
    }
    let set = BackupSet {
        id: job.id,
        cluster_id: job.cluster_id.clone(),
        mode: job.mode,
        status: BackupSetStatus::Success,
        start_time: at,
        end_time: at,
        consistent_time: Some(at),
        size: 1,
        stored_size: 1,
        comment: None,
        wal,
        corrupt: None,
        parent,
    };
    store.end_job(&job, Some(&set), None).expect("end");
    job.id
}

fn setup(dir: &std::path::Path, policy: &[(&str, &str)]) -> (SqliteStore, DbClusterId) {
    let store = SqliteStore::open(dir).expect("open");
    let account = store.create_account(None, monday()).expect("account").id;
    let cluster = new_cluster(&store, &account, policy);
    (store, cluster)
}

fn new_cluster(store: &dyn Store, account: &AccountId, policy: &[(&str, &str)]) -> DbClusterId {
    let cluster = common::add_cluster(store, account, monday());
    let change = PolicyChange::parse(|k| policy.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
        .expect("valid policy");
    store
        .modify_backup_policy(&cluster, &change)
        .expect("policy")
        .expect("a running cluster");
    cluster
}

/// The cluster's automated jobs, oldest first.
fn automated_jobs(store: &dyn Store, cluster: &DbClusterId) -> Vec<BackupJob> {
    let f = JobFilter {
        job_id: None,
        mode: Some(JobMode::Automated),
        ended_since: Timestamp::MIN,
    };
    let mut jobs = store.list_jobs(cluster, &f).expect("list");
    jobs.sort_by_key(|j| j.id);
    jobs
}

fn automated(store: &dyn Store, cluster: &DbClusterId) -> Vec<Timestamp> {
    let mut t: Vec<_> = automated_jobs(store, cluster)
        .iter()
        .map(|j| j.start_time)
        .collect();
    t.sort();
    t
}

/// Ticks every quarter hour for `days`, calling `after` after each tick.
fn ticks(
    store: &dyn Store,
    clock: &ManualClock,
    default: FullBackupEvery,
    days: i64,
    mut after: impl FnMut(),
) {
    for _ in 0..(days * 24 * 4) {
        tick(store, clock, default).expect("tick");
        after();
        clock.advance(SignedDuration::from_mins(15));
    }
}

const MWF_0200: &[(&str, &str)] = &[
    ("PreferredBackupPeriod", "Monday,Wednesday,Friday"),
    ("PreferredBackupTime", "02:00Z-03:00Z"),
];

#[test]
fn three_weeks_of_monday_wednesday_friday_windows() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, cluster) = setup(dir.path(), MWF_0200);
    let clock = ManualClock::new(monday());
    ticks(&store, &clock, FullBackupEvery::Week, 21, || {});
    let got = automated(&store, &cluster);
    assert_eq!(got.len(), 9, "{got:?}");
    for t in &got {
        let z = t.to_zoned(jiff::tz::TimeZone::UTC);
        assert!(
            matches!(
                z.weekday(),
                jiff::civil::Weekday::Monday
                    | jiff::civil::Weekday::Wednesday
                    | jiff::civil::Weekday::Friday
            ),
            "{t}"
        );
        assert_eq!(z.hour(), 2, "queued inside the window: {t}");
    }
}

/// Three servers tick together every half hour for two weeks over several clusters: each
/// Monday, Wednesday and Friday slot of each cluster is queued exactly once, by one of them.
fn three_servers_queue_each_slot_once(backend: Backend) {
    let servers: Vec<Arc<dyn Store>> = (0..3).map(|_| backend.open()).collect();
    let account = servers[0]
        .create_account(None, monday())
        .expect("account")
        .id;
    let clusters: Vec<_> = (0..4)
        .map(|_| new_cluster(&*servers[0], &account, MWF_0200))
        .collect();
    let clock = ManualClock::new(monday());
    for _ in 0..(14 * 24 * 2) {
        let queued: usize = std::thread::scope(|s| {
            let ticks: Vec<_> = servers
                .iter()
                .map(|store| {
                    s.spawn(|| {
                        tick(&**store, &clock, FullBackupEvery::Week)
                            .expect("tick")
                            .queued
                    })
                })
                .collect();
            ticks.into_iter().map(|t| t.join().expect("server")).sum()
        });
        assert!(
            queued <= clusters.len(),
            "{queued} queued at {}",
            clock.now()
        );
        clock.advance(SignedDuration::from_mins(30));
    }
    for cluster in &clusters {
        let got = automated(&*servers[1], cluster);
        let days: std::collections::BTreeSet<_> = got
            .iter()
            .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
            .collect();
        assert_eq!((got.len(), days.len()), (6, 6), "{got:?}");
    }
}

#[test]
fn three_sqlite_processes_queue_each_slot_once() {
    three_servers_queue_each_slot_once(Backend::sqlite());
}

#[test]
fn three_servers_on_postgresql_queue_each_slot_once() {
    three_servers_queue_each_slot_once(Backend::postgres());
}

#[test]
fn a_downtime_over_many_windows_gives_one_catch_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, cluster) = setup(dir.path(), &[("PreferredBackupTime", "02:00Z-03:00Z")]);
    let clock = ManualClock::new(monday());
    ticks(&store, &clock, FullBackupEvery::Week, 3, || {});
    assert_eq!(automated(&store, &cluster).len(), 3, "one a day");
    // Down for ten days, back at 12:00 on a day whose window has passed.
    clock.advance(SignedDuration::from_hours(10 * 24 + 12));
    let report = tick(&store, &clock, FullBackupEvery::Week).expect("tick");
    assert_eq!(report.queued, 1, "one catch-up, not a burst");
    for _ in 0..8 {
        clock.advance(SignedDuration::from_mins(15));
        assert_eq!(
            tick(&store, &clock, FullBackupEvery::Week)
                .expect("tick")
                .queued,
            0
        );
    }
    assert_eq!(automated(&store, &cluster).len(), 4);
}

#[test]
fn retention_expires_old_automated_sets_but_keeps_the_newest_and_manual_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, cluster) = setup(dir.path(), &[("DataLevel1BackupRetentionPeriod", "3")]);
    let clock = ManualClock::new(monday());
    let finish = |mode: JobMode, at: Timestamp| finished_set(&store, &cluster, mode, at, None);
    let day = |d: i64| monday() + SignedDuration::from_hours(24 * d);
    let old_auto = finish(JobMode::Automated, day(0));
    let old_manual = finish(JobMode::Manual, day(0));
    clock.set(day(10));
    let report = tick(&store, &clock, FullBackupEvery::Week).expect("tick");
    assert_eq!(
        report.expired, 0,
        "the newest successful automated set is never expired"
    );
    let newer = finish(JobMode::Automated, day(9));
    let report = tick(&store, &clock, FullBackupEvery::Week).expect("tick");
    assert_eq!(report.expired, 1);
    let listed: Vec<_> = store
        .cluster_sets(&cluster)
        .expect("sets")
        .iter()
        .map(|s| s.id)
        .collect();
    assert!(!listed.contains(&old_auto));
    assert!(listed.contains(&old_manual) && listed.contains(&newer));
    assert_eq!(
        store.pending_deletions().expect("pending")[0].id,
        old_auto,
        "data removal is queued"
    );
}

#[test]
fn a_released_cluster_gets_no_more_automated_backups() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, cluster) = setup(dir.path(), &[("PreferredBackupTime", "02:00Z-03:00Z")]);
    let clock = ManualClock::new(monday());
    ticks(&store, &clock, FullBackupEvery::Week, 1, || {});
    assert_eq!(automated(&store, &cluster).len(), 1);
    // The queued job holds the deletion off until it ends.
    let all = JobFilter {
        job_id: None,
        mode: None,
        ended_since: Timestamp::MIN,
    };
    let mut queued = store.list_jobs(&cluster, &all).expect("jobs").remove(0);
    let retention = Some(RetentionOnClusterDeletion::All);
    assert!(matches!(
        store.begin_cluster_deletion(&cluster, retention, clock.now()),
        Ok(Err(DeletionRefusal::ActiveJob(_)))
    ));
    queued.fail("no worker", clock.now()).expect("fail");
    store.end_job(&queued, None, None).expect("end");
    store
        .begin_cluster_deletion(&cluster, retention, clock.now())
        .expect("begin")
        .expect("nothing runs now");
    for _ in 0..(7 * 24 * 4) {
        assert_eq!(
            tick(&store, &clock, FullBackupEvery::Week).expect("tick"),
            Default::default()
        );
        clock.advance(SignedDuration::from_mins(15));
    }
    assert_eq!(automated(&store, &cluster).len(), 1);
}

/// The kinds of the cluster's automated jobs, oldest first.
fn kinds(store: &dyn Store, cluster: &DbClusterId) -> Vec<BackupKind> {
    automated_jobs(store, cluster)
        .iter()
        .map(|j| j.kind)
        .collect()
}

/// Ends every queued automated job of `cluster` Finished at `at` with a set that has a WAL
/// range (so an incremental backup can build on it), as a worker would.
fn finish_queued(store: &SqliteStore, cluster: &DbClusterId, at: Timestamp) {
    for job in automated_jobs(store, cluster) {
        if job.status != JobStatus::NoStart {
            continue;
        }
        let start = Lsn(job.id.0 * 1000);
        let wal = WalRange {
            timeline: 1,
            start,
            end: Lsn(start.0 + 10),
        };
        record_finished(store, job, at, Some(wal), None);
    }
}

#[test]
fn the_first_automated_backup_of_each_week_is_full_the_others_incremental() {
    use BackupKind::{Full, Incremental};
    let dir = tempfile::tempdir().expect("tmp");
    let (store, cluster) = setup(dir.path(), MWF_0200);
    let clock = ManualClock::new(monday());
    let run_week = |default: FullBackupEvery| {
        ticks(&store, &clock, default, 7, || {
            finish_queued(&store, &cluster, clock.now())
        })
    };
    run_week(FullBackupEvery::Week);
    run_week(FullBackupEvery::Week);
    // The cluster's schedule started on Monday 00:00 (its creation), so its first slot lies in
    // the same week as the previous "slot"; it is full because there is no set to build on.
    assert_eq!(
        kinds(&store, &cluster),
        vec![
            Full,
            Incremental,
            Incremental,
            Full,
            Incremental,
            Incremental
        ]
    );
    // The server's default applies to a cluster without a setting of its own...
    run_week(FullBackupEvery::Always);
    assert_eq!(kinds(&store, &cluster)[6..], [Full, Full, Full]);
    // ...and the cluster's own setting beats it.
    store
        .set_full_backup_every(&cluster, Some(FullBackupEvery::Week))
        .expect("set")
        .expect("running");
    run_week(FullBackupEvery::Always);
    assert_eq!(
        kinds(&store, &cluster)[9..],
        [Full, Incremental, Incremental]
    );
    store
        .set_full_backup_every(&cluster, Some(FullBackupEvery::Always))
        .expect("set")
        .expect("running");
    run_week(FullBackupEvery::Week);
    assert_eq!(kinds(&store, &cluster)[12..], [Full, Full, Full]);
}

#[test]
fn after_downtime_the_catch_up_of_a_new_week_is_full() {
    use BackupKind::{Full, Incremental};
    let dir = tempfile::tempdir().expect("tmp");
    let (store, cluster) = setup(dir.path(), MWF_0200);
    let clock = ManualClock::new(monday());
    // Monday's and Wednesday's slots run; the server is down from Thursday to the next
    // Wednesday afternoon, whose catch-up is the first slot of its week.
    ticks(&store, &clock, FullBackupEvery::Week, 3, || {
        finish_queued(&store, &cluster, clock.now())
    });
    clock.set(monday() + SignedDuration::from_hours(9 * 24 + 15));
    tick(&store, &clock, FullBackupEvery::Week).expect("tick");
    assert_eq!(kinds(&store, &cluster), vec![Full, Incremental, Full]);
}

#[test]
fn with_no_set_to_build_on_every_slot_is_full() {
    use BackupKind::Full;
    let dir = tempfile::tempdir().expect("tmp");
    let (store, cluster) = setup(dir.path(), MWF_0200);
    let clock = ManualClock::new(monday());
    // The jobs never finish (say, the database is down all week): each slot that would be
    // incremental has nothing to build on, so it is queued as what the engine will take.
    ticks(&store, &clock, FullBackupEvery::Week, 7, || {});
    assert_eq!(kinds(&store, &cluster), vec![Full, Full, Full]);
    for mut job in automated_jobs(&store, &cluster) {
        job.fail("the database was down", clock.now())
            .expect("fail");
        store.end_job(&job, None, None).expect("end");
    }
    // Next week, Monday's full set is found corrupt: it is nothing to build on, so Wednesday's
    // slot is full too; Friday's builds on Wednesday's.
    ticks(&store, &clock, FullBackupEvery::Week, 7, || {
        let queued = kinds(&store, &cluster).len();
        finish_queued(&store, &cluster, clock.now());
        if queued == 4 {
            let monday_set = store.cluster_sets(&cluster).expect("sets")[0].id;
            assert!(store
                .mark_set_corrupt(monday_set, "chunk 3 digest mismatch", clock.now())
                .expect("mark"));
        }
    });
    assert_eq!(
        kinds(&store, &cluster)[3..],
        [Full, Full, BackupKind::Incremental]
    );
}

#[test]
fn retention_keeps_the_sets_a_kept_incremental_set_is_built_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, cluster) = setup(dir.path(), &[("DataLevel1BackupRetentionPeriod", "3")]);
    let clock = ManualClock::new(monday());
    let finish = |at: Timestamp, parent: Option<BackupJobId>| {
        finished_set(&store, &cluster, JobMode::Automated, at, parent)
    };
    let day = |d: i64| monday() + SignedDuration::from_hours(24 * d);
    let full = finish(day(0), None);
    let inc = finish(day(1), Some(full));
    let listed = || -> Vec<BackupJobId> {
        store
            .cluster_sets(&cluster)
            .expect("sets")
            .iter()
            .map(|s| s.id)
            .collect()
    };
    // The full set is past retention, but the newest set (kept) is built on it.
    clock.set(day(10));
    let report = tick(&store, &clock, FullBackupEvery::Week).expect("tick");
    assert_eq!(report.expired, 0);
    assert_eq!(listed(), vec![full, inc]);
    // A newer full set: the old chain expires whole in one pass.
    let newer = finish(day(9), None);
    let report = tick(&store, &clock, FullBackupEvery::Week).expect("tick");
    assert_eq!(report.expired, 2);
    assert_eq!(listed(), vec![newer]);
}
