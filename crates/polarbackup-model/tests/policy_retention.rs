//! Retention: which automated sets expire, and that the newest successful one never does.

use jiff::Timestamp;
use polarbackup_model::policy::{
    expired, spare_parents, BackupFrequency, BackupPolicy, RetentionDays,
};
use polarbackup_model::{
    BackupJobId, BackupSet, BackupSetStatus, DbClusterId, JobMode, Lsn, WalRange,
};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const AUTO: bool = true;
const MANUAL: bool = false;
const OK: bool = true;
const FAILED: bool = false;

fn set(id: u32, at: &str, automated: bool, success: bool) -> (u32, Timestamp, bool, bool) {
    (id, ts(at), automated, success)
}

#[test]
fn automated_sets_older_than_retention_expire() {
    let p = BackupPolicy::default(); // 7 days
    let now = ts("2024-01-20T00:00:00Z");
    let sets = [
        set(1, "2024-01-01T02:30:00Z", AUTO, OK),
        set(2, "2024-01-12T02:30:00Z", AUTO, OK),
        set(3, "2024-01-13T00:00:00Z", AUTO, OK), // exactly 7 days: not older
        set(4, "2024-01-05T02:30:00Z", AUTO, FAILED),
        set(5, "2024-01-19T02:30:00Z", AUTO, FAILED),
        set(6, "2024-01-01T02:30:00Z", MANUAL, OK),
        set(7, "2024-01-01T02:30:00Z", MANUAL, FAILED),
        set(8, "2024-01-19T02:00:00Z", AUTO, OK),
    ];
    assert_eq!(expired(&p, &sets, now), vec![1, 2, 4]);
    // One second later set 3 is older than 7 days.
    assert_eq!(
        expired(&p, &sets, ts("2024-01-20T00:00:01Z")),
        vec![1, 2, 3, 4]
    );
}

#[test]
fn retention_period_follows_the_policy() {
    let mut p = BackupPolicy::default();
    let sets = [
        set(1, "2024-01-01T02:30:00Z", AUTO, OK),
        set(2, "2024-01-10T02:30:00Z", AUTO, OK),
        set(3, "2024-01-19T02:30:00Z", AUTO, OK),
    ];
    let now = ts("2024-01-20T00:00:00Z");
    p.retention_days = RetentionDays::new(14).unwrap();
    assert_eq!(expired(&p, &sets, now), vec![1]);
    p.retention_days = RetentionDays::new(3).unwrap();
    assert_eq!(expired(&p, &sets, now), vec![1, 2]);
}

#[test]
fn newest_successful_set_survives_even_when_old() {
    let p = BackupPolicy::default();
    let now = ts("2024-03-01T00:00:00Z");
    let sets = [
        set(1, "2024-01-01T02:30:00Z", AUTO, OK),
        set(2, "2024-01-02T02:30:00Z", AUTO, OK),
        set(3, "2024-01-03T02:30:00Z", AUTO, FAILED),
        set(4, "2024-02-28T02:30:00Z", AUTO, FAILED),
    ];
    // Set 2 is the newest success: kept though 58 days old; failures after it do not count.
    assert_eq!(expired(&p, &sets, now), vec![1, 3]);
    // Input order does not matter.
    let rev: Vec<_> = sets.iter().rev().cloned().collect();
    assert_eq!(expired(&p, &rev, now), vec![3, 1]);
}

#[test]
fn newest_automated_success_survives_next_to_a_newer_manual_one() {
    let p = BackupPolicy::default();
    let now = ts("2024-03-01T00:00:00Z");
    let sets = [
        set(1, "2024-01-01T02:30:00Z", AUTO, OK),
        set(2, "2024-01-02T02:30:00Z", AUTO, OK),
        set(3, "2024-02-29T12:00:00Z", MANUAL, OK),
    ];
    // The manual set is newest and never expires; the automated chain still keeps set 2,
    // since the user may delete the manual one.
    assert_eq!(expired(&p, &sets, now), vec![1]);
}

#[test]
fn only_failures_all_expire_when_old() {
    let p = BackupPolicy::default();
    let sets = [
        set(1, "2024-01-01T02:30:00Z", AUTO, FAILED),
        set(2, "2024-01-02T02:30:00Z", AUTO, FAILED),
    ];
    assert_eq!(expired(&p, &sets, ts("2024-03-01T00:00:00Z")), vec![1, 2]);
    assert!(expired(
        &p,
        &[] as &[(u32, Timestamp, bool, bool)],
        ts("2024-03-01T00:00:00Z")
    )
    .is_empty());
}

#[test]
fn manual_sets_never_expire() {
    let p = BackupPolicy::default();
    let sets = [
        set(1, "2020-01-01T02:30:00Z", MANUAL, OK),
        set(2, "2020-01-02T02:30:00Z", MANUAL, FAILED),
    ];
    assert!(expired(&p, &sets, ts("2024-03-01T00:00:00Z")).is_empty());
}

#[test]
fn future_finish_times_are_kept() {
    let p = BackupPolicy::default();
    let sets = [
        set(1, "2024-03-05T00:00:00Z", AUTO, OK),
        set(2, "2024-03-04T00:00:00Z", AUTO, FAILED),
    ];
    assert!(expired(&p, &sets, ts("2024-03-01T00:00:00Z")).is_empty());
}

#[test]
fn high_frequency_keeps_one_per_day_after_24_hours() {
    let mut p = BackupPolicy {
        retention_days: RetentionDays::new(14).unwrap(),
        frequency: BackupFrequency::FourPer24H,
        ..BackupPolicy::default()
    };
    let now = ts("2024-01-19T23:00:00Z");
    let sets = [
        set(1, "2024-01-10T02:30:00Z", AUTO, OK), // first of Jan 10: kept
        set(2, "2024-01-10T08:30:00Z", AUTO, OK),
        set(3, "2024-01-10T14:30:00Z", AUTO, FAILED), // failures expire by retention only
        set(4, "2024-01-10T20:30:00Z", AUTO, OK),
        set(5, "2024-01-18T02:30:00Z", AUTO, OK), // first of Jan 18: kept
        set(6, "2024-01-18T20:30:00Z", AUTO, OK), // 26.5 h old, not first: expires
        set(7, "2024-01-18T23:30:00Z", AUTO, OK), // 23.5 h old: kept
        set(8, "2024-01-19T02:30:00Z", AUTO, OK),
        set(9, "2024-01-19T08:30:00Z", AUTO, OK),
        set(10, "2024-01-10T09:00:00Z", MANUAL, OK),
        set(11, "2024-01-01T02:30:00Z", AUTO, OK), // older than 14 days
    ];
    assert_eq!(expired(&p, &sets, now), vec![2, 4, 6, 11]);

    // The same sets under Normal frequency: only retention applies.
    p.frequency = BackupFrequency::Normal;
    assert_eq!(expired(&p, &sets, now), vec![11]);
}

/// A successful automated set `id` on `parent` (or a full one).
fn chained(id: u64, parent: Option<u64>) -> BackupSet {
    let at = Timestamp::from_second(1_700_000_000 + id as i64 * 3600).unwrap();
    BackupSet {
        id: BackupJobId(id),
        cluster_id: DbClusterId::parse("pc-aaaaaaaaaaaaaaa").unwrap(),
        mode: JobMode::Automated,
        status: BackupSetStatus::Success,
        start_time: at,
        end_time: at,
        consistent_time: Some(at),
        size: 1,
        stored_size: 1,
        comment: None,
        wal: Some(WalRange {
            timeline: 1,
            start: Lsn(id * 100),
            end: Lsn(id * 100 + 50),
        }),
        corrupt: None,
        parent: parent.map(BackupJobId),
    }
}

fn jids(ids: &[u64]) -> Vec<BackupJobId> {
    ids.iter().copied().map(BackupJobId).collect()
}

#[test]
fn a_kept_incremental_set_keeps_its_whole_chain() {
    // full 1 <- 2 <- 3: 1 and 2 expired, 3 kept.
    let sets = [chained(1, None), chained(2, Some(1)), chained(3, Some(2))];
    assert_eq!(spare_parents(&sets, &jids(&[1, 2])), jids(&[]));
    // Only the full set expired: the chain above it keeps it.
    assert_eq!(spare_parents(&sets, &jids(&[1])), jids(&[]));
    // The tip expired alone: nothing depends on it.
    assert_eq!(spare_parents(&sets, &jids(&[3])), jids(&[3]));
}

#[test]
fn an_expired_chain_goes_together_and_a_spared_parent_goes_with_its_last_child() {
    let sets = [chained(1, None), chained(2, Some(1)), chained(3, Some(2))];
    assert_eq!(spare_parents(&sets, &jids(&[1, 2, 3])), jids(&[1, 2, 3]));
    // Two children of one full set: it goes only once both are expired.
    let forked = [chained(1, None), chained(2, Some(1)), chained(3, Some(1))];
    assert_eq!(spare_parents(&forked, &jids(&[1, 2])), jids(&[2]));
    assert_eq!(spare_parents(&forked, &jids(&[1, 2, 3])), jids(&[1, 2, 3]));
    // Later pass: child 2 is gone, child 3 expires now; the full set goes with it.
    let later = [chained(1, None), chained(3, Some(1))];
    assert_eq!(spare_parents(&later, &jids(&[1, 3])), jids(&[1, 3]));
    // Unrelated sets are untouched, and the input order is kept.
    let mixed = [chained(5, None), chained(1, None), chained(2, Some(1))];
    assert_eq!(spare_parents(&mixed, &jids(&[5, 1])), jids(&[5]));
}

#[test]
fn a_broken_chain_keeps_nothing_alive() {
    // full 1 is corrupt: the kept set 3 cannot be restored, so it spares neither 2 nor 1.
    let mut sets = [chained(1, None), chained(2, Some(1)), chained(3, Some(2))];
    sets[0].corrupt = Some("chunk 1 digest mismatch".into());
    assert_eq!(spare_parents(&sets, &jids(&[1, 2])), jids(&[1, 2]));
    // A corrupt middle set likewise.
    let mut sets = [chained(1, None), chained(2, Some(1)), chained(3, Some(2))];
    sets[1].corrupt = Some("bad".into());
    assert_eq!(spare_parents(&sets, &jids(&[1, 2])), jids(&[1, 2]));
    // A kept set whose parent is already gone spares nothing.
    let sets = [chained(1, None), chained(3, Some(2))];
    assert_eq!(spare_parents(&sets, &jids(&[1])), jids(&[1]));
    // A failed kept set neither.
    let mut sets = [chained(1, None), chained(2, Some(1))];
    sets[1].status = BackupSetStatus::Failed;
    assert_eq!(spare_parents(&sets, &jids(&[1])), jids(&[1]));
}
