//! What only the SQLite backend promises beyond the contract: a private data directory and
//! file, a refused newer schema, processes opening one fresh database together, and old
//! databases loading.

#[path = "contract/common.rs"]
mod common;

use common::{created, finish, manual, new_cluster, t};
use jiff::SignedDuration;
use polarbackup_model::{BackupLogId, DbClusterId, Lsn, NewWalObject, WalGap, WalObjectKind};
use polarbackup_store::prelude::*;
use polarbackup_store::{SqliteStore, StoreError, WalFilter};
use std::os::unix::fs::PermissionsExt;

#[test]
fn data_dir_and_file_are_private() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let store = SqliteStore::open(&data).expect("open");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(store.path()), 0o600);
    store.ping().expect("ping");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let path = store.path().to_owned();
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw");
    conn.pragma_update(None, "user_version", 999).expect("bump");
    drop(conn);
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::TooNew { found: 999, .. })
    ));
}

#[test]
fn processes_opening_a_fresh_directory_together_all_succeed() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("fresh");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                SqliteStore::open(&path)
                    .expect("open")
                    .ping()
                    .expect("ping")
            });
        }
    });
}

/// Sets recorded before their WAL range was kept (schema 7) load with none.
#[test]
fn sets_from_before_the_wal_columns_load_without_a_range() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let account = store.create_account(None, t(0)).expect("account").id;
    let cluster = new_cluster(&store, &account);
    let job = created(
        store
            .create_manual_job(&manual(&account, &cluster, None, "a"), t(1), 3)
            .expect("create"),
    );
    let set = finish(&store, job, 10);
    assert!(set.wal.is_some());
    let conn = rusqlite::Connection::open(store.path()).expect("raw");
    conn.execute(
        "UPDATE backup_sets SET wal_timeline = NULL, wal_start = NULL, wal_end = NULL",
        [],
    )
    .expect("as schema 7 left it");
    let half = conn.execute("UPDATE backup_sets SET wal_end = 5", []);
    assert!(half.is_err(), "a range is all three columns or none");
    drop(conn);
    let loaded = store.backup_set(set.id).expect("load").expect("listed");
    assert_eq!(loaded.wal, None);
}

/// A database written at schema 9, with WAL objects' and gaps' times in whole seconds, opens
/// with them kept, its time filter still answering and its WAL ids still never reused.
#[test]
fn wal_objects_and_gaps_from_schema_9_keep_their_times() {
    let dir = tempfile::tempdir().expect("tmp");
    let conn = rusqlite::Connection::open(dir.path().join("metadata.sqlite")).expect("raw");
    conn.execute_batch(include_str!("fixtures/schema-9.sql"))
        .expect("the sample");
    drop(conn);
    let store = SqliteStore::open(dir.path()).expect("open");
    let cluster = DbClusterId::parse("pc-51c6j2cobh144ie").expect("id");
    let summary = |objects: Vec<polarbackup_model::WalObject>| {
        objects
            .into_iter()
            .map(|o| {
                (
                    o.id.0,
                    o.object.kind,
                    o.object.start_time,
                    o.object.end_time,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        summary(store.wal_objects(&cluster).expect("list")),
        vec![
            (1, WalObjectKind::Segment, t(5), t(20)),
            (4, WalObjectKind::Partial, t(21), t(25)),
            (3, WalObjectKind::History, t(21), t(21)),
        ]
    );
    let segment = store
        .wal_object(BackupLogId(1))
        .expect("get")
        .expect("kept");
    assert_eq!(
        (
            segment.object.name.as_str(),
            segment.object.start,
            segment.object.end
        ),
        (
            "000000010000000000000003",
            Lsn(0x0300_0000),
            Lsn(0x0400_0000)
        )
    );
    assert_eq!(
        store.gaps(&cluster).expect("gaps"),
        vec![WalGap {
            cluster_id: cluster.clone(),
            timeline: 1,
            from: Lsn(0x0100_0000),
            to: Lsn(0x0200_0000),
            detected_at: t(3),
            reason: "slot invalidated".into(),
        }]
    );
    let filter = WalFilter {
        from: t(21),
        to: t(21),
        page_size: 30,
        page_number: 1,
    };
    let page = store.wal_page(&cluster, &filter).expect("page");
    let listed: Vec<u64> = page.objects.iter().map(|o| o.id.0).collect();
    assert_eq!((listed, page.total), (vec![3, 4], 2));

    // The sample's archiver holds its lease until t(100); the whole segment replaces the
    // migrated partial.
    let precise = NewWalObject {
        timeline: 2,
        kind: WalObjectKind::Segment,
        name: "000000020000000000000004".into(),
        key: "wal/new.zst".into(),
        start: Lsn(0x0400_0000),
        end: Lsn(0x0500_0000),
        start_time: t(25) + SignedDuration::from_micros(7),
        end_time: t(30) + SignedDuration::from_micros(999_999),
        ..segment.object
    };
    let outcome = store
        .record_wal("w", &precise, t(50))
        .expect("record")
        .expect("the lease is held");
    assert_eq!(
        summary(outcome.replaced),
        vec![(4, WalObjectKind::Partial, t(21), t(25))]
    );
    let recorded = outcome.recorded.expect("recorded");
    assert!(recorded.id > BackupLogId(4), "ids go on: {:?}", recorded.id);
    assert_eq!(recorded.object, precise);
}

fn raw(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw")
}

/// Nonces are kept in a private log of their own: using one leaves the metadata file, and so
/// the page caches of the connections reading keys, clusters and jobs from it, untouched.
#[test]
fn nonces_live_in_a_private_log_of_their_own() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    // `data_version` moves when another connection commits to that file.
    let reader = raw(store.path());
    let version = |c: &rusqlite::Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .expect("data_version")
    };
    let before = version(&reader);
    let log = std::fs::metadata(store.nonce_log_path())
        .expect("log")
        .len();
    assert!(store.use_nonce(&k, "n1", t(900), t(0)).expect("nonce"));
    assert_eq!(
        version(&reader),
        before,
        "a nonce touched the metadata file"
    );
    assert!(
        std::fs::metadata(store.nonce_log_path())
            .expect("log")
            .len()
            > log
    );
    assert_eq!(
        store.nonce_log_path(),
        dir.path().join("metadata.sqlite-nonce-log").as_path()
    );
    let mode = std::fs::metadata(store.nonce_log_path())
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

/// A nonce used before a restart is refused after it, by a handle opened before or after.
#[test]
fn nonces_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    let early = SqliteStore::open(dir.path()).expect("another handle");
    assert!(early.use_nonce(&k, "early", t(900), t(0)).expect("nonce"));
    assert!(store.use_nonce(&k, "kept", t(900), t(0)).expect("nonce"));
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("reopen");
    assert!(!store.use_nonce(&k, "kept", t(900), t(1)).expect("replay"));
    assert!(!store.use_nonce(&k, "early", t(900), t(1)).expect("replay"));
    assert!(!early.use_nonce(&k, "kept", t(900), t(1)).expect("replay"));
    // Expired: may be used again, once.
    assert!(store
        .use_nonce(&k, "kept", t(2000), t(901))
        .expect("expired"));
    assert!(!early
        .use_nonce(&k, "kept", t(2000), t(902))
        .expect("replay"));
}

/// Uses `name` the way a call that changes nothing does: without waiting for a sync, under
/// the committer's lease; where there is none, a queued use of a filler nonce gets one taken.
fn unsynced(store: &SqliteStore, name: &str, now: i64) -> bool {
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    static FILLERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        if let Some(fresh) = store.use_nonce_unsynced(&k, name, t(900), t(now)) {
            return fresh.expect("nonce");
        }
        let n = FILLERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let filler = format!("filler-{n}");
        assert!(store
            .use_nonce(&k, &filler, t(900), t(now))
            .expect("filler"));
    }
}

/// A nonce used without waiting for its sync is refused from then on: by the same handle,
/// unsynced or queued, by another handle (which gets the log's lock once the lease ends, while
/// this one keeps using nonces), and after a restart.
#[test]
fn unsynced_nonces_are_used_once_across_handles() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    let other = SqliteStore::open(dir.path()).expect("another handle");
    // The first asks for a lease: not used.
    assert!(store.use_nonce_unsynced(&k, "a", t(900), t(0)).is_none());
    assert!(unsynced(&store, "a", 0));
    assert!(!unsynced(&store, "a", 1));
    assert!(!store.use_nonce(&k, "a", t(900), t(1)).expect("queued"));
    assert!(!other
        .use_nonce(&k, "a", t(900), t(1))
        .expect("other handle"));
    assert!(other
        .use_nonce(&k, "b", t(900), t(1))
        .expect("other handle"));
    assert!(!unsynced(&store, "b", 1));

    // One thread keeps using nonces unsynced; the other handle is not kept out meanwhile.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (used, others) = std::thread::scope(|s| {
        let busy = s.spawn(|| {
            let mut used = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("busy-{}", used.len());
                assert!(unsynced(&store, &name, 2), "{name}");
                used.push(name);
            }
            used
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let (other, k) = (&other, &k);
        s.spawn(move || {
            for i in 0..50 {
                let name = format!("other-{i}");
                assert!(other.use_nonce(k, &name, t(900), t(2)).expect("nonce"));
            }
            let _ = tx.send(());
        });
        let waited = rx.recv_timeout(std::time::Duration::from_secs(60));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(waited.is_ok(), "the other handle was kept out of the log");
        (busy.join().expect("busy"), 50)
    });
    assert!(used.len() > others, "{} used unsynced", used.len());
    for name in used.iter().step_by(97).chain(used.last()) {
        assert!(
            !other.use_nonce(&k, name, t(900), t(3)).expect("nonce"),
            "{name}"
        );
    }
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("reopen");
    for name in used.iter().step_by(101).chain([&"a".to_owned()]) {
        assert!(!unsynced(&store, name, 3), "{name} after a restart");
    }
    assert_eq!(store.integrity_check().expect("check"), ["ok"]);
}

/// Threads of one handle giving the same nonces, some unsynced and some queued (the API's
/// DescribeBackupTasks and its other actions): each nonce is accepted exactly once.
#[test]
fn a_nonce_given_unsynced_and_queued_at_once_is_accepted_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    let start = std::sync::Barrier::new(4);
    let accepted: usize = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (store, start, k) = (&store, &start, &k);
                s.spawn(move || {
                    start.wait();
                    (0..300)
                        .filter(|n| {
                            let name = format!("race-{n}");
                            if i % 2 == 0 {
                                unsynced(store, &name, 1)
                            } else {
                                store.use_nonce(k, &name, t(900), t(1)).expect("nonce")
                            }
                        })
                        .count()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("thread")).sum()
    });
    assert_eq!(accepted, 300);
}

/// Queues `n` nonces `{prefix}-{i}` without waiting (the committer takes them in a few large
/// batches): the answers, as they come.
fn queue_all(
    store: &SqliteStore,
    n: usize,
    prefix: &str,
    expires: i64,
    now: i64,
) -> std::sync::mpsc::Receiver<bool> {
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..n {
        let tx = tx.clone();
        let done: polarbackup_store::NonceDone = Box::new(move |a| {
            let _ = tx.send(a.expect("nonce"));
        });
        if store
            .queue_nonce(&k, &format!("{prefix}-{i}"), t(expires), t(now), done)
            .is_err()
        {
            panic!("the SQLite store queues");
        }
    }
    rx
}

/// [`queue_all`], then waits for every answer: how many were fresh.
fn queue_many(store: &SqliteStore, n: usize, prefix: &str, expires: i64, now: i64) -> usize {
    queue_all(store, n, prefix, expires, now)
        .iter()
        .filter(|f| *f)
        .count()
}

/// Once most of the log has expired it is rewritten with the live nonces only; handles that
/// read the old file move to the new one and still refuse what was used, and what each
/// writes after is seen by the other.
#[test]
fn the_log_is_compacted_once_mostly_expired() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    let other = SqliteStore::open(dir.path()).expect("another handle");
    assert!(store.use_nonce(&k, "kept", t(900), t(0)).expect("nonce"));
    assert_eq!(queue_many(&store, 120_000, "short", 10, 0), 120_000);
    assert!(!other.use_nonce(&k, "short-7", t(10), t(1)).expect("replay"));
    let big = frames_len(store.nonce_log_path());
    // A minute on, the expired ones are dropped: the next write compacts, once its caller
    // was answered (the one after waits for that).
    assert!(store.use_nonce(&k, "later", t(960), t(100)).expect("nonce"));
    assert!(store.use_nonce(&k, "after", t(960), t(100)).expect("nonce"));
    let small = frames_len(store.nonce_log_path());
    assert!(small < big / 100, "{small} of {big} bytes left");
    assert!(!other.use_nonce(&k, "kept", t(900), t(101)).expect("replay"));
    assert!(!other
        .use_nonce(&k, "later", t(960), t(101))
        .expect("replay"));
    assert!(other.use_nonce(&k, "fresh", t(960), t(101)).expect("nonce"));
    assert!(!store
        .use_nonce(&k, "fresh", t(960), t(102))
        .expect("replay"));
    assert!(store
        .use_nonce(&k, "short-7", t(960), t(102))
        .expect("expired"));
    assert_eq!(store.integrity_check().expect("check"), ["ok"]);
}

/// The length of the nonce log's frames: the file without its zero tail.
fn frames_len(path: &std::path::Path) -> u64 {
    let bytes = std::fs::read(path).expect("log");
    bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1) as u64
}

/// Writes `bytes` into the nonce log at `at`, as a crash (or damage) would leave them.
fn write_raw_at(path: &std::path::Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("log")
        .write_all_at(bytes, at)
        .expect("write");
}

/// A frame announcing 64 bytes, 10 of them written.
const TORN: [u8; 22] = [
    64, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
];

/// Frames are written into a tail of zeros the file already has, so a nonce's sync does not
/// change the file's length (no inode write). A log without the tail (one an older version
/// cut off, taking it for an unfinished frame) is read and written the same.
#[test]
fn nonces_are_written_into_a_zero_tail() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    let path = store.nonce_log_path().to_owned();
    let len = || std::fs::metadata(&path).expect("log").len();
    assert!(store.use_nonce(&k, "a", t(900), t(0)).expect("nonce"));
    let reserved = len();
    assert!(reserved > frames_len(&path) + 32 * 1024, "{reserved}");
    for i in 0..50 {
        assert!(store
            .use_nonce(&k, &format!("c{i}"), t(900), t(0))
            .expect("nonce"));
    }
    assert_eq!(len(), reserved);
    drop(store);
    // What an older version leaves: the frames only.
    let frames = frames_len(&path);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("log")
        .set_len(frames)
        .expect("cut");
    let store = SqliteStore::open(dir.path()).expect("open");
    let other = SqliteStore::open(dir.path()).expect("another handle");
    assert!(!store.use_nonce(&k, "c7", t(900), t(1)).expect("replay"));
    assert!(store.use_nonce(&k, "d", t(900), t(1)).expect("nonce"));
    assert!(!other.use_nonce(&k, "d", t(900), t(1)).expect("replay"));
    assert!(other.use_nonce(&k, "e", t(900), t(1)).expect("nonce"));
    assert!(!store.use_nonce(&k, "e", t(900), t(1)).expect("replay"));
    assert!(len() > frames_len(&path));
    assert_eq!(store.integrity_check().expect("check"), ["ok"]);
}

/// The log's reads leave its access time alone: under `relatime` a read after a write would
/// update it, and the batch's `fdatasync` would then write the inode too.
#[test]
fn reading_the_log_leaves_its_access_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    assert!(store.use_nonce(&k, "a", t(900), t(0)).expect("nonce"));
    let path = store.nonce_log_path().to_owned();
    let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("log")
        .set_times(std::fs::FileTimes::new().set_accessed(long_ago))
        .expect("set atime");
    for i in 0..20 {
        assert!(store
            .use_nonce(&k, &format!("b{i}"), t(900), t(0))
            .expect("nonce"));
    }
    assert!(!store.use_nonce(&k, "b3", t(900), t(0)).expect("replay"));
    let accessed = std::fs::metadata(&path)
        .expect("log")
        .accessed()
        .expect("atime");
    assert_eq!(accessed, long_ago);
    let modified = std::fs::metadata(&path)
        .expect("log")
        .modified()
        .expect("mtime");
    assert!(modified > long_ago, "the log was written");
}

/// The log's own stats ask for no timestamp. On Linux 6.13+ a stat that asks for one makes the
/// next write take a new fine-grained time (which the batch's `fdatasync` must then write with
/// the inode) instead of keeping the clock tick's: with the log asking in every batch, a
/// write's mtime would always be later than the moment it started.
#[test]
fn the_logs_stats_leave_its_write_times_coarse() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    let path = store.nonce_log_path().to_owned();
    // A tick may fall between a write's start and its time: one try in ten is enough.
    let coarse = (0..10).any(|i| {
        // The test's own stat (below) asks: the first write after it takes a fine time.
        assert!(store
            .use_nonce(&k, &format!("a{i}"), t(900), t(0))
            .expect("nonce"));
        let started = polarbackup_model::Clock::now(&polarbackup_model::SystemClock);
        assert!(store
            .use_nonce(&k, &format!("b{i}"), t(900), t(0))
            .expect("nonce"));
        let modified = std::fs::metadata(&path)
            .expect("log")
            .modified()
            .expect("mtime");
        jiff::Timestamp::try_from(modified).expect("mtime") < started
    });
    assert!(coarse, "every write took a fine-grained time");
}

/// `load_nonces` reads the log in before any nonce is used (a server calls it before it
/// listens, so that its first signed request does not wait for a large log): it says how
/// many nonces are remembered, and reports damage then.
#[test]
fn the_nonce_log_is_read_in_before_the_first_request() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    assert_eq!(store.load_nonces().expect("an empty log"), Some(0));
    for i in 0..5 {
        let nonce = format!("n{i}");
        assert!(store.use_nonce(&k, &nonce, t(900), t(0)).expect("nonce"));
    }
    let path = store.nonce_log_path().to_owned();
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("open");
    assert_eq!(store.load_nonces().expect("load"), Some(5));
    assert!(!store.use_nonce(&k, "n2", t(900), t(1)).expect("replay"));
    assert!(store.use_nonce(&k, "n5", t(900), t(1)).expect("nonce"));
    assert_eq!(store.load_nonces().expect("again"), Some(6));
    drop(store);
    // The first frame's payload damaged, with whole frames after it.
    let mut bytes = std::fs::read(&path).expect("log");
    bytes[16 + 12] ^= 0xff;
    std::fs::write(&path, &bytes).expect("damage");
    let store = SqliteStore::open(dir.path()).expect("open");
    let e = store.load_nonces().expect_err("damage");
    assert!(e.to_string().contains("damaged"), "{e}");
}

/// A write cut off by a crash at the end of the log is no damage: nobody was answered for it,
/// and the next write cuts it off, whether its start is there (a process died in it) or only
/// later pieces of it, past a zero head (a machine crashed before its first block was
/// written). Damage with whole frames after it fails every use of a nonce (never a replay
/// accepted) and the integrity check names it.
#[test]
fn an_unfinished_write_is_cut_off_and_damage_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    assert!(store.use_nonce(&k, "a", t(900), t(0)).expect("nonce"));
    assert!(store.use_nonce(&k, "a2", t(900), t(0)).expect("nonce"));
    let path = store.nonce_log_path().to_owned();
    drop(store);
    let whole = frames_len(&path);
    let file_len = std::fs::metadata(&path).expect("log").len();
    assert!(file_len > whole + 1000, "no zero tail: {file_len} bytes");
    for (case, at) in [
        ("a prefix", whole),
        ("a piece past a zero head", whole + 700),
    ] {
        write_raw_at(&path, at, &TORN);
        let store = SqliteStore::open(dir.path()).expect("open");
        assert_eq!(store.integrity_check().expect("check"), ["ok"], "{case}");
        assert!(!store.use_nonce(&k, "a", t(900), t(1)).expect("replay"));
        let fresh = format!("b-{at}");
        assert!(store.use_nonce(&k, &fresh, t(900), t(1)).expect("nonce"));
        let now = std::fs::read(&path).expect("log");
        assert!(!now.windows(TORN.len()).any(|w| w == TORN), "{case} kept");
        drop(store);
        let store = SqliteStore::open(dir.path()).expect("open");
        assert!(!store.use_nonce(&k, &fresh, t(900), t(2)).expect("replay"));
        assert_eq!(store.integrity_check().expect("check"), ["ok"], "{case}");
        drop(store);
    }
    // A byte of the first frames' payload flipped, with whole frames after it.
    let mut bytes = std::fs::read(&path).expect("log");
    assert!(frames_len(&path) > whole);
    bytes[whole as usize - 1] ^= 0xff;
    std::fs::write(&path, &bytes).expect("damage");
    let store = SqliteStore::open(dir.path()).expect("open");
    let found = store.integrity_check().expect("check");
    assert!(
        found.len() == 1 && found[0].starts_with("nonce log: ") && found[0].contains("damaged"),
        "{found:?}"
    );
    assert!(store.use_nonce(&k, "c", t(900), t(3)).is_err());
    assert!(store.use_nonce(&k, "a", t(900), t(3)).is_err());
}

/// An older version kept nonces in the metadata file: after the upgrade they are in the log,
/// still refused within their window, and gone from the metadata file.
#[test]
fn nonces_from_the_metadata_file_are_still_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let conn = raw(&dir.path().join("metadata.sqlite"));
    conn.execute_batch(include_str!("fixtures/schema-9.sql"))
        .expect("the sample");
    conn.execute(
        "INSERT INTO nonces (key_id, nonce, expires_at) VALUES ('k', 'before', ?1), ('k', 'stale', ?2)",
        [t(900).as_second(), t(5).as_second()],
    )
    .expect("nonces of the old version");
    drop(conn);
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let legacy = |store: &SqliteStore| -> i64 {
        raw(store.path())
            .query_row("SELECT count(*) FROM legacy_nonces", [], |r| r.get(0))
            .expect("count")
    };
    let store = SqliteStore::open(dir.path()).expect("open");
    assert_eq!(legacy(&store), 0);
    assert!(!store
        .use_nonce(&k, "before", t(900), t(10))
        .expect("replay"));
    assert!(store
        .use_nonce(&k, "stale", t(910), t(10))
        .expect("expired"));
    assert!(store.use_nonce(&k, "fresh", t(910), t(10)).expect("nonce"));
    // A crash between the log's sync and the metadata file's commit left a row in both:
    // moved again, still refused.
    raw(store.path())
        .execute(
            "INSERT INTO legacy_nonces (key_id, nonce, expires_at) VALUES ('k', 'fresh', ?1)",
            [t(910).as_second()],
        )
        .expect("left behind");
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("open");
    assert_eq!(legacy(&store), 0);
    assert!(!store.use_nonce(&k, "fresh", t(910), t(11)).expect("replay"));
    assert!(!store
        .use_nonce(&k, "before", t(900), t(11))
        .expect("replay"));
    assert_eq!(store.integrity_check().expect("check"), ["ok"]);
}

/// Versions with schema 15–16 kept nonces in a SQLite file of their own: moved into the log
/// at open (still refused), the file and its WAL removed.
#[test]
fn nonces_from_the_sqlite_nonce_file_are_still_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let old = dir.path().join("metadata.sqlite-nonces");
    let conn = raw(&old);
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.execute_batch(
        "CREATE TABLE nonces (key_id TEXT NOT NULL, nonce TEXT NOT NULL,
             expires_at INTEGER NOT NULL, PRIMARY KEY (key_id, nonce)) WITHOUT ROWID;
         PRAGMA user_version = 1;",
    )
    .expect("the nonce file of schema 16");
    conn.execute(
        "INSERT INTO nonces VALUES ('k', 'before', ?1)",
        [t(900).as_second()],
    )
    .expect("a nonce");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    // Opened while the old file's last commit is still in its WAL.
    let store = SqliteStore::open(dir.path()).expect("open");
    drop(conn);
    assert!(!store
        .use_nonce(&k, "before", t(900), t(10))
        .expect("replay"));
    for suffix in ["", "-wal", "-shm"] {
        let mut name = old.clone().into_os_string();
        name.push(suffix);
        assert!(!std::path::Path::new(&name).exists(), "{name:?} left");
    }
    drop(store);
    let store = SqliteStore::open(dir.path()).expect("reopen");
    assert!(!store
        .use_nonce(&k, "before", t(900), t(11))
        .expect("replay"));
}

/// The log has a format version of its own, and a later one is refused.
#[test]
fn a_newer_nonce_log_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let path = store.nonce_log_path().to_owned();
    drop(store);
    let mut bytes = std::fs::read(&path).expect("log");
    bytes[8] = 2;
    std::fs::write(&path, &bytes).expect("bump");
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::TooNew { found: 2, .. })
    ));
}

/// A nonce the log cannot hold (longer than 65535 bytes) fails alone: the others of its batch
/// are still used once, not taken as used by the failed batch.
#[test]
fn a_nonce_too_long_for_the_log_fails_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let long = "n".repeat(70_000);
    let (tx, rx) = std::sync::mpsc::channel();
    let nonces: Vec<String> = (0..50)
        .map(|i| format!("before-{i}"))
        .chain([long.clone()])
        .chain((0..50).map(|i| format!("after-{i}")))
        .collect();
    for n in &nonces {
        let (tx, n2) = (tx.clone(), n.clone());
        let done: polarbackup_store::NonceDone = Box::new(move |a| {
            let _ = tx.send((n2, a.map_err(|e| e.to_string())));
        });
        if store.queue_nonce(&k, n, t(900), t(0), done).is_err() {
            panic!("the SQLite store queues");
        }
    }
    drop(tx);
    for (n, answer) in rx.iter() {
        if n == long {
            assert!(answer.is_err(), "a nonce of 70000 bytes was stored");
        } else {
            assert_eq!(answer, Ok(true), "{n}");
        }
    }
    assert!(!store
        .use_nonce(&k, "before-3", t(900), t(1))
        .expect("replay"));
}

/// A batch larger than a frame may hold (half a million nonces queued while another process
/// held the log, ~20 MB) is written as several frames, all read back by another handle.
#[test]
fn a_batch_larger_than_a_frame_is_read_back_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = polarbackup_model::AccessKeyId::parse("k").expect("id");
    let store = SqliteStore::open(dir.path()).expect("open");
    let holder = std::fs::File::open(store.nonce_log_path()).expect("log");
    holder.lock().expect("hold the log");
    // Queueing never waits for the log, not even the first nonce, which starts the committer.
    let padded = format!("{}-", "p".repeat(20));
    let answers = queue_all(&store, 500_000, &padded, 900, 0);
    holder.unlock().expect("release the log");
    assert_eq!(answers.iter().filter(|f| *f).count(), 500_000);
    assert!(
        std::fs::metadata(store.nonce_log_path())
            .expect("log")
            .len()
            > 16 << 20
    );
    let other = SqliteStore::open(dir.path()).expect("another handle");
    for i in [0, 250_000, 499_999] {
        let n = format!("{padded}-{i}");
        assert!(
            !other.use_nonce(&k, &n, t(900), t(1)).expect("replay"),
            "{i}"
        );
    }
    assert!(other.use_nonce(&k, "fresh", t(900), t(1)).expect("nonce"));
    assert_eq!(other.integrity_check().expect("check"), ["ok"]);
}
