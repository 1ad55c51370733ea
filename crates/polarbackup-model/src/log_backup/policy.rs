//! The log-backup policy: how long archived WAL is kept (`LogBackupRetentionPeriod`).

use jiff::{SignedDuration, Timestamp};
use thiserror::Error;

/// `LogBackupRetentionPeriod`: 3 to 7300 days, or `-1` to keep logs as long as the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRetention {
    Days(u16),
    Forever,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("LogBackupRetentionPeriod must be 3 to 7300 days, or -1")]
pub struct LogRetentionError;

impl LogRetention {
    pub const DEFAULT: Self = Self::Days(7);
    pub const MIN_DAYS: u16 = 3;
    pub const MAX_DAYS: u16 = 7300;

    /// The API's text form: digits only (no sign, space or leading zero), or `-1`.
    pub fn parse(s: &str) -> Result<Self, LogRetentionError> {
        if s == "-1" {
            return Ok(Self::Forever);
        }
        if s.is_empty()
            || s.len() > 4
            || s.starts_with('0')
            || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(LogRetentionError);
        }
        let days: u16 = s.parse().map_err(|_| LogRetentionError)?;
        Self::from_days(i64::from(days))
    }

    /// `-1` or a day count in range.
    pub fn from_days(days: i64) -> Result<Self, LogRetentionError> {
        match days {
            -1 => Ok(Self::Forever),
            d if (i64::from(Self::MIN_DAYS)..=i64::from(Self::MAX_DAYS)).contains(&d) => {
                Ok(Self::Days(d as u16))
            }
            _ => Err(LogRetentionError),
        }
    }

    /// The API's number: the days, or -1.
    pub fn as_days(self) -> i64 {
        match self {
            Self::Days(d) => i64::from(d),
            Self::Forever => -1,
        }
    }

    /// WAL written before this instant is no longer needed by the policy (`None`: all is).
    pub fn cutoff(self, now: Timestamp) -> Option<Timestamp> {
        match self {
            Self::Days(d) => now
                .checked_sub(SignedDuration::from_hours(24 * i64::from(d)))
                .ok(),
            Self::Forever => None,
        }
    }
}

/// A cluster's log-backup policy. Log backup itself is always on (`EnableBackupLog` = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBackupPolicy {
    pub retention: LogRetention,
}

impl Default for LogBackupPolicy {
    fn default() -> Self {
        Self {
            retention: LogRetention::DEFAULT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_domain() {
        assert_eq!(LogRetention::parse("-1"), Ok(LogRetention::Forever));
        assert_eq!(LogRetention::parse("3"), Ok(LogRetention::Days(3)));
        assert_eq!(LogRetention::parse("7300"), Ok(LogRetention::Days(7300)));
        for bad in [
            "", "2", "0", "7301", "07", "+7", " 7", "-2", "1e3", "99999", "７",
        ] {
            assert_eq!(LogRetention::parse(bad), Err(LogRetentionError), "{bad:?}");
        }
        assert_eq!(LogRetention::Forever.as_days(), -1);
        assert_eq!(LogRetention::Days(9).as_days(), 9);
    }

    #[test]
    fn cutoff_is_retention_days_before_now() {
        let now: Timestamp = "2026-12-10T00:00:00Z".parse().unwrap();
        assert_eq!(
            LogRetention::Days(3).cutoff(now),
            Some("2026-12-07T00:00:00Z".parse().unwrap())
        );
        assert_eq!(LogRetention::Forever.cutoff(now), None);
    }
}
