//! The time that opens each log line, as `tracing_subscriber`'s default timer writes it
//! (`2026-12-04T20:45:39.123456Z`), the date and time of day formatted once per second.

use polarbackup_model::{Clock, SystemClock};
use std::cell::RefCell;
use std::fmt::{self, Write};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The server's log timer. Formatting the date on every line was a twentieth of the
/// access line's cost; each thread keeps the current second's text instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogTime;

impl FormatTime for LogTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = SystemClock.now();
        match u64::try_from(now.as_second()) {
            Ok(second) => write_time(w, second, now.subsec_microsecond().unsigned_abs()),
            // A clock before 1970: the default timer knows how to write that.
            Err(_) => tracing_subscriber::fmt::time::SystemTime.format_time(w),
        }
    }
}

thread_local! {
    /// The last second formatted on this thread, and its text up to the fraction.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `second` (since the epoch) and `micros` past it as RFC 3339 in UTC with microseconds.
fn write_time(w: &mut impl Write, second: u64, micros: u32) -> fmt::Result {
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let text = &mut cached.1;
            text.clear();
            let t = i64::try_from(second)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .ok_or(fmt::Error)?;
            let dt = jiff::tz::Offset::UTC.to_datetime(t);
            write!(
                text,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second()
            )?;
            cached.0 = second;
        }
        w.write_str(&cached.1)
    })?;
    let mut fraction = *b".000000Z";
    let mut micros = micros;
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    // Only ASCII digits were written.
    w.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written((second, micros): (u64, u32)) -> String {
        let mut out = String::new();
        write_time(&mut out, second, micros).expect("writes");
        out
    }

    #[test]
    fn writes_what_the_default_timer_writes() {
        // The default timer's format: four-digit year, microseconds, `Z`.
        let cases = [
            ((0, 0), "1970-01-01T00:00:00.000000Z"),
            ((1_796_428_799, 999_999), "2026-12-04T23:59:59.999999Z"),
            ((1_796_428_799, 0), "2026-12-04T23:59:59.000000Z"),
            ((1_796_428_800, 1), "2026-12-05T00:00:00.000001Z"),
            ((951_782_400, 123_456), "2000-02-29T00:00:00.123456Z"),
        ];
        // Twice over, each case twice in a row (the second from the cache), the order going
        // back in time as well as forward.
        for _ in 0..2 {
            for (at, text) in cases {
                assert_eq!(written(at), text);
                assert_eq!(written(at), text);
            }
        }
    }

    #[test]
    fn the_timer_writes_now() {
        let mut out = String::new();
        LogTime
            .format_time(&mut Writer::new(&mut out))
            .expect("writes");
        let t: jiff::Timestamp = out.parse().expect("RFC 3339");
        let skew = SystemClock.now().duration_since(t);
        assert!(skew.abs() < jiff::SignedDuration::from_secs(5), "{out}");
        assert_eq!(out.len(), "2026-12-04T20:45:39.123456Z".len(), "{out}");
    }
}
