//! The recovery window, the restore plan and WAL retention over hand-built archives: gaps,
//! timeline switches, partial segments and several full backups.

use jiff::Timestamp;
use polarbackup_model::log_backup::{
    expired_wal, plan_restore, recovery_window, PlanError, RecoveryTarget, RecoveryWindow,
};
use polarbackup_model::{
    BackupJobId, BackupLogId, BackupSet, BackupSetStatus, DbClusterId, JobMode, LogRetention, Lsn,
    NewWalObject, WalGap, WalObject, WalObjectKind, WalRange,
};

const SEG: u64 = 16 << 20;

fn cluster() -> DbClusterId {
    DbClusterId::parse("pc-aaaaaaaaaaaaaaa").unwrap()
}

/// Minute `m` of a fixed day.
fn t(m: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + m * 60).unwrap()
}

/// A successful full backup consistent at minute `at`, spanning segment `seg` of `tl`.
fn backup(id: u64, tl: u32, seg: u64, at: i64) -> BackupSet {
    BackupSet {
        id: BackupJobId(id),
        cluster_id: cluster(),
        mode: JobMode::Automated,
        status: BackupSetStatus::Success,
        start_time: t(at - 1),
        end_time: t(at),
        // Kept to the second, so the window begins a second later: at minute `at`.
        consistent_time: Some(t(at) - jiff::SignedDuration::from_secs(1)),
        size: 1,
        stored_size: 1,
        comment: None,
        wal: Some(WalRange {
            timeline: tl,
            start: Lsn(seg * SEG + 40),
            end: Lsn(seg * SEG + 4000),
        }),
        corrupt: None,
        parent: None,
    }
}

/// An incremental backup on `parent`, otherwise like [`backup`].
fn incremental(id: u64, parent: u64, tl: u32, seg: u64, at: i64) -> BackupSet {
    BackupSet {
        parent: Some(BackupJobId(parent)),
        ..backup(id, tl, seg, at)
    }
}

fn object(
    id: u64,
    tl: u32,
    kind: WalObjectKind,
    start: u64,
    end: u64,
    t0: i64,
    t1: i64,
) -> WalObject {
    WalObject {
        id: BackupLogId(id),
        object: NewWalObject {
            cluster_id: cluster(),
            timeline: tl,
            kind,
            name: format!("obj{id}"),
            start: Lsn(start),
            end: Lsn(end),
            size: end - start,
            stored_size: 1,
            key: format!("wal/{id}"),
            digest: String::new(),
            start_time: t(t0),
            end_time: t(t1),
        },
    }
}

/// Whole segment `n` of `tl`, written from minute `t0` to `t1`.
fn seg(id: u64, tl: u32, n: u64, t0: i64, t1: i64) -> WalObject {
    object(
        id,
        tl,
        WalObjectKind::Segment,
        n * SEG,
        (n + 1) * SEG,
        t0,
        t1,
    )
}

fn partial(id: u64, tl: u32, n: u64, len: u64, t0: i64, t1: i64) -> WalObject {
    object(
        id,
        tl,
        WalObjectKind::Partial,
        n * SEG,
        n * SEG + len,
        t0,
        t1,
    )
}

fn history(id: u64, tl: u32, switch: u64) -> WalObject {
    object(id, tl, WalObjectKind::History, switch, switch, 0, 0)
}

fn ids(objects: &[WalObject]) -> Vec<u64> {
    objects.iter().map(|w| w.id.0).collect()
}

fn window(a: i64, b: i64) -> Option<RecoveryWindow> {
    Some(RecoveryWindow {
        begin: t(a),
        end: t(b),
    })
}

#[test]
fn a_backup_and_contiguous_wal_reach_the_newest_wal() {
    let sets = [backup(1, 1, 2, 10)];
    let wal = [
        seg(11, 1, 2, 9, 12),
        seg(12, 1, 3, 12, 20),
        partial(13, 1, 4, 100, 20, 25),
    ];
    assert_eq!(recovery_window(&sets, &wal, &[]), window(10, 25));

    let plan = plan_restore(&sets, &wal, &[], RecoveryTarget::Time(t(15))).unwrap();
    assert_eq!(plan.base.id, BackupJobId(1));
    // Replay stops in segment 3; segment 4 starts after the target, so it holds the commit
    // where recovery stops and is included too.
    assert_eq!(ids(&plan.wal), vec![11, 12, 13]);
    assert_eq!(plan.target_time, Some(t(15)));
    assert_eq!(plan.timeline, 1);

    let plan = plan_restore(&sets, &wal, &[], RecoveryTarget::Time(t(11))).unwrap();
    assert_eq!(
        ids(&plan.wal),
        vec![11, 12],
        "stops after the first object starting past the target"
    );

    let latest = plan_restore(&sets, &wal, &[], RecoveryTarget::Latest).unwrap();
    assert_eq!(ids(&latest.wal), vec![11, 12, 13]);
    assert_eq!((latest.target_time, latest.reaches), (None, t(25)));
}

#[test]
fn a_target_outside_the_window_is_refused_with_the_window() {
    let sets = [backup(1, 1, 2, 10)];
    let wal = [seg(11, 1, 2, 9, 12)];
    for target in [t(9), t(13)] {
        let err = plan_restore(&sets, &wal, &[], RecoveryTarget::Time(target)).unwrap_err();
        assert_eq!(
            err,
            PlanError::OutsideWindow {
                target,
                window: window(10, 12)
            }
        );
        assert!(err.to_string().contains(&t(10).to_string()), "{err}");
    }
    // The window's ends are both reachable.
    for target in [t(10), t(12)] {
        plan_restore(&sets, &wal, &[], RecoveryTarget::Time(target)).unwrap();
    }
    assert_eq!(
        plan_restore(&[], &wal, &[], RecoveryTarget::Latest),
        Err(PlanError::NoBackup)
    );
    assert_eq!(recovery_window(&[], &wal, &[]), None);
}

#[test]
fn a_lone_backup_reaches_its_consistent_time() {
    let sets = [backup(1, 1, 2, 10)];
    assert_eq!(recovery_window(&sets, &[], &[]), window(10, 10));
    let plan = plan_restore(&sets, &[], &[], RecoveryTarget::Latest).unwrap();
    assert!(plan.wal.is_empty());
}

#[test]
fn failed_and_pre_wal_sets_are_not_bases() {
    let mut failed = backup(1, 1, 2, 10);
    failed.status = BackupSetStatus::Failed;
    let mut old = backup(2, 1, 2, 10);
    old.wal = None;
    let wal = [seg(11, 1, 2, 9, 12)];
    assert_eq!(recovery_window(&[failed, old], &wal, &[]), None);
}

#[test]
fn a_missing_segment_ends_a_chain_and_a_later_backup_starts_the_window_again() {
    // Segment 4 is missing: backup 1 reaches only minute 20; backup 2 (segment 6) starts anew.
    let sets = [backup(1, 1, 2, 10), backup(2, 1, 6, 40)];
    let wal = [
        seg(11, 1, 2, 9, 12),
        seg(12, 1, 3, 12, 20),
        seg(14, 1, 5, 30, 35),
        seg(15, 1, 6, 39, 45),
        seg(16, 1, 7, 45, 50),
    ];
    assert_eq!(recovery_window(&sets, &wal, &[]), window(40, 50));
    // Before the hole is outside the window, so refused like any other time outside it.
    for m in [15, 30] {
        let err = plan_restore(&sets, &wal, &[], RecoveryTarget::Time(t(m))).unwrap_err();
        assert!(matches!(err, PlanError::OutsideWindow { .. }), "{m}");
    }
    let plan = plan_restore(&sets, &wal, &[], RecoveryTarget::Time(t(42))).unwrap();
    assert_eq!(plan.base.id, BackupJobId(2));
}

#[test]
fn a_recorded_gap_is_never_crossed_even_if_objects_join_up() {
    let sets = [backup(1, 1, 2, 10), backup(2, 1, 5, 40)];
    let wal = [
        seg(11, 1, 2, 9, 12),
        seg(12, 1, 3, 12, 20),
        seg(13, 1, 4, 20, 30),
        seg(14, 1, 5, 30, 45),
    ];
    let gap = WalGap {
        cluster_id: cluster(),
        timeline: 1,
        from: Lsn(3 * SEG + 100),
        to: Lsn(4 * SEG + 10),
        detected_at: t(31),
        reason: "slot invalidated".into(),
    };
    assert_eq!(
        recovery_window(&sets, &wal, std::slice::from_ref(&gap)),
        window(40, 45)
    );
    assert_eq!(recovery_window(&sets, &wal, &[]), window(10, 45));
}

#[test]
fn overlapping_chains_make_one_window_from_the_oldest_backup() {
    let sets = [backup(1, 1, 2, 10), backup(2, 1, 3, 15)];
    let wal = [
        seg(11, 1, 2, 9, 12),
        seg(12, 1, 3, 12, 20),
        seg(13, 1, 4, 20, 30),
    ];
    assert_eq!(recovery_window(&sets, &wal, &[]), window(10, 30));
    // The newest backup at or before the target is the base.
    let plan = plan_restore(&sets, &wal, &[], RecoveryTarget::Time(t(25))).unwrap();
    assert_eq!(plan.base.id, BackupJobId(2));
    assert_eq!(ids(&plan.wal), vec![12, 13]);
    let plan = plan_restore(&sets, &wal, &[], RecoveryTarget::Time(t(12))).unwrap();
    assert_eq!(plan.base.id, BackupJobId(1));
}

#[test]
fn a_corrupt_backup_is_skipped_for_an_older_good_one() {
    let mut corrupt = backup(2, 1, 3, 15);
    corrupt.corrupt = Some("backups/2/objects/c1: BLAKE3 mismatch".into());
    assert!(!corrupt.is_available());
    let sets = [backup(1, 1, 2, 10), corrupt.clone()];
    let wal = [
        seg(11, 1, 2, 9, 12),
        seg(12, 1, 3, 12, 20),
        seg(13, 1, 4, 20, 30),
    ];
    // The window is the older set's chain, which crosses the corrupt set's place.
    assert_eq!(recovery_window(&sets, &wal, &[]), window(10, 30));
    for target in [RecoveryTarget::Time(t(25)), RecoveryTarget::Latest] {
        let plan = plan_restore(&sets, &wal, &[], target).unwrap();
        assert_eq!(plan.base.id, BackupJobId(1), "{target:?}");
        assert_eq!(ids(&plan.wal), vec![11, 12, 13]);
    }
    // Nothing older to fall back on: nothing is restorable.
    let alone = [corrupt];
    assert_eq!(recovery_window(&alone, &wal, &[]), None);
    assert_eq!(
        plan_restore(&alone, &wal, &[], RecoveryTarget::Time(t(25))),
        Err(PlanError::NoBackup)
    );
}

#[test]
fn a_partial_is_superseded_by_its_whole_segment() {
    let sets = [backup(1, 1, 2, 10)];
    let wal = [
        seg(11, 1, 2, 9, 12),
        partial(12, 1, 3, 50, 12, 13),
        seg(13, 1, 3, 12, 20),
    ];
    assert_eq!(recovery_window(&sets, &wal, &[]), window(10, 20));
    let plan = plan_restore(&sets, &wal, &[], RecoveryTarget::Latest).unwrap();
    assert_eq!(ids(&plan.wal), vec![11, 13]);
}

#[test]
fn replay_follows_a_timeline_switch() {
    // Timeline 2 began inside segment 3 (at 3 SEG + 500). Timeline 1's last partial stops
    // there; timeline 2's segment 3 holds the same WAL up to the switch, then its own.
    let switch = 3 * SEG + 500;
    let sets = [backup(1, 1, 2, 10)];
    let wal = [
        seg(11, 1, 2, 9, 12),
        partial(12, 1, 3, 500, 12, 14),
        history(13, 2, switch),
        seg(14, 2, 3, 15, 20),
        partial(15, 2, 4, 80, 20, 22),
    ];
    assert_eq!(recovery_window(&sets, &wal, &[]), window(10, 22));
    let plan = plan_restore(&sets, &wal, &[], RecoveryTarget::Time(t(21))).unwrap();
    assert_eq!(plan.timeline, 2);
    assert_eq!(
        ids(&plan.wal),
        vec![13, 11, 12, 14, 15],
        "history first, then replay order"
    );
    // Without the new timeline's segment the chain ends at the switch.
    let cut: Vec<_> = wal.iter().filter(|w| w.id.0 != 14).cloned().collect();
    assert_eq!(recovery_window(&sets, &cut, &[]), window(10, 14));
}

#[test]
fn retention_keeps_what_the_window_needs() {
    let days = |d: i64| 1440 * d;
    let now = t(days(10));
    // Backups on day 0 and day 5; log retention 7 days: the cutoff is day 3, so a restore to
    // day 3 needs backup 1 and everything after it.
    let sets = [backup(1, 1, 2, 10), backup(2, 1, 5, days(5))];
    let wal = [
        seg(10, 1, 1, 0, 5),
        seg(11, 1, 2, 9, 12),
        seg(12, 1, 3, 12, days(1)),
        seg(13, 1, 4, days(1), days(5)),
        seg(14, 1, 5, days(5), days(9)),
    ];
    assert_eq!(
        expired_wal(&sets, &wal, &[], LogRetention::Days(7), now),
        vec![BackupLogId(10)]
    );
    // With only backup 2 in the retention period's reach, everything before it goes.
    assert_eq!(
        expired_wal(&sets, &wal, &[], LogRetention::Days(3), now),
        vec![
            BackupLogId(10),
            BackupLogId(11),
            BackupLogId(12),
            BackupLogId(13)
        ]
    );
    assert!(expired_wal(&sets, &wal, &[], LogRetention::Forever, now).is_empty());
    // The window after retention still starts at a backup the remaining WAL serves.
    let kept: Vec<_> = wal.iter().filter(|w| w.id.0 > 13).cloned().collect();
    assert_eq!(recovery_window(&sets, &kept, &[]), window(days(5), days(9)));
}

#[test]
fn the_window_begins_the_second_after_the_recorded_consistent_time() {
    // The store keeps consistent times cut to the second; the real one may be up to a second
    // later, and a target before it would stop PostgreSQL short of consistency.
    let mut set = backup(1, 1, 2, 10);
    let recorded = t(10) + jiff::SignedDuration::from_secs(5);
    set.consistent_time = Some(recorded);
    let wal = [seg(11, 1, 2, 9, 12)];
    let w = recovery_window(std::slice::from_ref(&set), &wal, &[]).unwrap();
    assert_eq!(w.begin, recorded + jiff::SignedDuration::from_secs(1));
    let err = plan_restore(
        std::slice::from_ref(&set),
        &wal,
        &[],
        RecoveryTarget::Time(recorded),
    );
    assert!(
        matches!(err, Err(PlanError::OutsideWindow { .. })),
        "{err:?}"
    );
    // With a fraction (a set not yet through the store) it is the next whole second too.
    set.consistent_time = Some(recorded + jiff::SignedDuration::from_millis(300));
    let w = recovery_window(std::slice::from_ref(&set), &wal, &[]).unwrap();
    assert_eq!(w.begin, recorded + jiff::SignedDuration::from_secs(1));
}

#[test]
fn an_incremental_base_needs_its_whole_chain() {
    // full 1 (segment 0, minute 1) <- incremental 2 (segment 2, minute 21); WAL from 0 to 4.
    let wal = vec![
        seg(1, 1, 0, 0, 10),
        seg(2, 1, 1, 10, 20),
        seg(3, 1, 2, 20, 30),
        seg(4, 1, 3, 30, 40),
    ];
    let mut sets = vec![backup(1, 1, 0, 1), incremental(2, 1, 1, 2, 21)];
    assert_eq!(recovery_window(&sets, &wal, &[]), window(1, 40));
    let plan = plan_restore(&sets, &wal, &[], RecoveryTarget::Time(t(25))).expect("plan");
    assert_eq!(
        plan.base.id,
        BackupJobId(2),
        "the newest base at or before the target"
    );

    // The full set below it is found corrupt: the incremental set is no base either, so
    // nothing is restorable.
    sets[0].corrupt = Some("chunk 3 digest mismatch".into());
    assert_eq!(recovery_window(&sets, &wal, &[]), None);
    assert_eq!(
        plan_restore(&sets, &wal, &[], RecoveryTarget::Latest),
        Err(PlanError::NoBackup)
    );

    // A newer full set makes a new window; the broken chain before it stays unusable.
    sets.push(backup(3, 1, 3, 31));
    assert_eq!(recovery_window(&sets, &wal, &[]), window(31, 40));
    let plan = plan_restore(&sets, &wal, &[], RecoveryTarget::Latest).expect("plan");
    assert_eq!(plan.base.id, BackupJobId(3));

    // A parent that is gone (deleted) breaks the chain too.
    let orphan = vec![incremental(2, 1, 1, 2, 21)];
    assert_eq!(recovery_window(&orphan, &wal, &[]), None);
}
