//! The issuer's notion of "now": wall-clock time plus an offset that tests and the admin API can
//! move, so expiry, key-rotation grace and rate-limit windows are tested without sleeping.
//! Moving it back lets a test mint tokens that are already expired by the wall clock, which is
//! the clock a resource server (or Clerk's own SDK) checks a JWT's `exp` against.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// Milliseconds added to the wall clock; negative after a [`Clock::rewind`].
    offset_ms: AtomicI64,
}

impl Clock {
    /// Milliseconds since the Unix epoch (Clerk's Backend API timestamps are in milliseconds).
    pub(crate) fn now_ms(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        wall.saturating_add_signed(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Seconds since the Unix epoch (JWT `iat`/`exp`).
    pub(crate) fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    pub(crate) fn advance(&self, by: Duration) {
        self.shift(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
    }

    pub(crate) fn rewind(&self, by: Duration) {
        self.shift(i64::try_from(by.as_millis()).map_or(i64::MIN, |ms| -ms));
    }

    fn shift(&self, by_ms: i64) {
        // Saturating, so no request can make the offset wrap around.
        let _ = self
            .offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |offset| {
                Some(offset.saturating_add(by_ms))
            });
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_both_ways_and_never_wraps() {
        let clock = Clock::default();
        let start = clock.now_secs();
        clock.rewind(Duration::from_secs(3600));
        let rewound = clock.now_secs();
        assert!(
            rewound + 3600 >= start && rewound + 3590 <= start,
            "{start} {rewound}"
        );
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_secs() >= start);
        clock.rewind(Duration::MAX);
        assert_eq!(clock.now_ms(), 0, "saturates at the epoch");
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert!(clock.now_ms() > start * 1000, "saturates, never wraps");
    }
}
