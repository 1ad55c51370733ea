//! Schedule math: when automated backups are due. All in UTC (no DST), on whole hours, pure.
//!
//! A *slot* is the start instant of one scheduled backup:
//!
//! * `Normal`: the window start (`HH:00Z`) on each weekday of the period;
//! * `N/24H`: every `24/N` hours (12, 8, 6) aligned to the window start, on every day
//!   (e.g. `4/24H` with `02:00Z-03:00Z` → 02:00, 08:00, 14:00, 20:00).
//!
//! Every slot owns a one-hour window, [`SLOT_WINDOW`] (the policy's window for `Normal`).
//!
//! **Exactly once and catch-up.** A scheduler keeps, per cluster, the last slot it created a job
//! for (`last_scheduled`, stored atomically with the job) and asks [`due_slot`]. The answer is the
//! most recent slot in `(last_scheduled, now]`, so:
//!
//! * a running scheduler gets each slot once, inside its window;
//! * after a downtime spanning one or many windows it gets exactly **one** catch-up slot, the most
//!   recent missed one, immediately at restart, even though that slot's window has closed (a late
//!   backup beats a missing one; older missed slots are skipped, not replayed as a burst);
//! * two processes computing `due_slot` from the same stored `last_scheduled` get the same slot,
//!   so a compare-and-set on `last_scheduled` (or a unique `(cluster, slot)` key) makes it once.
//!
//! With no `last_scheduled` yet (a new cluster, never scheduled) nothing was missed: a slot is due
//! only while `now` is inside its window. Note that modifying the policy changes the slot grid;
//! if the new grid has a slot between `last_scheduled` and `now`, it is due once (as a catch-up).

use super::backup_policy::BackupPolicy;
use crate::job::BackupKind;
use jiff::{SignedDuration, Timestamp};
use std::fmt;
use std::str::FromStr;

/// How long after its start a slot's window stays open.
pub const SLOT_WINDOW: SignedDuration = SignedDuration::from_hours(1);

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// Slot hours of one scheduled day, ascending.
fn slot_hours(policy: &BackupPolicy) -> Vec<i64> {
    let n = i64::from(policy.frequency.per_day());
    let start = i64::from(policy.window.start_hour());
    let mut hours: Vec<i64> = (0..n).map(|k| (start + k * (24 / n)) % 24).collect();
    hours.sort_unstable();
    hours
}

/// Whether day number `day` (days since 1970-01-01, UTC) is a backup day.
fn is_backup_day(policy: &BackupPolicy, day: i64) -> bool {
    if policy.frequency.is_high() || policy.period.count() == 0 {
        return true;
    }
    // 1970-01-01 was a Thursday: offset 3 from Monday.
    let offset = (day + 3).rem_euclid(7) as i8;
    policy.period.contains_offset(offset)
}

/// Slots of day `day`, ascending, as Timestamps (slots outside jiff's range are dropped).
fn day_slots<'a>(
    policy: &'a BackupPolicy,
    day: i64,
    hours: &'a [i64],
) -> impl DoubleEndedIterator<Item = Timestamp> + 'a {
    let on = is_backup_day(policy, day);
    hours
        .iter()
        .filter(move |_| on)
        .filter_map(move |h| Timestamp::from_second(day * DAY + h * HOUR).ok())
}

fn day_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(DAY)
}

/// The slots `s` with `from < s <= to`, ascending. Empty when `to <= from`. The work is
/// proportional to the number of days in the range.
pub fn slots_between(policy: &BackupPolicy, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
    if to <= from {
        return Vec::new();
    }
    let hours = slot_hours(policy);
    (day_of(from)..=day_of(to))
        .flat_map(|d| day_slots(policy, d, &hours).collect::<Vec<_>>())
        .filter(|s| *s > from && *s <= to)
        .collect()
}

/// The first slot strictly after `t` (`PreferredNextBackupTime`). A slot always exists within
/// eight days; at the very end of jiff's range this saturates to `Timestamp::MAX`.
pub fn next_slot_after(policy: &BackupPolicy, t: Timestamp) -> Timestamp {
    let hours = slot_hours(policy);
    let first = day_of(t);
    (first..=first + 8)
        .flat_map(|d| day_slots(policy, d, &hours).collect::<Vec<_>>())
        .find(|s| *s > t)
        .unwrap_or(Timestamp::MAX)
}

/// The latest slot at or before `t`; `None` only at the very start of jiff's range.
pub fn last_slot_at_or_before(policy: &BackupPolicy, t: Timestamp) -> Option<Timestamp> {
    let hours = slot_hours(policy);
    let last = day_of(t);
    (last - 8..=last)
        .rev()
        .flat_map(|d| day_slots(policy, d, &hours).rev().collect::<Vec<_>>())
        .find(|s| *s <= t)
}

/// The end of a slot's window: `slot + 1 h`.
pub fn window_end(slot: Timestamp) -> Timestamp {
    slot.checked_add(SLOT_WINDOW).unwrap_or(Timestamp::MAX)
}

/// Whether creating the job for `slot` at `now` is a catch-up (its window has closed).
pub fn is_catch_up(slot: Timestamp, now: Timestamp) -> bool {
    now >= window_end(slot)
}

/// The slot a job should be created for now, if any (see the module docs):
///
/// * `Some(last)`: the latest slot in `(last, now]`, even if its window has closed (one catch-up
///   after downtime, never more). Calling again with `last_scheduled` = the returned slot yields
///   `None` until the next slot starts. A `last` in the future (clock stepped back) yields `None`.
/// * `None` (never scheduled): the latest slot at or before `now` only while `now` is inside its
///   window (`slot <= now < slot + 1 h`).
pub fn due_slot(
    policy: &BackupPolicy,
    last_scheduled: Option<Timestamp>,
    now: Timestamp,
) -> Option<Timestamp> {
    let slot = last_slot_at_or_before(policy, now)?;
    match last_scheduled {
        Some(last) => (slot > last).then_some(slot),
        None => (now < window_end(slot)).then_some(slot),
    }
}

/// Renders an instant as `PreferredNextBackupTime` does: `YYYY-MM-DDThh:mmZ` (UTC, minutes).
pub fn format_next_backup_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%MZ").to_string()
}

/// `PreferredNextBackupTime` for DescribeBackupPolicy at `now`: the first slot after `now`.
pub fn preferred_next_backup_time(policy: &BackupPolicy, now: Timestamp) -> String {
    format_next_backup_time(next_slot_after(policy, now))
}

/// How often an automated backup is a full one (a cluster's setting, or the server's default
/// for clusters that have none): the first slot of each ISO week (`week`, the default; the
/// other slots take incremental backups on the newest usable set), or every slot (`always`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FullBackupEvery {
    #[default]
    Week,
    Always,
}

impl FullBackupEvery {
    pub const ALL: [FullBackupEvery; 2] = [Self::Week, Self::Always];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Week => "week",
            Self::Always => "always",
        }
    }
}

impl fmt::Display for FullBackupEvery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FullBackupEvery {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|e| e.as_str() == s).ok_or(())
    }
}

/// The ISO week (Monday 00:00 UTC to the next Monday) of `t`, as a count of weeks since the
/// one holding 1970-01-01 (a Thursday).
fn iso_week(t: Timestamp) -> i64 {
    (day_of(t) + 3).div_euclid(7)
}

/// The kind of the automated job for `slot`, given the slot scheduled before it (`None`: never
/// scheduled). With [`FullBackupEvery::Week`] a slot is full when it is the first of its ISO
/// week (UTC), i.e. the previous slot lies in an earlier week (or there is none, or it lies
/// after `slot`: a clock stepped back), and incremental otherwise; with
/// [`FullBackupEvery::Always`] every slot is full.
pub fn kind_for_slot(
    setting: FullBackupEvery,
    slot: Timestamp,
    previous_slot: Option<Timestamp>,
) -> BackupKind {
    match (setting, previous_slot) {
        (FullBackupEvery::Always, _) | (_, None) => BackupKind::Full,
        (FullBackupEvery::Week, Some(prev)) if prev <= slot && iso_week(prev) == iso_week(slot) => {
            BackupKind::Incremental
        }
        (FullBackupEvery::Week, Some(_)) => BackupKind::Full,
    }
}
