//! Timestamp parsing (`YYYY-MM-DDThh:mm:ss[.fff]Z`) and the clock-skew window.

use jiff::{civil::DateTime, tz::Offset, SignedDuration, Timestamp};

use crate::AuthError;

/// How far a request's timestamp may be from the server clock, either way.
pub const MAX_CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(15);

/// Parses the strict UTC form the SDKs send. Fractional seconds (1–9 digits)
/// are tolerated; offsets other than `Z` and lower-case `t`/`z` are not.
pub(crate) fn parse(s: &str) -> Result<Timestamp, AuthError> {
    let b = s.as_bytes();
    let bad = || AuthError::TimestampFormat;
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return Err(bad());
    }
    let shape_ok = b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit));
    if !shape_ok {
        return Err(bad());
    }
    let frac = &b[19..b.len() - 1];
    let nanos = match frac {
        [] => 0,
        [b'.', digits @ ..]
            if (1..=9).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) =>
        {
            let mut n: i32 = 0;
            for i in 0..9 {
                n = n * 10 + digits.get(i).map_or(0, |d| i32::from(d - b'0'));
            }
            n
        }
        _ => return Err(bad()),
    };
    let num = |r: std::ops::Range<usize>| -> i32 {
        b[r].iter().fold(0, |acc, d| acc * 10 + i32::from(d - b'0'))
    };
    // Every field is at most 4 digits, so these narrowings cannot truncate.
    let dt = DateTime::new(
        num(0..4) as i16,
        num(5..7) as i8,
        num(8..10) as i8,
        num(11..13) as i8,
        num(14..16) as i8,
        num(17..19) as i8,
        nanos,
    )
    .map_err(|_| bad())?;
    Offset::UTC.to_timestamp(dt).map_err(|_| bad())
}

/// Refuses timestamps more than [`MAX_CLOCK_SKEW`] before or after `now`
/// (exactly the limit is still accepted).
pub(crate) fn check_skew(ts: Timestamp, now: Timestamp) -> Result<(), AuthError> {
    if now.duration_since(ts).abs() > MAX_CLOCK_SKEW {
        Err(AuthError::TimestampExpired)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_plain_and_fractional() {
        assert_eq!(
            parse("2026-11-28T16:57:18Z").unwrap(),
            ts("2026-11-28T16:57:18Z")
        );
        assert_eq!(
            parse("2026-11-28T16:57:18.5Z").unwrap(),
            ts("2026-11-28T16:57:18.5Z")
        );
        assert_eq!(
            parse("2026-11-28T16:57:18.123456789Z").unwrap(),
            ts("2026-11-28T16:57:18.123456789Z")
        );
    }

    #[test]
    fn rejects_other_shapes() {
        for s in [
            "",
            "2026-11-28",
            "2026-11-28T16:57:18",
            "2026-11-28T16:57:18z",
            "2026-11-28t16:57:18Z",
            "2026-11-28 16:57:18Z",
            "2026-11-28T16:57:18+00:00",
            "2026-11-28T16:57:18.Z",
            "2026-11-28T16:57:18.1234567890Z",
            "2026-13-28T16:57:18Z",
            "2026-02-30T16:57:18Z",
            "2026-11-28T24:00:00Z",
            "+026-11-28T16:57:18Z",
            "2026-11-28T16:57:1xZ",
            "Sat, 28 Nov 2026 16:57:18 GMT",
        ] {
            assert_eq!(parse(s), Err(AuthError::TimestampFormat), "{s:?}");
        }
    }

    #[test]
    fn skew_boundaries_both_directions() {
        let t = ts("2026-11-28T16:57:18Z");
        let m15 = SignedDuration::from_mins(15);
        let m15s1 = m15 + SignedDuration::from_secs(1);
        assert_eq!(check_skew(t, t), Ok(()));
        assert_eq!(check_skew(t, t + m15), Ok(()));
        assert_eq!(check_skew(t, t - m15), Ok(()));
        assert_eq!(check_skew(t, t + m15s1), Err(AuthError::TimestampExpired));
        assert_eq!(check_skew(t, t - m15s1), Err(AuthError::TimestampExpired));
        let one_ns = SignedDuration::from_nanos(1);
        assert_eq!(
            check_skew(t, t + m15 + one_ns),
            Err(AuthError::TimestampExpired)
        );
    }
}
