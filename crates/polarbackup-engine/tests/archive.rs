//! The continuous WAL archiver against real PostgreSQL: segments and partials byte for byte
//! as the server wrote them, the slot never ahead of what is recorded, resuming without a
//! hole, an invalidated slot reported as a gap, timeline switches, dropping the slot.

use polarbackup_engine::pg::{ConnectConfig, Lsn, PgHost, TlsMode};
use polarbackup_engine::{
    archive, drop_archive_slot, ArchiveEnd, ArchiveRequest, EngineError, Recorded, WalSink,
};
use polarbackup_model::log_backup::{slot_name, NewWalObject, WalGap, WalObjectKind};
use polarbackup_model::{DbClusterId, SystemClock};
use polarbackup_repo::{Repo, RepoConfig};
use polarbackup_testkit::pg::{as_postgres, pg_bin_dir, PgCluster};
use polarbackup_testkit::ThrottledProxy;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SEG: u64 = 16 << 20;
const PARTIAL_INTERVAL: Duration = Duration::from_secs(1);
/// How long anything the archiver should do may take; a hang is a failure.
const LIMIT: Duration = Duration::from_secs(30);
/// The archivers' stall deadline here, unless a test sets its own.
const STALL: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------------------------------------
// A sink that records like the metadata store: per timeline and start, the object reaching
// furthest; told to, it fails or loses its lease from the Nth record on.

#[derive(Default)]
struct Sink {
    state: Mutex<SinkState>,
}

#[derive(Default)]
struct SinkState {
    live: Vec<NewWalObject>,
    gaps: Vec<WalGap>,
    records: usize,
    fail_from: Option<usize>,
    lease_lost_from: Option<usize>,
}

impl Sink {
    fn failing_from(n: usize) -> Sink {
        let s = Sink::default();
        s.state.lock().unwrap().fail_from = Some(n);
        s
    }

    fn losing_lease_from(n: usize) -> Sink {
        let s = Sink::default();
        s.state.lock().unwrap().lease_lost_from = Some(n);
        s
    }

    /// What the store holds, by timeline and start.
    fn live(&self) -> Vec<NewWalObject> {
        let mut v = self.state.lock().unwrap().live.clone();
        v.sort_by_key(|o| (o.timeline, o.start, o.end));
        v
    }

    fn gaps(&self) -> Vec<WalGap> {
        self.state.lock().unwrap().gaps.clone()
    }

    /// The archive's end as the store would tell it: the newest object's (timeline, end).
    fn resume(&self) -> Option<(u32, Lsn)> {
        self.live()
            .iter()
            .map(|o| (o.timeline, o.end))
            .max_by_key(|&(tl, end)| (tl, end))
    }

    /// The newest segment or partial, as the store gives it to the archiver to resume from.
    fn newest(&self) -> Option<NewWalObject> {
        self.live()
            .into_iter()
            .filter(|o| o.kind != WalObjectKind::History)
            .max_by_key(|o| (o.timeline, o.end))
    }

    fn has(&self, f: impl Fn(&NewWalObject) -> bool) -> bool {
        self.state.lock().unwrap().live.iter().any(f)
    }
}

impl WalSink for Sink {
    fn record(
        &self,
        o: NewWalObject,
    ) -> Pin<Box<dyn Future<Output = Result<Recorded, String>> + Send + '_>> {
        Box::pin(async move {
            let mut s = self.state.lock().unwrap();
            s.records += 1;
            if s.fail_from.is_some_and(|n| s.records >= n) {
                return Err("the store is down".into());
            }
            if s.lease_lost_from.is_some_and(|n| s.records >= n) {
                return Ok(Recorded::LeaseLost);
            }
            let same_place = |x: &NewWalObject| {
                x.timeline == o.timeline
                    && (x.kind == WalObjectKind::History) == (o.kind == WalObjectKind::History)
                    && x.start == o.start
            };
            let mut obsolete_keys = Vec::new();
            if let Some(i) = s.live.iter().position(same_place) {
                if s.live[i].end > o.end {
                    return Ok(Recorded::Kept {
                        obsolete_keys: vec![o.key],
                    });
                }
                obsolete_keys.push(s.live.remove(i).key);
            }
            s.live.push(o);
            Ok(Recorded::Kept { obsolete_keys })
        })
    }

    fn gap(&self, gap: WalGap) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.state.lock().unwrap().gaps.push(gap);
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

struct Env {
    _dir: tempfile::TempDir,
    repo: Repo,
    cluster: DbClusterId,
}

fn env(cluster: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(&dir.path().join("repo"), RepoConfig::default()).unwrap();
    Env {
        _dir: dir,
        repo,
        cluster: DbClusterId::parse(cluster).unwrap(),
    }
}

fn unix(pg: &PgCluster) -> ConnectConfig {
    let mut c = ConnectConfig::new(
        PgHost::Unix(pg.socket_dir().to_path_buf()),
        pg.port,
        "postgres",
    );
    c.tls = TlsMode::Disable;
    c
}

fn tcp(port: u16) -> ConnectConfig {
    let mut c = ConnectConfig::new(PgHost::Tcp("127.0.0.1".into()), port, "postgres");
    c.tls = TlsMode::Disable;
    c
}

/// An archiver running in the background.
struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Result<ArchiveEnd, EngineError>>,
}

impl Running {
    fn start(
        env: &Env,
        src: &ConnectConfig,
        sink: &Arc<Sink>,
        resume: Option<NewWalObject>,
        partial_interval: Duration,
    ) -> Running {
        Running::start_with(env, src, sink, resume, partial_interval, STALL)
    }

    fn start_with(
        env: &Env,
        src: &ConnectConfig,
        sink: &Arc<Sink>,
        resume: Option<NewWalObject>,
        partial_interval: Duration,
        stall: Duration,
    ) -> Running {
        let cancel = CancellationToken::new();
        let (c, repo, src, sink, id) = (
            cancel.clone(),
            env.repo.clone(),
            src.clone(),
            sink.clone(),
            env.cluster.clone(),
        );
        let task = tokio::spawn(async move {
            let req = ArchiveRequest {
                cluster: &id,
                source: &src,
                repo: &repo,
                clock: Arc::new(SystemClock),
                partial_interval,
                stall,
                resume: resume.as_ref(),
                cancel: &c,
                position: None,
            };
            archive(req, &*sink).await
        });
        Running { cancel, task }
    }

    /// Waits for the archiver to end by itself.
    async fn ended(self) -> Result<ArchiveEnd, EngineError> {
        tokio::time::timeout(LIMIT, self.task)
            .await
            .expect("the archiver did not end")
            .unwrap()
    }

    async fn stop(self) -> Result<ArchiveEnd, EngineError> {
        self.cancel.cancel();
        self.ended().await
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn lsn(pg: &PgCluster, sql: &str) -> Lsn {
    pg.psql(sql).parse().unwrap()
}

fn write_rows(pg: &PgCluster, n: u32) {
    pg.psql(&format!(
        "CREATE TABLE IF NOT EXISTS t (g int, h text);\n\
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, {n}) g;"
    ));
}

/// Ends the current segment (the archiver then has it whole) and returns its end.
fn switch_wal(pg: &PgCluster) -> Lsn {
    write_rows(pg, 10);
    // The end of the switch record, inside the segment it ends.
    let switch_record_end = lsn(pg, "SELECT pg_switch_wal();");
    match switch_record_end.segment_offset(SEG) {
        0 => switch_record_end,
        _ => switch_record_end.segment_start(SEG) + SEG,
    }
}

/// The slot's (restart_lsn, wal_status); `None` without a slot.
fn slot(pg: &PgCluster, env: &Env) -> Option<(Option<Lsn>, String)> {
    let row = pg.psql(&format!(
        "SELECT coalesce(restart_lsn::text, '') || '|' || coalesce(wal_status, '') \
         FROM pg_replication_slots WHERE slot_name = '{}';",
        slot_name(&env.cluster)
    ));
    let (restart, status) = row.split_once('|')?;
    Some((restart.parse().ok(), status.to_string()))
}

/// Reads an object back and checks it against the bytes the server has in its pg_wal.
async fn check_against_server(env: &Env, data_dir: &Path, o: &NewWalObject) {
    let raw = env.repo.read_wal(&o.key, o.size, &o.digest).await.unwrap();
    assert_eq!(blake3::hash(&raw).to_hex().as_str(), o.digest);
    assert_eq!(o.size, raw.len() as u64);
    assert_eq!(o.name, o.start.wal_file_name(o.timeline, SEG), "{o:?}");
    assert_eq!(o.start.segment_offset(SEG), 0, "{o:?}");
    assert_eq!(o.end - o.start, o.size, "{o:?}");
    assert!(o.start_time <= o.end_time, "{o:?}");
    match o.kind {
        WalObjectKind::Segment => assert_eq!(o.size, SEG),
        WalObjectKind::Partial => {
            assert!(o.size > 0 && o.size < SEG, "{o:?}");
            assert!(o
                .key
                .ends_with(&format!("{}.{:016X}.partial.zst", o.name, o.end.0)));
        }
        WalObjectKind::History => unreachable!("checked elsewhere"),
    }
    let file = std::fs::read(data_dir.join("pg_wal").join(&o.name)).unwrap();
    assert!(
        file[..raw.len()] == raw[..],
        "{} differs from the server's file",
        o.key
    );
}

/// Every live segment and partial, in order on each timeline, joins the next: no hole.
fn assert_contiguous(live: &[NewWalObject]) {
    let wal: Vec<_> = live
        .iter()
        .filter(|o| o.kind != WalObjectKind::History)
        .collect();
    for pair in wal.windows(2) {
        if pair[0].timeline == pair[1].timeline {
            assert_eq!(
                pair[0].end, pair[1].start,
                "a hole between {:?} and {:?}",
                pair[0], pair[1]
            );
        }
    }
}

fn count(sink: &Sink, kind: WalObjectKind) -> usize {
    sink.live().iter().filter(|o| o.kind == kind).count()
}

// ---------------------------------------------------------------------------------------------
// Segments and partials, on every supported major version.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_13_segments_and_partials() {
    segments_and_partials(PgCluster::init_major(13), "pc-archive00000013").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_14_segments_and_partials() {
    segments_and_partials(PgCluster::init_major(14), "pc-archive00000014").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_15_segments_and_partials() {
    segments_and_partials(PgCluster::init(), "pc-archive00000015").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_16_segments_and_partials() {
    segments_and_partials(PgCluster::init_major(16), "pc-archive00000016").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_17_segments_and_partials() {
    segments_and_partials(PgCluster::init_major(17), "pc-archive00000017").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_18_segments_and_partials() {
    segments_and_partials(PgCluster::init_major(18), "pc-archive00000018").await;
}

/// A partial within about the interval of writing, whole segments as the server has them,
/// the slot following what is recorded, and dropping the slot under a running archiver.
async fn segments_and_partials(pg: PgCluster, cluster: &str) {
    let env = env(cluster);
    let src = unix(&pg);
    let sink = Arc::new(Sink::default());
    let run = Running::start(&env, &src, &sink, None, PARTIAL_INTERVAL);
    wait_for("the slot", || slot(&pg, &env).is_some()).await;

    write_rows(&pg, 1000);
    let written = Instant::now();
    wait_for("a partial", || count(&sink, WalObjectKind::Partial) > 0).await;
    let took = written.elapsed();
    assert!(
        took < PARTIAL_INTERVAL + Duration::from_secs(3),
        "the first partial took {took:?}"
    );

    let boundary = switch_wal(&pg);
    assert_eq!(boundary.segment_offset(SEG), 0);
    wait_for("the whole segment", || {
        sink.has(|o| o.kind == WalObjectKind::Segment && o.end == boundary)
    })
    .await;
    // The segment replaced its partials.
    assert!(!sink.has(|o| o.kind == WalObjectKind::Partial && o.end <= boundary));
    write_rows(&pg, 500);
    wait_for("a partial after the boundary", || {
        sink.has(|o| o.kind == WalObjectKind::Partial && o.start == boundary)
    })
    .await;

    // The slot reaches what is recorded, and never more.
    wait_for("the slot to follow", || {
        let restart = slot(&pg, &env).unwrap().0.unwrap();
        let recorded = sink.resume().unwrap().1;
        assert!(
            restart <= recorded,
            "slot at {restart}, recorded {recorded}"
        );
        restart == recorded
    })
    .await;

    let live = sink.live();
    assert_contiguous(&live);
    for o in &live {
        assert_eq!((o.timeline, o.cluster_id.as_str()), (1, cluster));
        check_against_server(&env, pg.data_dir(), o).await;
    }
    // Deleted as obsolete: only what is recorded stays in the repository.
    let mut keys = env.repo.list_wal(cluster).await.unwrap();
    keys.sort();
    let mut want: Vec<_> = live.iter().map(|o| o.key.clone()).collect();
    want.sort();
    assert_eq!(keys, want);

    // Dropping the slot ends the walsender streaming from it, and the archiver with it.
    assert!(drop_archive_slot(&src, &env.cluster).await.unwrap());
    assert!(run.ended().await.is_err());
    assert_eq!(slot(&pg, &env), None);
    assert!(!drop_archive_slot(&src, &env.cluster).await.unwrap());
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_never_passes_what_is_recorded() {
    let pg = PgCluster::init();
    let env = env("pc-archiveflush001");
    let src = unix(&pg);

    // The store fails on the third record: the archiver stops, the slot stays behind.
    let sink = Arc::new(Sink::failing_from(3));
    let run = Running::start(&env, &src, &sink, None, PARTIAL_INTERVAL);
    wait_for("the slot", || slot(&pg, &env).is_some()).await;
    let created_at = slot(&pg, &env).unwrap().0.unwrap();
    let mut result = None;
    for _ in 0..20 {
        switch_wal(&pg);
        if run.task.is_finished() {
            result = Some(run.ended().await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let err = result.expect("the archiver went on past a failing store");
    assert!(matches!(err, Err(EngineError::Sink(_))), "{err:?}");
    let recorded = sink.resume().unwrap().1;
    let restart = slot(&pg, &env).unwrap().0.unwrap();
    assert!(
        restart <= recorded && restart >= created_at,
        "slot at {restart}, recorded up to {recorded}"
    );

    // The lease lost on the second record: the run ends at once.
    let sink2 = Arc::new(Sink::losing_lease_from(2));
    let run = Running::start(&env, &src, &sink2, sink.newest(), PARTIAL_INTERVAL);
    let mut end = None;
    for _ in 0..20 {
        switch_wal(&pg);
        if run.task.is_finished() {
            end = Some(run.ended().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(end, Some(ArchiveEnd::LeaseLost));
    let recorded = sink2.resume().unwrap().1;
    let restart = slot(&pg, &env).unwrap().0.unwrap();
    assert!(
        restart <= recorded,
        "slot at {restart}, recorded {recorded}"
    );
}

/// The database behind the cluster was made anew (another system identifier): the archiver
/// refuses it before making anything for it, and the archive is left as it was. The old
/// database still resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_another_database_system_is_refused() {
    let old = PgCluster::init();
    let env = env("pc-archivesystem01");
    let sink = Arc::new(Sink::default());
    let run = Running::start(&env, &unix(&old), &sink, None, PARTIAL_INTERVAL);
    let end = switch_wal(&old);
    wait_for("a whole segment", || {
        sink.has(|o| o.kind == WalObjectKind::Segment && o.end >= end)
    })
    .await;
    run.stop().await.unwrap();
    let archived = sink.live();

    let new = PgCluster::init();
    let system = |pg: &PgCluster| pg.psql("SELECT system_identifier FROM pg_control_system();");
    assert_ne!(system(&old), system(&new));
    let run = Running::start(&env, &unix(&new), &sink, sink.newest(), PARTIAL_INTERVAL);
    let err = match run.ended().await {
        Err(EngineError::Prerequisite(m)) => m,
        other => panic!("the other system was archived: {other:?}"),
    };
    assert!(
        err.contains(&format!("PostgreSQL system {}", system(&new)))
            && err.contains(&format!("holds system {}", system(&old))),
        "{err}"
    );
    assert_eq!(slot(&new, &env), None, "no slot made on the other system");
    assert_eq!(sink.live(), archived, "the archive is untouched");

    let run = Running::start(&env, &unix(&old), &sink, sink.newest(), PARTIAL_INTERVAL);
    let next = switch_wal(&old);
    wait_for("the next segment", || {
        sink.has(|o| o.kind == WalObjectKind::Segment && o.end >= next)
    })
    .await;
    run.stop().await.unwrap();

    // The newest object lost from the repository cannot tell the system: not checked, and
    // archiving goes on.
    let newest = sink.newest().unwrap();
    env.repo.delete_wal(&newest.key).await.unwrap();
    let run = Running::start(&env, &unix(&old), &sink, Some(newest), PARTIAL_INTERVAL);
    let after = switch_wal(&old);
    wait_for("a segment after the lost object", || {
        sink.has(|o| o.kind == WalObjectKind::Segment && o.end >= after)
    })
    .await;
    run.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_resume_leave_no_hole() {
    let pg = PgCluster::init();
    let env = env("pc-archiveresume01");
    let src = unix(&pg);
    let sink = Arc::new(Sink::default());

    // A long interval: the WAL written goes in only because of the cancel.
    let run = Running::start(&env, &src, &sink, None, Duration::from_secs(600));
    wait_for("the slot", || slot(&pg, &env).is_some()).await;
    write_rows(&pg, 2000);
    let flushed = lsn(&pg, "SELECT pg_current_wal_flush_lsn();");
    wait_for("the WAL to be sent", || {
        let sent = pg.psql("SELECT coalesce(max(sent_lsn)::text, '0/0') FROM pg_stat_replication;");
        sent.parse::<Lsn>().unwrap() >= flushed
    })
    .await;
    assert_eq!(run.stop().await.unwrap(), ArchiveEnd::Cancelled);
    let (tl, end) = sink.resume().unwrap();
    assert!(
        end >= flushed,
        "stored up to {end} on cancel, flushed {flushed}"
    );
    assert_eq!(count(&sink, WalObjectKind::Partial), 1);

    // Meanwhile more WAL, across a segment boundary; then resumed.
    write_rows(&pg, 2000);
    let boundary = switch_wal(&pg);
    write_rows(&pg, 100);
    assert_eq!(sink.resume(), Some((tl, end)), "nothing recorded meanwhile");
    let run = Running::start(&env, &src, &sink, sink.newest(), PARTIAL_INTERVAL);
    wait_for("the resumed archive", || {
        sink.has(|o| o.kind == WalObjectKind::Partial && o.start == boundary)
    })
    .await;
    assert_eq!(run.stop().await.unwrap(), ArchiveEnd::Cancelled);
    let live = sink.live();
    assert_contiguous(&live);
    assert_eq!(live.first().unwrap().end, boundary, "{live:?}");
    for o in &live {
        check_against_server(&env, pg.data_dir(), o).await;
    }
}

/// A stream that stalls (a stopped server or a network cut: nothing arrives, nothing fails)
/// ends the run as stalled after the deadline instead of hanging it, with the WAL received
/// stored; the next run (the jobs' archiver restarts it) archives on from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_ends_the_run_and_the_next_run_goes_on() {
    let pg = PgCluster::init();
    let env = env("pc-archivesilent01");
    let link = ThrottledProxy::start(pg.port, 0);
    let sink = Arc::new(Sink::default());
    let stall = Duration::from_secs(2);
    let start = |resume| {
        let src = tcp(link.port());
        Running::start_with(&env, &src, &sink, resume, PARTIAL_INTERVAL, stall)
    };
    let run = start(None);
    write_rows(&pg, 100);
    wait_for("a partial", || count(&sink, WalObjectKind::Partial) > 0).await;
    link.stall(true);
    let stalled_at = Instant::now();
    let end = run.ended().await;
    let took = stalled_at.elapsed();
    eprintln!("WAL stream stalled; the run ended after {took:?}: {end:?}");
    let err = end.unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Stalled {
                secs: 2,
                what: "WAL stream"
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no data from the database for 2 s; the WAL stream stalled"
    );
    // Measured from the last keepalive, which came up to a status interval before the stall.
    assert!(
        took + stall / 3 >= stall,
        "not before the deadline: {took:?}"
    );

    // The stalled connection is dropped: once the network is back, its walsender goes and
    // a new run takes the slot and archives on without a hole.
    link.stall(false);
    let resume = sink.resume();
    let run = start(sink.newest());
    write_rows(&pg, 100);
    wait_for("WAL after the stall", || sink.resume() > resume).await;
    assert_eq!(run.stop().await.unwrap(), ArchiveEnd::Cancelled);
    assert_contiguous(&sink.live());
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_13_an_invalidated_slot_is_a_gap() {
    an_invalidated_slot_is_a_gap(PgCluster::init_major(13), "pc-archivegap00013").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_15_an_invalidated_slot_is_a_gap() {
    an_invalidated_slot_is_a_gap(PgCluster::init(), "pc-archivegap00015").await;
}

async fn an_invalidated_slot_is_a_gap(pg: PgCluster, cluster: &str) {
    let env = env(cluster);
    let src = unix(&pg);
    let sink = Arc::new(Sink::default());
    let run = Running::start(&env, &src, &sink, None, PARTIAL_INTERVAL);
    write_rows(&pg, 100);
    wait_for("a partial", || count(&sink, WalObjectKind::Partial) > 0).await;
    run.stop().await.unwrap();
    let (tl, end) = sink.resume().unwrap();

    // While the archiver is away, the server keeps too little WAL for the slot.
    pg.psql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB';\nSELECT pg_reload_conf();");
    for _ in 0..4 {
        switch_wal(&pg);
    }
    pg.psql("CHECKPOINT;");
    assert_eq!(slot(&pg, &env).unwrap().1, "lost");

    assert_eq!(sink.resume(), Some((tl, end)), "nothing recorded meanwhile");
    let run = Running::start(&env, &src, &sink, sink.newest(), PARTIAL_INTERVAL);
    wait_for("the gap", || !sink.gaps().is_empty()).await;
    write_rows(&pg, 100);
    let gap = sink.gaps().remove(0);
    wait_for("WAL after the gap", || {
        sink.has(|o| o.start == gap.to && o.kind != WalObjectKind::History)
    })
    .await;
    assert_eq!(run.stop().await.unwrap(), ArchiveEnd::Cancelled);
    assert_eq!(sink.gaps().len(), 1, "{:?}", sink.gaps());
    assert_eq!((gap.timeline, gap.from), (1, end));
    assert!(gap.to > end && gap.to.segment_offset(SEG) == 0, "{gap:?}");
    assert!(
        gap.reason.contains("already been removed") && gap.reason.contains("invalidated"),
        "{}",
        gap.reason
    );
    let (restart, status) = slot(&pg, &env).unwrap();
    assert_ne!(status, "lost");
    assert!(restart.unwrap() >= gap.to);
    for o in sink.live().iter().filter(|o| o.start >= gap.to) {
        check_against_server(&env, pg.data_dir(), o).await;
    }

    // A slot gone while the archiver is away, but not its WAL: made anew, no gap.
    assert!(drop_archive_slot(&src, &env.cluster).await.unwrap());
    write_rows(&pg, 100);
    let run = Running::start(&env, &src, &sink, sink.newest(), PARTIAL_INTERVAL);
    let flushed = lsn(&pg, "SELECT pg_current_wal_flush_lsn();");
    wait_for("the WAL written meanwhile", || {
        sink.resume().is_some_and(|(_, end)| end >= flushed)
    })
    .await;
    run.stop().await.unwrap();
    assert_eq!(sink.gaps().len(), 1, "{:?}", sink.gaps());
    let after_first: Vec<_> = sink
        .live()
        .into_iter()
        .filter(|o| o.start >= gap.to)
        .collect();
    assert_contiguous(&after_first);

    // Gone with its WAL: a second gap, which says the slot was missing.
    let (_, end) = sink.resume().unwrap();
    assert!(drop_archive_slot(&src, &env.cluster).await.unwrap());
    for _ in 0..4 {
        switch_wal(&pg);
    }
    pg.psql("CHECKPOINT;");
    let run = Running::start(&env, &src, &sink, sink.newest(), PARTIAL_INTERVAL);
    wait_for("the second gap", || sink.gaps().len() == 2).await;
    run.stop().await.unwrap();
    let second = sink.gaps().remove(1);
    assert_eq!(second.from, end);
    assert!(second.to > end, "{second:?}");
    assert!(
        second.reason.contains("slot was missing"),
        "{}",
        second.reason
    );
}

// ---------------------------------------------------------------------------------------------

/// A standby of `primary`, streaming from it (pg_basebackup -R), started.
fn standby_of(primary: &PgCluster) -> (tempfile::TempDir, PgCluster) {
    let (scratch, data) = polarbackup_testkit::pg::restore_target();
    let out = as_postgres(
        &pg_bin_dir().join("pg_basebackup"),
        &[
            "-D",
            data.to_str().unwrap(),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-h",
            primary.socket_dir().to_str().unwrap(),
            "-p",
            &primary.port.to_string(),
            "-U",
            "postgres",
        ],
    );
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let standby = PgCluster::start_on(&data);
    (scratch, standby)
}

fn pg_ctl(data: &Path, args: &[&str]) {
    let mut all = vec!["-D", data.to_str().unwrap(), "-w"];
    all.extend_from_slice(args);
    let out = as_postgres(&pg_bin_dir().join("pg_ctl"), &all);
    assert!(
        out.status.success(),
        "pg_ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two archivers over one switch: A streams from the standby itself and sees its promotion
/// end timeline 1; B streams from the primary through the cluster's address (a proxy), loses
/// it as the primary stops, and resumes on the promoted standby once the address moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_switches_are_followed() {
    let primary = PgCluster::init();
    write_rows(&primary, 100);
    let (_scratch, standby) = standby_of(&primary);
    let address = ThrottledProxy::start(primary.port, 0);

    let env_a = env("pc-archivetlswitca");
    let env_b = env("pc-archivetlswitcb");
    let (sink_a, sink_b) = (Arc::new(Sink::default()), Arc::new(Sink::default()));
    let run_a = Running::start(&env_a, &unix(&standby), &sink_a, None, PARTIAL_INTERVAL);
    let run_b = Running::start(
        &env_b,
        &tcp(address.port()),
        &sink_b,
        None,
        PARTIAL_INTERVAL,
    );
    write_rows(&primary, 1000);
    wait_for("partials", || {
        count(&sink_a, WalObjectKind::Partial) > 0 && count(&sink_b, WalObjectKind::Partial) > 0
    })
    .await;

    // A clean switch-over: the primary's last WAL reaches the standby, which takes over.
    pg_ctl(primary.data_dir(), &["-m", "fast", "stop"]);
    let b_end = run_b.ended().await;
    assert!(b_end.is_err(), "{b_end:?}");
    pg_ctl(standby.data_dir(), &["promote"]);
    address.set_target(standby.port);
    let history =
        std::fs::read_to_string(standby.data_dir().join("pg_wal/00000002.history")).unwrap();
    let switch: Lsn = history.split_whitespace().nth(1).unwrap().parse().unwrap();

    let run_b = Running::start(
        &env_b,
        &tcp(address.port()),
        &sink_b,
        sink_b.newest(),
        PARTIAL_INTERVAL,
    );
    write_rows(&standby, 1000);
    for (name, sink, env) in [("A", &sink_a, &env_a), ("B", &sink_b, &env_b)] {
        wait_for("WAL on timeline 2", || {
            sink.has(|o| o.timeline == 2 && o.kind == WalObjectKind::Partial)
        })
        .await;
        let live = sink.live();
        assert_contiguous(&live);
        let h = live
            .iter()
            .find(|o| o.kind == WalObjectKind::History)
            .unwrap_or_else(|| panic!("{name}: no history file in {live:?}"));
        assert_eq!(
            (h.timeline, h.name.as_str(), h.start, h.end),
            (2, "00000002.history", switch, switch),
            "{name}"
        );
        let raw = env.repo.read_wal(&h.key, h.size, &h.digest).await.unwrap();
        assert_eq!(raw, history.as_bytes(), "{name}");
        // Timeline 1 is archived up to the switch point, and timeline 2 from its segment.
        let last_one = live.iter().rfind(|o| o.timeline == 1).unwrap();
        assert_eq!(
            (last_one.kind, last_one.end),
            (WalObjectKind::Partial, switch),
            "{name}: {live:?}"
        );
        let first_two = live
            .iter()
            .find(|o| o.timeline == 2 && o.kind != WalObjectKind::History)
            .unwrap();
        assert_eq!(first_two.start, switch.segment_start(SEG), "{name}");
        // Timeline 1's last segment as the old primary has it (its checkpoint at shutdown
        // removed the older ones), timeline 2 as the new one wrote it.
        check_against_server(env, primary.data_dir(), last_one).await;
        for o in live
            .iter()
            .filter(|o| o.timeline == 2 && o.kind != WalObjectKind::History)
        {
            check_against_server(env, standby.data_dir(), o).await;
        }
    }
    // Up to the switch, the standby's WAL and the primary's are one and the same.
    let (a, b) = (sink_a.live(), sink_b.live());
    let both_from = a[0].start.max(b[0].start);
    let one = |v: &[NewWalObject]| -> Vec<(Lsn, Lsn, String)> {
        v.iter()
            .filter(|o| o.timeline == 1 && o.start >= both_from)
            .map(|o| (o.start, o.end, o.digest.clone()))
            .collect()
    };
    assert_eq!(one(&a), one(&b));
    assert_eq!(run_a.stop().await.unwrap(), ArchiveEnd::Cancelled);
    assert_eq!(run_b.stop().await.unwrap(), ArchiveEnd::Cancelled);

    // A new archiver of the promoted server stores timeline 2's history file first.
    let env_c = env("pc-archivetlswitcc");
    let sink_c = Arc::new(Sink::default());
    let run_c = Running::start(&env_c, &unix(&standby), &sink_c, None, PARTIAL_INTERVAL);
    write_rows(&standby, 100);
    wait_for("WAL from the new archiver", || {
        count(&sink_c, WalObjectKind::Partial) > 0
    })
    .await;
    assert_eq!(run_c.stop().await.unwrap(), ArchiveEnd::Cancelled);
    let live = sink_c.live();
    let h = live
        .iter()
        .find(|o| o.kind == WalObjectKind::History)
        .unwrap_or_else(|| panic!("no history file in {live:?}"));
    assert_eq!((h.timeline, h.start, h.end), (2, switch, switch));
    assert!(live.iter().all(|o| o.timeline == 2), "{live:?}");
}
