//! Reading condition values as numbers, dates and booleans; the same rules apply to policy and context values.

use jiff::{civil::Date, tz::TimeZone, Timestamp};

/// A decimal number: optional sign, digits, optional `.digits`. Stricter
/// than `f64::from_str`, which would also take `inf`, `NaN` and `1e9`.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    s.parse().ok()
}

/// ISO 8601 as RAM examples write it: a timestamp with `Z` or an offset
/// (`2012-11-11T23:59:59Z`, `2024-01-01T08:00:00+08:00`), or a bare date
/// `YYYY-MM-DD` meaning midnight UTC. A date-time without an offset is
/// refused: it would depend on a time zone the policy does not state.
pub(crate) fn parse_date(s: &str) -> Option<Timestamp> {
    if s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' {
        let date: Date = s.parse().ok()?;
        return date.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
    }
    s.parse().ok()
}

/// `true`/`false`, ignoring ASCII case (policies also say `"TRUE"`).
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        assert_eq!(parse_number("+3"), Some(3.0));
        for bad in [
            "", "1.", ".5", "1e3", "inf", "NaN", "0x10", " 1", "1,5", "--1",
        ] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dates() {
        let z: Timestamp = "2012-11-11T23:59:59Z".parse().unwrap();
        assert_eq!(parse_date("2012-11-11T23:59:59Z"), Some(z));
        assert_eq!(parse_date("2012-11-12T07:59:59+08:00"), Some(z));
        assert_eq!(
            parse_date("2012-11-12"),
            Some("2012-11-12T00:00:00Z".parse().unwrap())
        );
        for bad in [
            "2012-11-11T23:59:59",
            "2012-13-01",
            "yesterday",
            "",
            "1700000000",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bools() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("1"), None);
        assert_eq!(parse_bool("yes"), None);
    }
}
