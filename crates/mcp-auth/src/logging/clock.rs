//! The lines' timestamp: the layout of `tracing-subscriber`'s default timer
//! (`2026-11-30T11:06:21.123456Z`, RFC 3339 in UTC with microseconds), without its cost.
//!
//! The default timer works out the civil date and writes seven numbers through `core::fmt` for
//! every line: about 2,400 instructions of an access line's 11,000 (callgrind, `BENCHMARKS.md`).
//! Here each thread keeps the text of the current second and writes only the microseconds.

use std::{
    cell::Cell,
    fmt,
    time::{SystemTime, UNIX_EPOCH},
};

use tracing_subscriber::fmt::{format::Writer, time::FormatTime};

/// UTC time to the microsecond, as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UtcMicros;

/// `YYYY-MM-DDTHH:MM:SS.`
const SECOND_LEN: usize = 20;

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(crate) const TEXT_LEN: usize = SECOND_LEN + 7;

impl FormatTime for UtcMicros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let text = UtcMicros::now();
        // Only ASCII digits and separators were written.
        w.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl UtcMicros {
    /// The current time as the lines show it, for a line written without `tracing` (the log
    /// thread's notice of dropped lines).
    #[inline]
    pub(crate) fn now() -> [u8; TEXT_LEN] {
        thread_local! {
            /// The second last written on this thread and its text.
            static SECOND: Cell<(u64, [u8; SECOND_LEN])> = const { Cell::new((u64::MAX, [0; SECOND_LEN])) };
        }
        // A clock set before 1970 reads as 1970: a log line is no place to fail.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs();
        let mut text = [0u8; TEXT_LEN];
        let (cached, second) = SECOND.get();
        let second = if cached == secs {
            second
        } else {
            let second = second_text(secs);
            SECOND.set((secs, second));
            second
        };
        text[..SECOND_LEN].copy_from_slice(&second);
        put_digits(&mut text[SECOND_LEN..SECOND_LEN + 6], now.subsec_micros());
        text[SECOND_LEN + 6] = b'Z';
        text
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` for seconds since the Unix epoch (years past 9999 are written mod
/// 10,000; a log line's clock will not get there).
fn second_text(secs: u64) -> [u8; SECOND_LEN] {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let mut text = *b"0000-00-00T00:00:00.";
    put_digits(&mut text[0..4], (year % 10_000) as u32);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], (of_day / 3600) as u32);
    put_digits(&mut text[14..16], (of_day / 60 % 60) as u32);
    put_digits(&mut text[17..19], (of_day % 60) as u32);
    text
}

/// Writes `n` right-aligned in decimal, zero-padded to the slice's length.
fn put_digits(out: &mut [u8], mut n: u32) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01: Howard Hinnant's
/// `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>),
/// for days on or after the epoch.
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_written_as_utc_dates() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00."),
            (59, "1970-01-01T00:00:59."),
            (86_399, "1970-01-01T23:59:59."),
            (951_782_400, "2000-02-29T00:00:00."),
            (951_868_800, "2000-03-01T00:00:00."),
            (1_709_164_800, "2024-02-29T00:00:00."),
            (1_798_370_781, "2026-12-27T11:26:21."),
            (4_102_444_799, "2099-12-31T23:59:59."),
            (4_107_456_000, "2100-02-28T00:00:00."),
            (4_107_542_400, "2100-03-01T00:00:00."),
            (253_402_300_799, "9999-12-31T23:59:59."),
        ] {
            assert_eq!(
                std::str::from_utf8(&second_text(secs)).unwrap(),
                text,
                "{secs}"
            );
        }
    }

    /// Every day of four centuries (leap years, century years, 2000) against a day-by-day
    /// count, so no month boundary is off by one.
    #[test]
    fn every_day_follows_the_one_before() {
        let (mut year, mut month, mut day) = (1970u64, 1u32, 1u32);
        for days in 0..146_097 * 2 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let month_len = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > month_len {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    /// The same text as `tracing-subscriber`'s default timer, read at the same moment (a
    /// second that ticks over between the two readings is read again).
    #[test]
    fn matches_the_default_timer() {
        let format = |timer: &dyn FormatTime| {
            let mut s = String::new();
            timer.format_time(&mut Writer::new(&mut s)).unwrap();
            s
        };
        for _ in 0..10 {
            let ours = format(&UtcMicros);
            let theirs = format(&tracing_subscriber::fmt::time::SystemTime);
            assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
            assert!(ours.ends_with('Z'));
            if ours[..19] == theirs[..19] {
                return;
            }
        }
        panic!("the two timers never agreed on the second");
    }
}
