//! Injectable time source, so tests can move time without sleeping; and the one clock a
//! running server may be told to move (`OffsetClock`, only under `serve --test-controls`).

use jiff::{SignedDuration, Timestamp};
use std::sync::Mutex;

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start))
    }

    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }

    pub fn advance(&self, by: jiff::SignedDuration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t = t.checked_add(by).unwrap_or(*t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why an [`OffsetClock`] refused to move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    #[error("the clock only moves forward: give a positive duration")]
    NotForward,
    #[error("the clock's offset may be at most {max} s in all", max = OffsetClock::MAX_OFFSET.as_secs())]
    TooFar,
}

/// The wall clock plus an offset that only grows: what `serve --test-controls` runs its
/// schedules, retention, expiry and job times on, so a test can see tomorrow's backup now.
/// Never earlier than the wall clock, and never earlier than it read before (as far as the
/// wall clock itself does not step back).
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: Mutex<SignedDuration>,
}

impl OffsetClock {
    /// The most it may be ahead of the wall clock: 100 years, far past any retention.
    pub const MAX_OFFSET: SignedDuration = SignedDuration::from_hours(100 * 366 * 24);

    /// At the wall clock (offset zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// How far ahead of the wall clock it is.
    pub fn offset(&self) -> SignedDuration {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves it forward by `by` (positive); returns the new offset.
    pub fn advance(&self, by: SignedDuration) -> Result<SignedDuration, AdvanceError> {
        if !by.is_positive() {
            return Err(AdvanceError::NotForward);
        }
        let mut offset = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        let moved = offset
            .checked_add(by)
            .filter(|o| *o <= Self::MAX_OFFSET)
            .ok_or(AdvanceError::TooFar)?;
        *offset = moved;
        Ok(moved)
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        let wall = Timestamp::now();
        // Bounded by MAX_OFFSET, so this only fails at the end of time.
        wall.checked_add(self.offset()).unwrap_or(Timestamp::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_clock_starts_at_the_wall_clock_and_only_moves_forward() {
        let clock = OffsetClock::new();
        assert_eq!(clock.offset(), SignedDuration::ZERO);
        let before = SystemClock.now();
        let read = clock.now();
        assert!(read >= before && read.duration_since(before) < SignedDuration::from_secs(5));
        let day = SignedDuration::from_hours(25);
        assert_eq!(clock.advance(day), Ok(day));
        assert!(clock.now() >= before + day);
        assert_eq!(
            clock.advance(SignedDuration::ZERO),
            Err(AdvanceError::NotForward)
        );
        assert_eq!(
            clock.advance(-SignedDuration::from_secs(1)),
            Err(AdvanceError::NotForward)
        );
        assert_eq!(
            clock.advance(OffsetClock::MAX_OFFSET),
            Err(AdvanceError::TooFar)
        );
        assert_eq!(clock.offset(), day, "a refused advance changes nothing");
        assert_eq!(clock.advance(day), Ok(day + day));
    }
}
