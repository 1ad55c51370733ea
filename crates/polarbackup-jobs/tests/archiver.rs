//! The WAL archivers' supervision with a scripted archiver on a real SQLite store: one archiver
//! per cluster across servers, takeover, retries, gaps queueing a full backup, a deletion
//! stopping the archiver, and WAL retention.

mod common;

use common::{add_cluster, wait_for};
use jiff::{SignedDuration, Timestamp};
use polarbackup_jobs::archiver::{
    remove_expired_wal, start_archivers, ArchiveConfig, ArchiveContext, ArchiveEnd, RecordOutcome,
    WalArchiver,
};
use polarbackup_jobs::{BoxFuture, CancellationToken, JobError};
use polarbackup_model::policy::RetentionOnClusterDeletion;
use polarbackup_model::{
    Clock, Cluster, DbClusterId, JobMode, LogRetention, Lsn, NewWalObject, SystemClock, WalGap,
    WalObjectKind,
};
use polarbackup_store::prelude::*;
use polarbackup_store::{JobFilter, SqliteStore};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

const SEG: u64 = 16 << 20;

fn object(cluster: &DbClusterId, n: u64, key: String, at: Timestamp) -> NewWalObject {
    NewWalObject {
        cluster_id: cluster.clone(),
        timeline: 1,
        kind: WalObjectKind::Segment,
        name: format!("{:024X}", n),
        start: Lsn(n * SEG),
        end: Lsn((n + 1) * SEG),
        size: SEG,
        stored_size: 10,
        key,
        digest: "00".repeat(32),
        start_time: at,
        end_time: at,
    }
}

/// What the scripted archiver does when it runs.
#[derive(Clone, Copy, PartialEq)]
enum Script {
    /// Records one object, then streams until stopped.
    Stream,
    /// Fails this many times first.
    FailFirst(usize),
    /// Reports a gap, then streams.
    Gap,
}

#[derive(Default)]
struct Stats {
    /// Archivers running now, and the most ever at once, per cluster.
    active: HashMap<DbClusterId, usize>,
    most: HashMap<DbClusterId, usize>,
    runs: HashMap<DbClusterId, usize>,
    /// Outcomes of records made after the archiver was stopped.
    late: Vec<RecordOutcome>,
    deleted: Vec<String>,
    /// Clusters whose slot the supervisor dropped.
    dropped: Vec<DbClusterId>,
    /// What the repository holds per cluster, as `stored_wal` lists it.
    in_repo: HashMap<DbClusterId, Vec<String>>,
}

struct Scripted {
    script: Script,
    name: &'static str,
    stats: Arc<Mutex<Stats>>,
    keys: AtomicUsize,
}

impl Scripted {
    fn new(script: Script, name: &'static str, stats: Arc<Mutex<Stats>>) -> Arc<Self> {
        Arc::new(Self {
            script,
            name,
            stats,
            keys: AtomicUsize::new(0),
        })
    }
}

impl WalArchiver for Scripted {
    fn archive<'a>(
        &'a self,
        ctx: &'a ArchiveContext,
    ) -> BoxFuture<'a, Result<ArchiveEnd, JobError>> {
        Box::pin(async move {
            let id = ctx.cluster.id.clone();
            let run = {
                let mut s = self.stats.lock().unwrap();
                let run = *s
                    .runs
                    .entry(id.clone())
                    .and_modify(|n| *n += 1)
                    .or_insert(1);
                let active = s.active.entry(id.clone()).or_default();
                *active += 1;
                let now = *active;
                let most = s.most.entry(id.clone()).or_default();
                *most = (*most).max(now);
                run
            };
            let end = async {
                if let Script::FailFirst(n) = self.script {
                    if run <= n {
                        return Err(JobError::Backup(format!("scripted failure {run}")));
                    }
                }
                if self.script == Script::Gap && run == 1 {
                    ctx.sink
                        .gap(WalGap {
                            cluster_id: id.clone(),
                            timeline: 1,
                            from: Lsn(SEG),
                            to: Lsn(3 * SEG),
                            detected_at: SystemClock.now(),
                            reason: "slot invalidated".into(),
                        })
                        .await?;
                }
                let k = self.keys.fetch_add(1, Ordering::SeqCst);
                let key = format!("wal/{}/{}-{k}", id, self.name);
                let n = ctx.resume().map_or(1, |(_, end)| end.0 / SEG);
                match ctx
                    .sink
                    .record(object(&id, n, key, SystemClock.now()))
                    .await?
                {
                    RecordOutcome::LeaseLost => return Ok(ArchiveEnd::LeaseLost),
                    RecordOutcome::Kept { .. } => {}
                }
                ctx.cancel.cancelled().await;
                // A record after the stop: refused once the lease is gone.
                let late = ctx
                    .sink
                    .record(object(
                        &id,
                        n + 1,
                        format!("{}-late-{k}", self.name),
                        SystemClock.now(),
                    ))
                    .await?;
                self.stats.lock().unwrap().late.push(late);
                Ok(ArchiveEnd::Cancelled)
            }
            .await;
            *self.stats.lock().unwrap().active.get_mut(&id).unwrap() -= 1;
            end
        })
    }

    fn stored_wal<'a>(
        &'a self,
        cluster: &'a DbClusterId,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
        Box::pin(async move {
            let st = self.stats.lock().unwrap();
            Ok(st.in_repo.get(cluster).cloned().unwrap_or_default())
        })
    }

    fn drop_slot<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Result<bool, JobError>> {
        Box::pin(async move {
            self.stats.lock().unwrap().dropped.push(cluster.id.clone());
            Ok(true)
        })
    }

    fn delete_wal<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            self.stats.lock().unwrap().deleted.extend_from_slice(keys);
            Ok(())
        })
    }
}

fn config() -> ArchiveConfig {
    ArchiveConfig {
        // Long enough that a starved heartbeat on a busy machine does not lose it.
        lease: SignedDuration::from_secs(6),
        poll: Duration::from_millis(50),
        retry_first: Duration::from_millis(20),
        retry_cap: Duration::from_millis(100),
        retention_every: Duration::from_secs(3600),
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    clusters: Vec<DbClusterId>,
}

fn setup(clusters: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let now = SystemClock.now();
    let account = store.create_account(None, now).unwrap().id;
    let clusters = (0..clusters)
        .map(|_| add_cluster(&*store, &account, now))
        .collect();
    Setup {
        _dir: dir,
        store,
        clusters,
    }
}

fn start(
    s: &Setup,
    archiver: Arc<Scripted>,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    start_archivers(
        s.store.clone(),
        Arc::new(SystemClock),
        archiver,
        config(),
        Arc::new(Notify::new()),
        shutdown.clone(),
    )
}

fn archived(s: &Setup, cluster: &DbClusterId) -> usize {
    s.store.wal_objects(cluster).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_archiver_per_cluster_across_servers_and_a_takeover() {
    let s = setup(3);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let a = start(
        &s,
        Scripted::new(Script::Stream, "a", stats.clone()),
        &stop_a,
    );
    let b = start(
        &s,
        Scripted::new(Script::Stream, "b", stats.clone()),
        &stop_b,
    );
    wait_for("every cluster archived", || {
        s.clusters.iter().all(|c| archived(&s, c) == 1)
    })
    .await;
    // Let both supervisors poll many times over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let st = stats.lock().unwrap();
        for c in &s.clusters {
            assert_eq!(st.most[c], 1, "{c}: two archivers at once");
            assert_eq!(st.runs[c], 1, "{c}: restarted without cause");
        }
    }
    // Server A stops: its archivers end and release their leases; B takes their clusters.
    stop_a.cancel();
    a.await.unwrap();
    wait_for("B archives every cluster", || {
        let st = stats.lock().unwrap();
        s.clusters.iter().all(|c| st.active.get(c) == Some(&1))
    })
    .await;
    // Each of B's runs recorded its own object on every cluster.
    wait_for("takeover recorded", || {
        s.clusters.iter().all(|c| {
            s.store
                .wal_objects(c)
                .unwrap()
                .iter()
                .any(|w| w.object.key.contains("/b-"))
        })
    })
    .await;
    stop_b.cancel();
    b.await.unwrap();
    let st = stats.lock().unwrap();
    for c in &s.clusters {
        assert_eq!(st.most[c], 1, "{c}: two archivers at once");
        assert_eq!(st.active[c], 0);
    }
    // A stopped archiver's late records went through only while it still held the lease:
    // stopping releases the lease after the archiver returned. Nothing of a Running cluster's
    // is removed.
    assert!(!st.late.is_empty());
    assert!(
        st.dropped.is_empty(),
        "a running cluster's slot is never dropped"
    );
    assert_eq!(st.deleted, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_archiver_is_restarted_with_backoff() {
    let s = setup(1);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let stop = CancellationToken::new();
    let task = start(
        &s,
        Scripted::new(Script::FailFirst(3), "a", stats.clone()),
        &stop,
    );
    wait_for("archived after three failures", || {
        archived(&s, &s.clusters[0]) == 1
    })
    .await;
    assert_eq!(stats.lock().unwrap().runs[&s.clusters[0]], 4);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_is_recorded_and_queues_a_full_backup() {
    let s = setup(1);
    let c = &s.clusters[0];
    let stats = Arc::new(Mutex::new(Stats::default()));
    let stop = CancellationToken::new();
    let task = start(&s, Scripted::new(Script::Gap, "a", stats.clone()), &stop);
    wait_for("archived", || archived(&s, c) == 1).await;
    let gaps = s.store.gaps(c).unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].from, gaps[0].to), (Lsn(SEG), Lsn(3 * SEG)));
    let jobs = s
        .store
        .list_jobs(
            c,
            &JobFilter {
                job_id: None,
                mode: None,
                ended_since: Timestamp::UNIX_EPOCH,
            },
        )
        .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].mode, JobMode::Automated);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_cluster_stops_its_archiver_and_its_log_backup_is_released() {
    let s = setup(1);
    let c = &s.clusters[0];
    let stats = Arc::new(Mutex::new(Stats::default()));
    let stop = CancellationToken::new();
    let task = start(&s, Scripted::new(Script::Stream, "a", stats.clone()), &stop);
    wait_for("archived", || archived(&s, c) == 1).await;
    let recorded = s.store.wal_objects(c).unwrap()[0].object.key.clone();
    s.store
        .begin_cluster_deletion(c, Some(RetentionOnClusterDeletion::All), SystemClock.now())
        .unwrap()
        .unwrap();
    // The heartbeat (every 2 s with a 6 s lease) finds the cluster gone and stops it.
    wait_for("archiver stopped", || stats.lock().unwrap().active[c] == 0).await;
    assert_eq!(stats.lock().unwrap().late, vec![RecordOutcome::LeaseLost]);
    // The release pass (as for DeleteDBCluster: nobody else would) drops the slot and removes
    // the recorded WAL, data and rows.
    wait_for("released", || archived(&s, c) == 0).await;
    let deleted = stats.lock().unwrap().deleted.clone();
    assert!(deleted.contains(&recorded), "{deleted:?}");
    // What it stored too late for a record goes again: nothing would ever remove it.
    assert!(deleted.contains(&"a-late-0".to_owned()), "{deleted:?}");
    stop.cancel();
    task.await.unwrap();
    assert_eq!(
        stats.lock().unwrap().runs[c],
        1,
        "a deleted cluster is not archived again"
    );
    // The slot is dropped by the release, and once more after the archiver stopped, in case a
    // reconnect made it again after the release dropped it.
    let dropped = stats.lock().unwrap().dropped.clone();
    assert!(
        !dropped.is_empty() && dropped.iter().all(|d| d == c),
        "{dropped:?}"
    );
    assert!(
        s.store.released_with_wal().unwrap().is_empty(),
        "nothing left to release"
    );
}

#[tokio::test]
async fn retention_removes_old_wal_rows_then_data() {
    let s = setup(1);
    let c = &s.clusters[0];
    let now = SystemClock.now();
    let worker = "w";
    assert!(s
        .store
        .claim_archiver(c, worker, now + SignedDuration::from_secs(60), now)
        .unwrap());
    let day = SignedDuration::from_hours(24);
    for (n, age_days) in [(1u64, 9i64), (2, 8), (3, 1)] {
        let at = now - day * age_days as i32;
        let o = object(c, n, format!("wal/{c}/{n}"), at);
        s.store.record_wal(worker, &o, now).unwrap().unwrap();
    }
    s.store
        .modify_log_backup_policy(c, LogRetention::Days(7))
        .unwrap()
        .unwrap();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let archiver = Scripted::new(Script::Stream, "a", stats.clone());
    let removed = remove_expired_wal(s.store.clone(), &SystemClock, archiver.as_ref(), c)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let left: Vec<_> = s
        .store
        .wal_objects(c)
        .unwrap()
        .into_iter()
        .map(|w| w.object.key)
        .collect();
    assert_eq!(left, vec![format!("wal/{c}/3")]);
    assert_eq!(
        stats.lock().unwrap().deleted,
        vec![format!("wal/{c}/1"), format!("wal/{c}/2")]
    );
    // Nothing more to do.
    assert_eq!(
        remove_expired_wal(s.store.clone(), &SystemClock, archiver.as_ref(), c)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_stored_but_never_recorded_are_removed_when_an_archiver_starts() {
    let s = setup(1);
    let c = &s.clusters[0];
    let now = SystemClock.now();
    assert!(s
        .store
        .claim_archiver(c, "old", now + SignedDuration::from_secs(1), now)
        .unwrap());
    let kept = format!("wal/{c}/kept");
    s.store
        .record_wal("old", &object(c, 1, kept.clone(), now), now)
        .unwrap()
        .unwrap();
    s.store.release_archiver(c, "old").unwrap();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let orphan = format!("wal/{c}/cut-off.partial");
    stats
        .lock()
        .unwrap()
        .in_repo
        .insert(c.clone(), vec![kept.clone(), orphan.clone()]);
    let stop = CancellationToken::new();
    let task = start(&s, Scripted::new(Script::Stream, "a", stats.clone()), &stop);
    wait_for("archived", || archived(&s, c) == 2).await;
    assert_eq!(
        stats.lock().unwrap().deleted,
        vec![orphan],
        "only the unrecorded one"
    );
    stop.cancel();
    task.await.unwrap();
}
