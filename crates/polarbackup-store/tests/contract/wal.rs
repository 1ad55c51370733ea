//! Log backups in the store: the log-backup policy, the archiver's lease (one holder across
//! handles), WAL objects recorded only under the lease (a longer partial or the segment
//! replaces a partial), DescribeBackupLogs' pages, removal, ids never reused, gaps, and
//! times kept to the microsecond.

use crate::common::{setup, t, Backend};
use crate::concurrency::{race, THREADS};
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::policy::RetentionOnClusterDeletion as Retention;
use polarbackup_model::{
    BackupLogId, ClusterStatus, DbClusterId, LogBackupPolicy, LogRetention, Lsn, NewWalObject,
    WalGap, WalObject, WalObjectKind,
};
use polarbackup_store::{Store, StoreError, WalFilter, WalRecorded};

const SEG: u64 = 0x0100_0000;

/// A WAL object of timeline 1 covering `[start, end)`, sent from `from` to `to` (seconds past
/// [`t`]); its key is unique per kind, start and end, as the archiver's names are.
fn wal(
    cluster: &DbClusterId,
    kind: WalObjectKind,
    start: u64,
    end: u64,
    from: i64,
    to: i64,
) -> NewWalObject {
    let name = Lsn(start).wal_file_name(1, SEG);
    NewWalObject {
        cluster_id: cluster.clone(),
        timeline: 1,
        kind,
        key: format!("wal/{cluster}/{name}.{}.{end:x}.zst", kind.as_str()),
        name,
        start: Lsn(start),
        end: Lsn(end),
        size: end - start,
        stored_size: (end - start) / 4,
        digest: format!("{:064x}", start ^ end),
        start_time: t(from),
        end_time: t(to),
    }
}

fn segment(cluster: &DbClusterId, n: u64, from: i64, to: i64) -> NewWalObject {
    wal(
        cluster,
        WalObjectKind::Segment,
        n * SEG,
        (n + 1) * SEG,
        from,
        to,
    )
}

fn history(cluster: &DbClusterId, timeline: u32, at: u64, key: &str) -> NewWalObject {
    NewWalObject {
        timeline,
        kind: WalObjectKind::History,
        name: format!("{timeline:08X}.history"),
        key: key.into(),
        size: 42,
        stored_size: 40,
        ..wal(cluster, WalObjectKind::History, at, at, 5, 5)
    }
}

/// Holds the lease for `worker` until far ahead and records `o`, which must be accepted.
fn record(store: &dyn Store, worker: &str, o: &NewWalObject) -> WalRecorded {
    assert!(store
        .claim_archiver(&o.cluster_id, worker, t(10_000), t(1))
        .expect("claim"));
    store
        .record_wal(worker, o, t(2))
        .expect("record")
        .expect("the lease is held")
}

fn recorded(store: &dyn Store, o: &NewWalObject) -> WalObject {
    record(store, "w", o).recorded.expect("recorded")
}

fn filter(from: i64, to: i64, page_size: u32, page_number: u32) -> WalFilter {
    WalFilter {
        from: t(from),
        to: t(to),
        page_size,
        page_number,
    }
}

/// [`t`]`(s)` and `us` microseconds.
fn t_us(s: i64, us: i64) -> Timestamp {
    t(s) + SignedDuration::from_micros(us)
}

fn ids(objects: &[WalObject]) -> Vec<BackupLogId> {
    objects.iter().map(|o| o.id).collect()
}

pub fn a_new_cluster_keeps_seven_days_of_logs_and_a_change_is_kept(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    assert_eq!(
        store.log_backup_policy(&cluster).expect("policy"),
        LogBackupPolicy {
            retention: LogRetention::Days(7)
        }
    );
    for retention in [LogRetention::Days(30), LogRetention::Forever] {
        let changed = store
            .modify_log_backup_policy(&cluster, retention)
            .expect("modify")
            .expect("running");
        assert_eq!(changed, LogBackupPolicy { retention });
        assert_eq!(
            b.open().log_backup_policy(&cluster).expect("policy"),
            changed,
            "another handle reads the change"
        );
    }
    let other = crate::common::new_cluster(&*store, &account);
    assert_eq!(
        store.log_backup_policy(&other).expect("policy"),
        LogBackupPolicy::default(),
        "another cluster's policy is untouched"
    );
    let unknown = DbClusterId::parse("pc-unknown00000000").expect("id");
    assert!(matches!(
        store.modify_log_backup_policy(&unknown, LogRetention::Days(3)),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn a_deleted_cluster_refuses_log_policy_changes_and_archivers(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    store
        .modify_log_backup_policy(&cluster, LogRetention::Days(10))
        .expect("modify")
        .expect("running");
    store
        .begin_cluster_deletion(&cluster, Some(Retention::None), t(1))
        .expect("begin")
        .expect("deleted");
    assert_eq!(
        store
            .modify_log_backup_policy(&cluster, LogRetention::Days(20))
            .expect("modify"),
        Err(ClusterStatus::Deleted)
    );
    assert_eq!(
        store.log_backup_policy(&cluster).expect("policy").retention,
        LogRetention::Days(10),
        "nothing changed"
    );
    assert!(!store
        .claim_archiver(&cluster, "w", t(100), t(2))
        .expect("claim"));
    assert_eq!(
        store
            .record_wal("w", &segment(&cluster, 1, 0, 1), t(3))
            .expect("record"),
        None
    );
}

pub fn the_archiver_lease_is_exclusive_until_it_lapses(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let claim = |worker: &str, until: i64, now: i64| {
        store
            .claim_archiver(&cluster, worker, t(until), t(now))
            .expect("claim")
    };
    assert!(claim("a", 30, 0));
    assert!(!claim("b", 40, 10), "a holds it");
    assert!(claim("a", 60, 20), "the holder renews");
    assert!(!claim("b", 90, 60), "still held at its last second");
    assert!(claim("b", 100, 61), "lapsed: another takes over");
    assert!(!claim("a", 120, 62), "the old holder lost it");
    store.release_archiver(&cluster, "a").expect("release");
    assert!(!claim("a", 120, 63), "only the holder's release counts");
    store.release_archiver(&cluster, "b").expect("release");
    assert!(claim("a", 120, 64), "released: free at once");

    let other = crate::common::new_cluster(&*store, &account);
    assert!(
        store
            .claim_archiver(&other, "b", t(120), t(65))
            .expect("claim"),
        "leases are per cluster"
    );
}

pub fn one_archiver_wins_a_concurrent_claim(b: &dyn Backend) {
    let (store, account, _) = setup(b);
    for round in 0..5 {
        let cluster = crate::common::new_cluster(&*store, &account);
        let won = race(b, |i, s| {
            s.claim_archiver(&cluster, &format!("w{i}"), t(round + 30), t(round))
                .expect("claim")
        });
        assert_eq!(
            won.iter().filter(|&&w| w).count(),
            1,
            "round {round} of {THREADS} claimers: {won:?}"
        );
    }
}

pub fn recording_needs_the_archiver_lease(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    let seg = |n| segment(&cluster, n, 0, 1);
    assert_eq!(
        store.record_wal("a", &seg(1), t(0)).expect("record"),
        None,
        "nobody holds the lease"
    );
    assert!(store
        .claim_archiver(&cluster, "a", t(30), t(0))
        .expect("claim"));
    assert_eq!(
        store.record_wal("b", &seg(1), t(1)).expect("record"),
        None,
        "another worker's lease"
    );
    let first = store
        .record_wal("a", &seg(1), t(30))
        .expect("record")
        .expect("held until its last second");
    assert_eq!(first.replaced, vec![]);
    let first = first.recorded.expect("recorded");
    assert_eq!(first.object, seg(1));
    assert_eq!(
        store.record_wal("a", &seg(2), t(31)).expect("record"),
        None,
        "the lease lapsed"
    );
    assert!(store
        .claim_archiver(&cluster, "b", t(100), t(32))
        .expect("claim"));
    assert_eq!(
        store.record_wal("a", &seg(2), t(33)).expect("record"),
        None,
        "taken over"
    );
    assert_eq!(
        store.wal_objects(&cluster).expect("list"),
        vec![first.clone()]
    );
    // A held lease records nothing once the cluster's deletion began.
    store
        .begin_cluster_deletion(&cluster, Some(Retention::All), t(101))
        .expect("delete")
        .expect("deletable");
    assert_eq!(
        store.record_wal("b", &seg(2), t(102)).expect("record"),
        None,
        "the cluster is deleted"
    );
    assert_eq!(store.wal_objects(&cluster).expect("list"), vec![first]);
}

pub fn a_partial_is_replaced_by_a_longer_one_and_then_by_the_segment(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    let base = 3 * SEG;
    let partial = |end: u64| wal(&cluster, WalObjectKind::Partial, base, base + end, 10, 11);
    let short = recorded(&*store, &partial(0x100));
    let longer = record(&*store, "w", &partial(0x2000));
    assert_eq!(longer.replaced, vec![short]);
    let longer = longer.recorded.expect("recorded");
    assert_eq!(
        record(&*store, "w", &partial(0x2000)),
        WalRecorded {
            recorded: Some(longer.clone()),
            replaced: vec![]
        },
        "the same key again is the object recorded before"
    );
    let shorter = NewWalObject {
        key: "wal/shorter.zst".into(),
        ..partial(0x1000)
    };
    assert_eq!(
        record(&*store, "w", &shorter),
        WalRecorded {
            recorded: None,
            replaced: vec![]
        },
        "a shorter partial"
    );
    let equal = NewWalObject {
        key: "wal/equal.zst".into(),
        ..partial(0x2000)
    };
    assert_eq!(
        record(&*store, "w", &equal).recorded,
        None,
        "a partial reaching no further"
    );

    let whole = record(&*store, "w", &segment(&cluster, 3, 10, 12));
    assert_eq!(whole.replaced, vec![longer]);
    let whole = whole.recorded.expect("recorded");
    assert_eq!(
        record(&*store, "w", &partial(0x4000)),
        WalRecorded {
            recorded: None,
            replaced: vec![]
        },
        "a partial after the whole segment"
    );

    // Other timelines, other starts and history files are not in the way.
    let next = recorded(
        &*store,
        &wal(
            &cluster,
            WalObjectKind::Partial,
            base + SEG,
            base + SEG + 0x10,
            10,
            11,
        ),
    );
    let other_timeline = recorded(
        &*store,
        &NewWalObject {
            timeline: 2,
            key: "wal/tl2.zst".into(),
            ..partial(0x10)
        },
    );
    let tl2 = recorded(&*store, &history(&cluster, 2, base + 0x10, "wal/h2.zst"));
    assert_eq!(
        record(
            &*store,
            "w",
            &history(&cluster, 2, base + 0x10, "wal/h2-again.zst")
        )
        .recorded,
        None,
        "a history file is recorded once"
    );
    assert_eq!(
        ids(&store.wal_objects(&cluster).expect("list")),
        ids(&[whole, other_timeline, tl2, next]),
        "by start LSN, then timeline, then id"
    );
}

pub fn log_pages_filter_by_time_and_count_every_match(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    // Segment n is sent from 10n to 10n + 10, recorded newest first so the order is the
    // listing's own.
    let mut segs: Vec<WalObject> = (0..5)
        .rev()
        .map(|n| {
            recorded(
                &*store,
                &segment(&cluster, n + 1, 10 * n as i64, 10 * n as i64 + 10),
            )
        })
        .collect();
    segs.reverse();
    let other = crate::common::new_cluster(&*store, &account);
    recorded(&*store, &segment(&other, 2, 15, 25));

    let all = store
        .wal_page(&cluster, &filter(-100, 100, 30, 1))
        .expect("page");
    assert_eq!((all.objects, all.total), (segs.clone(), 5));
    let middle = store
        .wal_page(&cluster, &filter(15, 32, 2, 1))
        .expect("page");
    assert_eq!(
        (ids(&middle.objects), middle.total),
        (ids(&segs[1..3]), 3),
        "spans meeting 15..=32, first page"
    );
    let rest = store
        .wal_page(&cluster, &filter(15, 32, 2, 2))
        .expect("page");
    assert_eq!((ids(&rest.objects), rest.total), (ids(&segs[3..4]), 3));
    let beyond = store
        .wal_page(&cluster, &filter(15, 32, 2, 3))
        .expect("page");
    assert_eq!((beyond.objects, beyond.total), (vec![], 3));
    let touching = store
        .wal_page(&cluster, &filter(20, 20, 10, 1))
        .expect("page");
    assert_eq!(
        ids(&touching.objects),
        ids(&segs[1..3]),
        "a span that ends or starts at the bound meets it"
    );
    let none = store
        .wal_page(&cluster, &filter(51, 60, 10, 1))
        .expect("page");
    assert_eq!((none.objects, none.total), (vec![], 0));
}

pub fn removed_objects_come_back_once(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let segs: Vec<WalObject> = (1..=3)
        .map(|n| recorded(&*store, &segment(&cluster, n, 0, 1)))
        .collect();
    let other = crate::common::new_cluster(&*store, &account);
    let foreign = recorded(&*store, &segment(&other, 1, 0, 1));
    let removed = store
        .remove_wal(&cluster, &[segs[1].id, foreign.id, BackupLogId(999_999)])
        .expect("remove");
    assert_eq!(
        removed,
        vec![segs[1].clone()],
        "only this cluster's, only known ones"
    );
    assert_eq!(
        store.remove_wal(&cluster, &[segs[1].id]).expect("remove"),
        vec![],
        "gone already"
    );
    assert_eq!(
        store.wal_objects(&cluster).expect("list"),
        vec![segs[0].clone(), segs[2].clone()]
    );
    assert_eq!(store.wal_object(segs[1].id).expect("get"), None);
    assert_eq!(
        store.wal_object(foreign.id).expect("get"),
        Some(foreign),
        "another cluster's object is kept and found by id"
    );
}

pub fn wal_ids_increase_and_are_never_reused(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    let first = recorded(&*store, &segment(&cluster, 1, 0, 1));
    let second = recorded(&*store, &segment(&cluster, 2, 0, 1));
    assert!(second.id > first.id);
    store.remove_wal(&cluster, &[second.id]).expect("remove");
    let third = recorded(&*store, &segment(&cluster, 3, 0, 1));
    assert!(
        third.id > second.id,
        "the newest id is not handed out again"
    );
    store.remove_wal(&cluster, &[third.id]).expect("remove");
    let fresh = b.open();
    let fourth = recorded(&*fresh, &segment(&cluster, 4, 0, 1));
    assert!(fourth.id > third.id, "nor by another handle");
}

pub fn gaps_round_trip_oldest_first_and_read_with_the_rest_in_one_snapshot(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let gap = |from: u64, to: u64, at: i64, reason: &str| WalGap {
        cluster_id: cluster.clone(),
        timeline: 1,
        from: Lsn(from),
        to: Lsn(to),
        detected_at: t(at),
        reason: reason.into(),
    };
    assert_eq!(store.gaps(&cluster).expect("gaps"), vec![]);
    let later = gap(5 * SEG, 9 * SEG + 0x28, 200, "WAL removed");
    let earlier = gap(SEG, 2 * SEG, 100, "slot invalidated");
    // Only the archiver holding the lease records a gap.
    assert!(!store.record_gap("a", &later, t(0)).expect("record"));
    assert!(store
        .claim_archiver(&cluster, "a", t(30), t(0))
        .expect("claim"));
    assert!(!store.record_gap("b", &later, t(1)).expect("record"));
    assert!(!store.record_gap("a", &later, t(31)).expect("lapsed"));
    assert_eq!(store.gaps(&cluster).expect("gaps"), vec![]);
    assert!(store.record_gap("a", &later, t(1)).expect("record"));
    assert!(store.record_gap("a", &earlier, t(1)).expect("record"));
    assert_eq!(
        store.gaps(&cluster).expect("gaps"),
        vec![earlier.clone(), later.clone()]
    );
    // The one-snapshot read holds what the separate reads do.
    store
        .record_wal("a", &segment(&cluster, 1, 0, 1), t(1))
        .expect("record");
    let inputs = store.recovery_inputs(&cluster).expect("inputs");
    assert_eq!(inputs.gaps, vec![earlier, later]);
    assert_eq!(inputs.wal, store.wal_objects(&cluster).expect("wal"));
    assert_eq!(inputs.wal.len(), 1);
    assert_eq!(inputs.sets, store.cluster_sets(&cluster).expect("sets"));
    let other = crate::common::new_cluster(&*store, &account);
    assert_eq!(store.gaps(&other).expect("gaps"), vec![]);
    assert!(store
        .recovery_inputs(&other)
        .expect("inputs")
        .wal
        .is_empty());
    let unknown = DbClusterId::parse("pc-unknown00000000").expect("id");
    let stray = WalGap {
        cluster_id: unknown.clone(),
        ..gap(0, 1, 0, "x")
    };
    assert!(!store.record_gap("a", &stray, t(1)).expect("record"));
    assert_eq!(store.gaps(&unknown).expect("gaps"), vec![]);
}

/// The archiver measures times with the server's microseconds; the window ends at the newest
/// WAL's, so a store that dropped them would end it before the newest archived commit.
pub fn wal_and_gap_times_keep_their_microseconds(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    let precise = NewWalObject {
        start_time: t_us(20, 1),
        end_time: t_us(29, 999_999),
        ..segment(&cluster, 3, 0, 0)
    };
    let object = recorded(&*store, &precise);
    assert_eq!(object.object, precise);
    let fresh = b.open();
    assert_eq!(
        fresh.wal_object(object.id).expect("get"),
        Some(object.clone())
    );
    assert_eq!(
        fresh.wal_objects(&cluster).expect("list"),
        vec![object.clone()]
    );
    let gap = WalGap {
        cluster_id: cluster.clone(),
        timeline: 1,
        from: Lsn(SEG),
        to: Lsn(2 * SEG),
        detected_at: t_us(40, 123_456),
        reason: "slot invalidated".into(),
    };
    // `recorded` left the lease with "w".
    assert!(store.record_gap("w", &gap, t(40)).expect("record"));
    assert_eq!(fresh.gaps(&cluster).expect("gaps"), vec![gap.clone()]);
    let inputs = fresh.recovery_inputs(&cluster).expect("inputs");
    assert_eq!((inputs.wal, inputs.gaps), (vec![object.clone()], vec![gap]));

    // Nanoseconds are below the server clock's precision: dropped, never rounded up.
    let finer = NewWalObject {
        start_time: t_us(20, 0) + SignedDuration::from_nanos(999),
        end_time: t_us(30, 0),
        ..segment(&cluster, 4, 0, 0)
    };
    let earlier = recorded(&*store, &finer);
    assert_eq!(
        (earlier.object.start_time, earlier.object.end_time),
        (t_us(20, 0), t_us(30, 0))
    );

    // Listed oldest first to the microsecond; the range is compared in whole seconds, as
    // DescribeBackupLogs shows times, so each object meets a bound in its shown second.
    let page = |from, to| {
        ids(&store
            .wal_page(&cluster, &filter(from, to, 30, 1))
            .expect("page")
            .objects)
    };
    assert_eq!(page(0, 100), vec![earlier.id, object.id], "by start time");
    assert_eq!(
        page(20, 20),
        vec![earlier.id, object.id],
        "both start in 20"
    );
    assert_eq!(page(0, 19), vec![], "both start after 19");
    assert_eq!(page(29, 29), vec![earlier.id, object.id], "both span 29");
    assert_eq!(page(30, 31), vec![earlier.id], "only one ends in 30");
}

/// What DescribeDBClusters reads: an account's clusters, newest first, none of another
/// account's; a deleted one stays (as `releasing`) while sets hidden for deletion or recorded
/// WAL remain, and `released_with_wal` names the deleted clusters whose WAL is still recorded.
pub fn the_cluster_apis_list_a_deleted_cluster_until_its_release_is_done(b: &dyn Backend) {
    use crate::common::{finish, new_cluster};
    use polarbackup_model::{JobMode, TaskAction};
    let (store, account, first) = setup(b);
    let second = new_cluster(&*store, &account);
    let stranger = store.create_account(None, t(0)).expect("account").id;
    let theirs = new_cluster(&*store, &stranger);
    let listing = |account| {
        store
            .account_clusters(account)
            .expect("list")
            .into_iter()
            .map(|l| (l.cluster.id, l.cluster.status, l.releasing))
            .collect::<Vec<_>>()
    };
    let mut both = vec![
        (first.clone(), ClusterStatus::Running, false),
        (second.clone(), ClusterStatus::Running, false),
    ];
    let mut listed = listing(&account);
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    both.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed, both);
    assert_eq!(
        listing(&stranger),
        [(theirs.clone(), ClusterStatus::Running, false)]
    );
    let one = store.account_clusters(&account).expect("list");
    assert_eq!(one[0].cluster.spec.account, account);

    // `first`: a finished set, hidden for deletion by NONE, listed until it is forgotten.
    let job = store
        .insert_job(
            &first,
            JobMode::Automated,
            TaskAction::NormalBackupTask,
            t(3),
        )
        .expect("job");
    let set = finish(&*store, job, 4);
    store
        .begin_cluster_deletion(&first, Some(Retention::None), t(5))
        .expect("begin")
        .expect("deleted");
    assert!(listing(&account).contains(&(first.clone(), ClusterStatus::Deleted, true)));
    assert!(store.released_with_wal().expect("released").is_empty());
    store.forget_set(set.id).expect("forget");
    assert!(!listing(&account).iter().any(|(id, _, _)| *id == first));

    // `second`: archived WAL, deleted with ALL; listed until the WAL rows are removed.
    let o = recorded(&*store, &segment(&second, 1, 1, 2));
    store
        .begin_cluster_deletion(&second, Some(Retention::All), t(6))
        .expect("begin")
        .expect("deleted");
    assert_eq!(
        listing(&account),
        [(second.clone(), ClusterStatus::Deleted, true)]
    );
    let released = store.released_with_wal().expect("released");
    assert_eq!(
        released.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&second]
    );
    assert_eq!(released[0].status, ClusterStatus::Deleted);
    store.remove_wal(&second, &[o.id]).expect("remove");
    assert!(listing(&account).is_empty());
    assert!(store.released_with_wal().expect("released").is_empty());
    assert_eq!(
        listing(&stranger).len(),
        1,
        "another account's cluster stays"
    );
}

/// The metrics' one read: every Running cluster (another account's too, a deleted one never)
/// with its log policy and what `recovery_inputs` reads of it, failed and corrupt sets left out.
pub fn the_recovery_overview_reads_every_running_cluster_with_its_available_sets(b: &dyn Backend) {
    use crate::common::{automated, fail, finish, new_cluster};
    let (store, account, first) = setup(b);
    let job = |cluster: &DbClusterId, at: i64| automated(&*store, cluster, at);
    let good = finish(&*store, job(&first, 1), 10);
    let corrupt = finish(&*store, job(&first, 11), 20);
    assert!(store
        .mark_set_corrupt(corrupt.id, "digest mismatch", t(21))
        .expect("mark"));
    fail(&*store, job(&first, 21), 30);
    let newer = finish(&*store, job(&first, 31), 40);
    recorded(&*store, &segment(&first, 1, 10, 20));
    recorded(&*store, &segment(&first, 2, 20, 30));
    let gap = WalGap {
        cluster_id: first.clone(),
        timeline: 1,
        from: Lsn(3 * SEG),
        to: Lsn(5 * SEG),
        detected_at: t(35),
        reason: "WAL removed".into(),
    };
    assert!(store.record_gap("w", &gap, t(3)).expect("record"));
    store
        .modify_log_backup_policy(&first, LogRetention::Days(30))
        .expect("modify")
        .expect("running");

    let stranger = store.create_account(None, t(0)).expect("account").id;
    let theirs = new_cluster(&*store, &stranger);
    let gone = new_cluster(&*store, &account);
    finish(&*store, job(&gone, 50), 60);
    recorded(&*store, &segment(&gone, 1, 50, 60));
    store
        .begin_cluster_deletion(&gone, Some(Retention::All), t(70))
        .expect("delete")
        .expect("no job");

    // Another handle, as a second server's scrape.
    let other = b.open();
    let overview = other.recovery_overview().expect("overview");
    let mut running = vec![first.clone(), theirs.clone()];
    running.sort();
    let listed: Vec<_> = overview.iter().map(|o| o.cluster.clone()).collect();
    assert_eq!(
        listed, running,
        "Running clusters by id, the deleted one left out"
    );
    for o in &overview {
        let cluster = other.cluster(&o.cluster).expect("get").expect("stored");
        assert_eq!(o.created_at, cluster.created_at);
        assert_eq!(
            o.log_policy,
            other.log_backup_policy(&o.cluster).expect("policy")
        );
        let mut inputs = other.recovery_inputs(&o.cluster).expect("inputs");
        inputs.sets.retain(|s| s.is_available());
        assert_eq!(o.available, inputs, "{}", o.cluster);
    }
    let mine = overview.iter().find(|o| o.cluster == first).expect("first");
    assert_eq!(
        mine.available.sets.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![good.id, newer.id],
        "the failed and the corrupt set are left out"
    );
    assert_eq!(mine.available.wal.len(), 2);
    assert_eq!(mine.available.gaps, vec![gap]);
    assert_eq!(mine.log_policy.retention, LogRetention::Days(30));
    let empty = overview
        .iter()
        .find(|o| o.cluster == theirs)
        .expect("theirs");
    assert_eq!(empty.log_policy, LogBackupPolicy::default());
    assert!(empty.available.sets.is_empty() && empty.available.wal.is_empty());
}
