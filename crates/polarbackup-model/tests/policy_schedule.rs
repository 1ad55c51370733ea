//! Schedule math over weeks of fixed UTC timestamps: slots, next slot, due slot and catch-up.

use jiff::{SignedDuration, Timestamp};
use polarbackup_model::policy::{
    due_slot, format_next_backup_time, is_catch_up, kind_for_slot, last_slot_at_or_before,
    next_slot_after, preferred_next_backup_time, slots_between, window_end, BackupFrequency,
    BackupPolicy, BackupWindow, FullBackupEvery, WeekdaySet,
};
use polarbackup_model::BackupKind;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn tss(list: &[&str]) -> Vec<Timestamp> {
    list.iter().map(|s| ts(s)).collect()
}

fn policy(period: &str, hour: u8, frequency: BackupFrequency) -> BackupPolicy {
    BackupPolicy {
        period: WeekdaySet::parse(period).unwrap(),
        window: BackupWindow::starting_at(hour).unwrap(),
        frequency,
        ..BackupPolicy::default()
    }
}

/// Monday, Wednesday and Friday at 02:00Z.
fn mwf() -> BackupPolicy {
    policy("Monday,Wednesday,Friday", 2, BackupFrequency::Normal)
}

#[test]
fn fixture_dates_are_what_the_tests_assume() {
    use jiff::civil::Weekday;
    use jiff::tz::TimeZone;
    let wd = |s: &str| ts(s).to_zoned(TimeZone::UTC).weekday();
    assert_eq!(wd("2024-01-01T00:00:00Z"), Weekday::Monday);
    assert_eq!(wd("2023-12-31T00:00:00Z"), Weekday::Sunday);
    assert_eq!(wd("2024-02-29T00:00:00Z"), Weekday::Thursday);
}

#[test]
fn mon_wed_fri_over_three_weeks() {
    let got = slots_between(
        &mwf(),
        ts("2024-01-01T00:00:00Z"),
        ts("2024-01-22T00:00:00Z"),
    );
    assert_eq!(
        got,
        tss(&[
            "2024-01-01T02:00:00Z",
            "2024-01-03T02:00:00Z",
            "2024-01-05T02:00:00Z",
            "2024-01-08T02:00:00Z",
            "2024-01-10T02:00:00Z",
            "2024-01-12T02:00:00Z",
            "2024-01-15T02:00:00Z",
            "2024-01-17T02:00:00Z",
            "2024-01-19T02:00:00Z",
        ])
    );
}

#[test]
fn range_is_open_at_from_and_closed_at_to() {
    let p = mwf();
    let got = slots_between(&p, ts("2024-01-01T02:00:00Z"), ts("2024-01-05T02:00:00Z"));
    assert_eq!(got, tss(&["2024-01-03T02:00:00Z", "2024-01-05T02:00:00Z"]));
    assert!(slots_between(&p, ts("2024-01-05T02:00:00Z"), ts("2024-01-05T02:00:00Z")).is_empty());
    assert!(slots_between(&p, ts("2024-01-09T00:00:00Z"), ts("2024-01-01T00:00:00Z")).is_empty());
    // Sub-second precision: a slot one nanosecond after `from` counts.
    let from = ts("2024-01-01T01:59:59.999999999Z");
    assert_eq!(
        slots_between(&p, from, ts("2024-01-01T02:00:00Z")),
        tss(&["2024-01-01T02:00:00Z"])
    );
}

#[test]
fn four_per_day_over_two_days_ignores_the_period() {
    // The period field is forced to all days by `apply`; even if set directly, high
    // frequency backs up every day.
    let p = policy("Monday,Wednesday", 2, BackupFrequency::FourPer24H);
    let got = slots_between(&p, ts("2024-01-01T00:00:00Z"), ts("2024-01-03T00:00:00Z"));
    assert_eq!(
        got,
        tss(&[
            "2024-01-01T02:00:00Z",
            "2024-01-01T08:00:00Z",
            "2024-01-01T14:00:00Z",
            "2024-01-01T20:00:00Z",
            "2024-01-02T02:00:00Z",
            "2024-01-02T08:00:00Z",
            "2024-01-02T14:00:00Z",
            "2024-01-02T20:00:00Z",
        ])
    );
}

#[test]
fn two_and_three_per_day_align_to_the_window() {
    let p = policy("Monday,Tuesday", 14, BackupFrequency::TwoPer24H);
    let got = slots_between(&p, ts("2024-01-01T00:00:00Z"), ts("2024-01-02T00:00:00Z"));
    assert_eq!(got, tss(&["2024-01-01T02:00:00Z", "2024-01-01T14:00:00Z"]));

    let p = policy("Monday,Tuesday", 23, BackupFrequency::ThreePer24H);
    let got = slots_between(&p, ts("2024-01-01T00:00:00Z"), ts("2024-01-02T00:00:00Z"));
    assert_eq!(
        got,
        tss(&[
            "2024-01-01T07:00:00Z",
            "2024-01-01T15:00:00Z",
            "2024-01-01T23:00:00Z",
        ])
    );
}

#[test]
fn wraparound_window_starts_at_23_on_the_chosen_day() {
    let p = policy("Saturday,Sunday", 23, BackupFrequency::Normal);
    let got = slots_between(&p, ts("2024-01-01T00:00:00Z"), ts("2024-01-15T00:00:00Z"));
    assert_eq!(
        got,
        tss(&[
            "2024-01-06T23:00:00Z",
            "2024-01-07T23:00:00Z",
            "2024-01-13T23:00:00Z",
            "2024-01-14T23:00:00Z",
        ])
    );
    assert_eq!(
        window_end(ts("2024-01-07T23:00:00Z")),
        ts("2024-01-08T00:00:00Z")
    );
}

#[test]
fn utc_has_no_dst_daily_slots_stay_24h_apart() {
    // US DST starts 2024-03-10, EU 2024-03-31, EU ends 2024-10-27: nothing moves in UTC.
    let p = BackupPolicy::default();
    for (from, to) in [
        ("2024-03-08T00:00:00Z", "2024-04-02T00:00:00Z"),
        ("2024-10-25T00:00:00Z", "2024-11-05T00:00:00Z"),
    ] {
        let got = slots_between(&p, ts(from), ts(to));
        assert!(got.len() > 10);
        for pair in got.windows(2) {
            assert_eq!(
                pair[1].duration_since(pair[0]),
                SignedDuration::from_hours(24)
            );
        }
        assert!(got
            .iter()
            .all(|s| s.as_second().rem_euclid(86_400) == 2 * 3_600));
    }
}

#[test]
fn leap_day_is_an_ordinary_thursday() {
    let p = policy("Thursday,Friday", 5, BackupFrequency::Normal);
    let got = slots_between(&p, ts("2024-02-27T00:00:00Z"), ts("2024-03-02T00:00:00Z"));
    assert_eq!(got, tss(&["2024-02-29T05:00:00Z", "2024-03-01T05:00:00Z"]));
}

#[test]
fn next_slot_after_crosses_week_and_year_boundaries() {
    let p = mwf();
    for (at, next) in [
        ("2024-01-05T01:59:59Z", "2024-01-05T02:00:00Z"),
        ("2024-01-05T02:00:00Z", "2024-01-08T02:00:00Z"),
        ("2024-01-06T12:00:00Z", "2024-01-08T02:00:00Z"),
        ("2024-01-07T23:59:59Z", "2024-01-08T02:00:00Z"),
        ("2023-12-29T02:00:00Z", "2024-01-01T02:00:00Z"),
    ] {
        assert_eq!(next_slot_after(&p, ts(at)), ts(next), "after {at}");
    }
    // Weekend-only: from Sunday after the window to next Saturday.
    let w = policy("Saturday,Sunday", 23, BackupFrequency::Normal);
    assert_eq!(
        next_slot_after(&w, ts("2024-01-07T23:00:00Z")),
        ts("2024-01-13T23:00:00Z")
    );
    // High frequency: the next six-hour step, across midnight.
    let h = policy("Monday,Tuesday", 2, BackupFrequency::FourPer24H);
    assert_eq!(
        next_slot_after(&h, ts("2024-01-07T20:00:00Z")),
        ts("2024-01-08T02:00:00Z")
    );
}

#[test]
fn preferred_next_backup_time_format() {
    assert_eq!(
        format_next_backup_time(ts("2020-11-16T07:30:05Z")),
        "2020-11-16T07:30Z"
    );
    assert_eq!(
        preferred_next_backup_time(&BackupPolicy::default(), ts("2024-01-01T02:00:00Z")),
        "2024-01-02T02:00Z"
    );
    assert_eq!(
        preferred_next_backup_time(&mwf(), ts("2024-01-05T02:30:00Z")),
        "2024-01-08T02:00Z"
    );
}

#[test]
fn last_slot_at_or_before_looks_back_across_a_week() {
    let p = mwf();
    assert_eq!(
        last_slot_at_or_before(&p, ts("2024-01-08T01:00:00Z")),
        Some(ts("2024-01-05T02:00:00Z"))
    );
    assert_eq!(
        last_slot_at_or_before(&p, ts("2024-01-08T02:00:00Z")),
        Some(ts("2024-01-08T02:00:00Z"))
    );
}

#[test]
fn never_scheduled_cluster_is_due_only_inside_the_window() {
    let p = mwf();
    assert_eq!(due_slot(&p, None, ts("2024-01-01T01:59:59Z")), None);
    assert_eq!(
        due_slot(&p, None, ts("2024-01-01T02:00:00Z")),
        Some(ts("2024-01-01T02:00:00Z"))
    );
    assert_eq!(
        due_slot(&p, None, ts("2024-01-01T02:59:59Z")),
        Some(ts("2024-01-01T02:00:00Z"))
    );
    assert_eq!(due_slot(&p, None, ts("2024-01-01T03:00:00Z")), None);
    assert_eq!(due_slot(&p, None, ts("2024-01-02T02:30:00Z")), None); // Tuesday
}

#[test]
fn ten_day_downtime_yields_exactly_one_catch_up_slot() {
    let p = mwf();
    let last = ts("2024-01-01T02:00:00Z");
    let back = ts("2024-01-11T12:00:00Z"); // Thursday; missed Jan 3, 5, 8, 10
    assert_eq!(slots_between(&p, last, back).len(), 4);
    let due = due_slot(&p, Some(last), back);
    assert_eq!(due, Some(ts("2024-01-10T02:00:00Z")));
    assert!(is_catch_up(due.unwrap(), back));

    // Idempotent: with that slot recorded, nothing until the next slot starts.
    let last = due.unwrap();
    assert_eq!(due_slot(&p, Some(last), back), None);
    assert_eq!(due_slot(&p, Some(last), ts("2024-01-12T01:59:59Z")), None);
    assert_eq!(
        due_slot(&p, Some(last), ts("2024-01-12T02:00:00Z")),
        Some(ts("2024-01-12T02:00:00Z"))
    );
    assert!(!is_catch_up(
        ts("2024-01-12T02:00:00Z"),
        ts("2024-01-12T02:59:59Z")
    ));
}

#[test]
fn last_scheduled_in_the_future_yields_nothing() {
    let p = mwf();
    assert_eq!(
        due_slot(
            &p,
            Some(ts("2024-01-08T02:00:00Z")),
            ts("2024-01-05T02:30:00Z")
        ),
        None
    );
}

#[test]
fn high_frequency_due_slots() {
    let p = policy("Monday,Tuesday", 2, BackupFrequency::FourPer24H);
    let last = Some(ts("2024-01-01T08:00:00Z"));
    assert_eq!(due_slot(&p, last, ts("2024-01-01T13:59:59Z")), None);
    assert_eq!(
        due_slot(&p, last, ts("2024-01-01T14:00:00Z")),
        Some(ts("2024-01-01T14:00:00Z"))
    );
}

/// A scheduler ticking every 15 minutes for three weeks, down from Monday Jan 1 03:00 to
/// Thursday Jan 11 12:00, creates exactly these jobs.
#[test]
fn simulated_scheduler_over_three_weeks_with_downtime() {
    let p = mwf();
    let (down_from, down_to) = (ts("2024-01-01T03:00:00Z"), ts("2024-01-11T12:00:00Z"));
    let end = ts("2024-01-22T00:00:00Z");
    let mut now = ts("2024-01-01T00:00:00Z");
    let mut last: Option<Timestamp> = None;
    let mut created = Vec::new();
    while now <= end {
        let up = now < down_from || now >= down_to;
        if up {
            // Ask twice per tick: the second answer must be None (exactly once).
            if let Some(slot) = due_slot(&p, last, now) {
                created.push((slot, now));
                last = Some(slot);
            }
            assert_eq!(due_slot(&p, last, now), None);
        }
        now = now.checked_add(SignedDuration::from_mins(15)).unwrap();
    }
    let slots: Vec<Timestamp> = created.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        slots,
        tss(&[
            "2024-01-01T02:00:00Z",
            "2024-01-10T02:00:00Z",
            "2024-01-12T02:00:00Z",
            "2024-01-15T02:00:00Z",
            "2024-01-17T02:00:00Z",
            "2024-01-19T02:00:00Z",
        ])
    );
    // The catch-up ran at restart; all others inside their window.
    for (slot, at) in &created {
        let catch_up = is_catch_up(*slot, *at);
        assert_eq!(catch_up, *at == down_to, "slot {slot} created at {at}");
    }
}

#[test]
fn the_first_slot_of_each_iso_week_is_full() {
    use BackupKind::{Full, Incremental};
    let week = FullBackupEvery::Week;
    // Mon/Wed/Fri at 02:00Z from Monday 2024-01-08: full, incremental, incremental, then the
    // next Monday full again.
    let slots = slots_between(
        &mwf(),
        ts("2024-01-07T00:00:00Z"),
        ts("2024-01-16T00:00:00Z"),
    );
    let mut previous = None;
    let mut kinds = Vec::new();
    for s in &slots {
        kinds.push(kind_for_slot(week, *s, previous));
        previous = Some(*s);
    }
    assert_eq!(kinds, vec![Full, Incremental, Incremental, Full]);
    // Never scheduled: full.
    assert_eq!(kind_for_slot(week, ts("2024-01-10T02:00:00Z"), None), Full);
    // Sunday 23:00 then Monday 00:00: the week turned at midnight UTC.
    assert_eq!(
        kind_for_slot(
            week,
            ts("2024-01-15T00:00:00Z"),
            Some(ts("2024-01-14T23:00:00Z"))
        ),
        Full
    );
    assert_eq!(
        kind_for_slot(
            week,
            ts("2024-01-14T23:00:00Z"),
            Some(ts("2024-01-08T00:00:00Z"))
        ),
        Incremental,
        "Monday 00:00 and Sunday 23:00 of one week"
    );
    // ISO weeks cross the new year: Monday 2024-12-30 is week 1 of 2025.
    assert_eq!(
        kind_for_slot(
            week,
            ts("2025-01-02T02:00:00Z"),
            Some(ts("2024-12-30T02:00:00Z"))
        ),
        Incremental
    );
    assert_eq!(
        kind_for_slot(
            week,
            ts("2024-12-30T02:00:00Z"),
            Some(ts("2024-12-29T02:00:00Z"))
        ),
        Full
    );
}

#[test]
fn a_gap_in_the_schedule_or_a_clock_stepped_back_makes_the_next_slot_full() {
    use BackupKind::{Full, Incremental};
    let week = FullBackupEvery::Week;
    // Friday, then (downtime) the Wednesday after: an earlier week.
    assert_eq!(
        kind_for_slot(
            week,
            ts("2024-01-17T02:00:00Z"),
            Some(ts("2024-01-12T02:00:00Z"))
        ),
        Full
    );
    // Same weekday a week later (a weekly policy): full every time.
    assert_eq!(
        kind_for_slot(
            week,
            ts("2024-01-17T02:00:00Z"),
            Some(ts("2024-01-10T02:00:00Z"))
        ),
        Full
    );
    // Months apart.
    assert_eq!(
        kind_for_slot(
            week,
            ts("2024-06-05T02:00:00Z"),
            Some(ts("2024-01-10T02:00:00Z"))
        ),
        Full
    );
    // A previous slot after this one (the clock stepped back): full, to be safe.
    assert_eq!(
        kind_for_slot(
            week,
            ts("2024-01-10T02:00:00Z"),
            Some(ts("2024-01-11T02:00:00Z"))
        ),
        Full
    );
    // Within a week, a high-frequency grid stays incremental.
    assert_eq!(
        kind_for_slot(
            week,
            ts("2024-01-10T08:00:00Z"),
            Some(ts("2024-01-10T02:00:00Z"))
        ),
        Incremental
    );
}

#[test]
fn always_makes_every_automated_backup_full() {
    for (slot, previous) in [
        ("2024-01-10T08:00:00Z", Some("2024-01-10T02:00:00Z")),
        ("2024-01-10T08:00:00Z", None),
        ("2024-01-15T02:00:00Z", Some("2024-01-12T02:00:00Z")),
    ] {
        assert_eq!(
            kind_for_slot(FullBackupEvery::Always, ts(slot), previous.map(ts)),
            BackupKind::Full
        );
    }
    for e in FullBackupEvery::ALL {
        assert_eq!(e.as_str().parse::<FullBackupEvery>(), Ok(e));
    }
    assert_eq!(FullBackupEvery::default(), FullBackupEvery::Week);
    assert!("Week".parse::<FullBackupEvery>().is_err());
}
