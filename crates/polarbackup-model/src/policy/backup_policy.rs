//! The level-1 backup policy and its value types, each printing and parsing the exact API strings.

use super::validate::{PolicyChange, PolicyFieldError};
use jiff::civil::Weekday;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use std::fmt;

/// English day names in API order (Monday first), as weekday lists spell them.
const DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `PreferredBackupPeriod` / `DataLevel1BackupPeriod`: the weekdays (UTC) on which a `Normal`
/// policy backs up. Always holds at least [`WeekdaySet::MIN_DAYS`] distinct days.
///
/// Prints as the API does: comma-separated English day names, Monday first, no spaces
/// (`Monday,Wednesday,Friday`). Serde uses the same string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct WeekdaySet(u8); // bit i = Monday + i days

impl WeekdaySet {
    /// All seven days.
    pub const ALL: WeekdaySet = WeekdaySet(0x7f);
    /// The API refuses lists naming fewer distinct days.
    pub const MIN_DAYS: usize = 2;

    /// The set of the given days (repeats collapse). `None` when fewer than two distinct days.
    pub fn from_days(days: impl IntoIterator<Item = Weekday>) -> Option<Self> {
        let bits = days
            .into_iter()
            .fold(0u8, |acc, d| acc | 1 << d.to_monday_zero_offset());
        let set = WeekdaySet(bits);
        (set.count() >= Self::MIN_DAYS).then_some(set)
    }

    /// Parses an API weekday list. Strict: case-sensitive English names, comma-separated, no
    /// spaces or empty items, no day named twice, at least two days. Any order is accepted.
    pub fn parse(s: &str) -> Option<Self> {
        let mut bits = 0u8;
        for name in s.split(',') {
            let i = DAY_NAMES.iter().position(|n| *n == name)?;
            if bits & (1 << i) != 0 {
                return None;
            }
            bits |= 1 << i;
        }
        let set = WeekdaySet(bits);
        (set.count() >= Self::MIN_DAYS).then_some(set)
    }

    pub fn contains(self, day: Weekday) -> bool {
        self.contains_offset(day.to_monday_zero_offset())
    }

    /// Whether the day `offset` days after Monday (0..=6) is in the set.
    pub(crate) fn contains_offset(self, offset: i8) -> bool {
        (0..7).contains(&offset) && self.0 & (1 << offset) != 0
    }

    /// Number of distinct days.
    pub fn count(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_all(self) -> bool {
        self == Self::ALL
    }

    /// The days, Monday first.
    pub fn days(self) -> impl Iterator<Item = Weekday> {
        (0i8..7)
            .filter(move |&i| self.contains_offset(i))
            .map(|i| Weekday::Monday.wrapping_add(i))
    }
}

impl fmt::Display for WeekdaySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for i in 0..7 {
            if self.contains_offset(i) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(DAY_NAMES[i as usize])?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for WeekdaySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WeekdaySet({self})")
    }
}

impl From<WeekdaySet> for String {
    fn from(s: WeekdaySet) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for WeekdaySet {
    type Error = PolicyFieldError;
    fn try_from(s: String) -> Result<Self, PolicyFieldError> {
        Self::parse(&s).ok_or(PolicyFieldError::Malformed {
            field: "PreferredBackupPeriod",
        })
    }
}

/// `PreferredBackupTime` / `DataLevel1BackupTime`: a one-hour UTC window starting on the hour,
/// `HH:00Z-HH+1:00Z`; `23:00Z-00:00Z` wraps past midnight. Serde uses the same string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct BackupWindow {
    start_hour: u8,
}

impl BackupWindow {
    /// The window starting at `hour`:00 UTC; `None` unless `hour` is 0..=23.
    pub fn starting_at(hour: u8) -> Option<Self> {
        (hour < 24).then_some(Self { start_hour: hour })
    }

    /// Parses `HH:00Z-HH:00Z`: two-digit hours, minutes `00`, upper-case `Z`, the end exactly
    /// one hour after the start (modulo 24). Anything else (`14:30Z-15:30Z`, `14:00Z-16:00Z`,
    /// `14:00-15:00`, `4:00Z-5:00Z`) is refused.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 13 || &b[2..6] != b":00Z" || b[6] != b'-' || &b[9..13] != b":00Z" {
            return None;
        }
        let hour = |d: &[u8]| -> Option<u8> {
            (d[0].is_ascii_digit() && d[1].is_ascii_digit())
                .then(|| (d[0] - b'0') * 10 + (d[1] - b'0'))
                .filter(|h| *h < 24)
        };
        let (start, end) = (hour(&b[0..2])?, hour(&b[7..9])?);
        (end == (start + 1) % 24).then_some(Self { start_hour: start })
    }

    /// Hour of day (UTC) the window opens.
    pub fn start_hour(self) -> u8 {
        self.start_hour
    }
}

impl fmt::Display for BackupWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e) = (self.start_hour, (self.start_hour + 1) % 24);
        write!(f, "{s:02}:00Z-{e:02}:00Z")
    }
}

impl fmt::Debug for BackupWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupWindow({self})")
    }
}

impl From<BackupWindow> for String {
    fn from(w: BackupWindow) -> String {
        w.to_string()
    }
}

impl TryFrom<String> for BackupWindow {
    type Error = PolicyFieldError;
    fn try_from(s: String) -> Result<Self, PolicyFieldError> {
        Self::parse(&s).ok_or(PolicyFieldError::Malformed {
            field: "PreferredBackupTime",
        })
    }
}

/// `BackupFrequency` / `DataLevel1BackupFrequency`. Case-sensitive API strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BackupFrequency {
    /// Once a day at the window start, on the chosen weekdays.
    Normal,
    /// Every 12 hours, every day.
    #[serde(rename = "2/24H")]
    TwoPer24H,
    /// Every 8 hours, every day.
    #[serde(rename = "3/24H")]
    ThreePer24H,
    /// Every 6 hours, every day.
    #[serde(rename = "4/24H")]
    FourPer24H,
}

impl BackupFrequency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::TwoPer24H => "2/24H",
            Self::ThreePer24H => "3/24H",
            Self::FourPer24H => "4/24H",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Normal" => Some(Self::Normal),
            "2/24H" => Some(Self::TwoPer24H),
            "3/24H" => Some(Self::ThreePer24H),
            "4/24H" => Some(Self::FourPer24H),
            _ => None,
        }
    }

    /// Scheduled backups per scheduled day: 1, 2, 3 or 4.
    pub fn per_day(self) -> u8 {
        match self {
            Self::Normal => 1,
            Self::TwoPer24H => 2,
            Self::ThreePer24H => 3,
            Self::FourPer24H => 4,
        }
    }

    /// High-frequency ("enhanced") backup: more than once a day, on every day of the week.
    pub fn is_high(self) -> bool {
        self != Self::Normal
    }
}

/// `DataLevel1BackupRetentionPeriod`: how long automated level-1 sets are kept, 3–14 days.
/// Serde uses the bare number and refuses values out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub struct RetentionDays(u8);

impl RetentionDays {
    pub const MIN: u8 = 3;
    pub const MAX: u8 = 14;

    pub fn new(days: u8) -> Option<Self> {
        (Self::MIN..=Self::MAX)
            .contains(&days)
            .then_some(Self(days))
    }

    /// Parses the API string: ASCII digits only (no sign, spaces or decimals), 3..=14.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().and_then(Self::new)
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// The period as a duration of `days × 24 h` (UTC has no DST).
    pub fn duration(self) -> SignedDuration {
        SignedDuration::from_hours(i64::from(self.0) * 24)
    }
}

impl fmt::Display for RetentionDays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<RetentionDays> for u8 {
    fn from(d: RetentionDays) -> u8 {
        d.0
    }
}

impl TryFrom<u8> for RetentionDays {
    type Error = PolicyFieldError;
    fn try_from(d: u8) -> Result<Self, PolicyFieldError> {
        Self::new(d).ok_or(PolicyFieldError::Malformed {
            field: "DataLevel1BackupRetentionPeriod",
        })
    }
}

/// `BackupRetentionPolicyOnClusterDeletion`: what happens to a cluster's backup sets when the
/// cluster is deleted. Case-sensitive API strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RetentionOnClusterDeletion {
    /// `ALL`: keep every set, detached, no longer expiring.
    #[serde(rename = "ALL")]
    All,
    /// `LATEST`: take a final `TempBackupTask` backup, keep only it.
    #[serde(rename = "LATEST")]
    Latest,
    /// `NONE`: delete every set with the cluster (the API's default).
    #[serde(rename = "NONE")]
    None,
}

impl RetentionOnClusterDeletion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "ALL",
            Self::Latest => "LATEST",
            Self::None => "NONE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ALL" => Some(Self::All),
            "LATEST" => Some(Self::Latest),
            "NONE" => Some(Self::None),
            _ => None,
        }
    }
}

/// The automated-backup policy of one cluster (level 1; level-2, cross-region and advanced
/// policies are not built, see [`PolicyFieldError::Unsupported`]).
///
/// The legacy `Preferred*`/`BackupFrequency` fields and the `DataLevel1*` fields of the API are
/// two views of this one schedule: both render from the same field.
///
/// Invariant kept by [`BackupPolicy::apply`]: a high [`BackupFrequency`] implies `period` is all
/// seven days. The schedule functions back up every day under a high frequency regardless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPolicy {
    /// `PreferredBackupPeriod` = `DataLevel1BackupPeriod`.
    pub period: WeekdaySet,
    /// `PreferredBackupTime` = `DataLevel1BackupTime`.
    pub window: BackupWindow,
    /// `BackupFrequency` = `DataLevel1BackupFrequency`.
    pub frequency: BackupFrequency,
    /// `DataLevel1BackupRetentionPeriod`.
    pub retention_days: RetentionDays,
    /// `BackupRetentionPolicyOnClusterDeletion`.
    pub on_cluster_deletion: RetentionOnClusterDeletion,
}

impl BackupPolicy {
    /// Hour (UTC) the default window opens: `02:00Z-03:00Z`.
    pub const DEFAULT_WINDOW_START_HOUR: u8 = 2;
    /// Default level-1 retention, in days.
    pub const DEFAULT_RETENTION_DAYS: u8 = 7;

    /// Applies a validated partial update: only the fields the request carried change. If the
    /// resulting frequency is high (`2/24H`, `3/24H`, `4/24H`) the period becomes all seven days,
    /// whatever the request said about the period (the API documents this forcing). Going back to
    /// `Normal` keeps seven days unless the same or a later request sets a period.
    pub fn apply(&mut self, change: PolicyChange) {
        if let Some(p) = change.period {
            self.period = p;
        }
        if let Some(w) = change.window {
            self.window = w;
        }
        if let Some(f) = change.frequency {
            self.frequency = f;
        }
        if let Some(r) = change.retention_days {
            self.retention_days = r;
        }
        if let Some(d) = change.on_cluster_deletion {
            self.on_cluster_deletion = d;
        }
        if self.frequency.is_high() {
            self.period = WeekdaySet::ALL;
        }
    }

    /// The classic string fields of DescribeBackupPolicy, in the documented order, with the
    /// values this service reports for the features it does not build: level-2 and cross-region
    /// retention `"0"` (off), their period and region `""`, `BackupPolicyLevel` `Normal`.
    /// `PreferredNextBackupTime` comes from [`super::preferred_next_backup_time`]; the boolean
    /// immutability flags and `AdvancedPolicyOption` are the API layer's.
    pub fn describe_fields(&self) -> Vec<(&'static str, String)> {
        let period = self.period.to_string();
        let window = self.window.to_string();
        let freq = self.frequency.as_str().to_owned();
        vec![
            ("PreferredBackupPeriod", period.clone()),
            ("PreferredBackupTime", window.clone()),
            ("BackupFrequency", freq.clone()),
            ("DataLevel1BackupFrequency", freq),
            ("DataLevel1BackupPeriod", period),
            ("DataLevel1BackupTime", window),
            (
                "DataLevel1BackupRetentionPeriod",
                self.retention_days.to_string(),
            ),
            ("DataLevel2BackupPeriod", String::new()),
            ("DataLevel2BackupRetentionPeriod", "0".to_owned()),
            ("DataLevel2BackupAnotherRegionRegion", String::new()),
            (
                "DataLevel2BackupAnotherRegionRetentionPeriod",
                "0".to_owned(),
            ),
            (
                "BackupRetentionPolicyOnClusterDeletion",
                self.on_cluster_deletion.as_str().to_owned(),
            ),
            ("BackupPolicyLevel", "Normal".to_owned()),
        ]
    }
}

/// The policy of a new cluster:
///
/// * retention 7 days (the API's documented default);
/// * `Normal` frequency: one backup a day;
/// * window `02:00Z-03:00Z`: a fixed, predictable night hour in UTC (the service is self-hosted
///   anywhere, so no local time is better than another; change it per cluster with
///   ModifyBackupPolicy);
/// * all seven weekdays: with a 7-day retention a daily backup keeps a restore point for each of
///   the last seven days, and it matches the API's own example; no subset is obviously right for
///   every workload, and fewer days only lengthen the WAL replay to reach a point in time;
/// * deletion policy `NONE` (the API's documented default).
impl Default for BackupPolicy {
    fn default() -> Self {
        Self {
            period: WeekdaySet::ALL,
            window: BackupWindow {
                start_hour: Self::DEFAULT_WINDOW_START_HOUR,
            },
            frequency: BackupFrequency::Normal,
            retention_days: RetentionDays(Self::DEFAULT_RETENTION_DAYS),
            on_cluster_deletion: RetentionOnClusterDeletion::None,
        }
    }
}
