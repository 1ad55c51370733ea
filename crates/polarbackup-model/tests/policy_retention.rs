//! Retention: which automated sets expire, and that the newest successful one never does.

use jiff::Timestamp;
use polarbackup_model::policy::{expired, BackupFrequency, BackupPolicy, RetentionDays};

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
