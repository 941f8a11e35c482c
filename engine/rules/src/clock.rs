//! Time for the compliance core: the [`Clock`] trait, the system clock and a manual clock.
//!
//! Every rule in wagate is about time (24-hour windows, 7-day upgrade periods, 6-second pair
//! pacing), so the core never reads the wall clock itself. It asks an injected [`Clock`]; tests
//! and simulations use [`ManualClock`] and jump days in microseconds of real time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

/// Seconds between the Unix epoch and wagate's compact epoch, 2020-01-01T00:00:00Z.
///
/// Per-contact times are stored as `u32` seconds since this epoch (good until 2156) so that a
/// contact record stays small; see [`Secs`].
pub const COMPACT_EPOCH_UNIX_SECS: u64 = 1_577_836_800;

pub const MICROS_PER_SEC: u64 = 1_000_000;
pub const SECS_PER_HOUR: u32 = 3_600;
pub const SECS_PER_DAY: u32 = 86_400;

/// Whole seconds since [`COMPACT_EPOCH_UNIX_SECS`]: the resolution of every window and expiry.
pub type Secs = u32;

impl Timestamp {
    pub fn from_unix_secs(secs: u64) -> Self {
        Timestamp(secs * MICROS_PER_SEC)
    }

    pub fn from_secs(secs: Secs) -> Self {
        Timestamp((u64::from(secs) + COMPACT_EPOCH_UNIX_SECS) * MICROS_PER_SEC)
    }

    pub fn unix_secs(self) -> u64 {
        self.0 / MICROS_PER_SEC
    }

    /// Compact seconds; instants before 2020 clamp to 0, which only old test fixtures reach.
    pub fn secs(self) -> Secs {
        let secs = self.unix_secs().saturating_sub(COMPACT_EPOCH_UNIX_SECS);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    pub fn plus_secs(self, secs: u64) -> Self {
        Timestamp(self.0 + secs * MICROS_PER_SEC)
    }

    /// The last instant wagate's compact seconds can hold (in 2156): a clock never passes it.
    pub const LATEST: Timestamp =
        Timestamp((u32::MAX as u64 - 1 + COMPACT_EPOCH_UNIX_SECS) * MICROS_PER_SEC);

    /// `unix_secs` as an instant, if it is within wagate's range.
    pub fn checked_from_unix_secs(unix_secs: u64) -> Option<Timestamp> {
        unix_secs
            .checked_mul(MICROS_PER_SEC)
            .map(Timestamp)
            .filter(|at| *at <= Timestamp::LATEST)
    }
}

impl std::fmt::Display for Timestamp {
    /// RFC 3339 in UTC, to the second.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.unix_secs();
        let (days, rest) = (secs / 86_400, secs % 86_400);
        // Howard Hinnant's civil-from-days.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rest / 3_600,
            rest / 60 % 60,
            rest % 60
        )
    }
}

/// Days since the Unix epoch of a date written `YYYY-MM-DD` (Howard Hinnant's
/// days-from-civil), or `None` if it is not one.
pub fn days_of_date(text: &str) -> Option<u64> {
    let mut parts = text.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

/// The calendar month (`year * 12 + month - 1`, UTC) of a time in Unix seconds.
pub fn month_of(unix_secs: u64) -> u32 {
    let z = (unix_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year * 12 + month - 1) as u32
}

/// A source of the current time. Implementations must never go backwards.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The operating system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since.as_micros() as u64)
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

/// Why the manual clock was not moved: time only goes forward (windows and counters assume it),
/// and stays within what a contact record's compact seconds can hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClockMoveRefused {
    #[error("the manual clock cannot go back from {current} to {requested}")]
    Backwards {
        current: Timestamp,
        requested: Timestamp,
    },
    #[error("the manual clock cannot go past {}", Timestamp::LATEST)]
    PastTheEnd,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(start.0)),
        }
    }

    /// A manual clock at 2026-01-01T00:00:00Z, a convenient start for tests.
    pub fn at_2026() -> Self {
        Self::new(Timestamp::from_unix_secs(1_767_225_600))
    }

    /// Moves the clock `secs` forward, refused (and left where it was) when that would pass
    /// [`Timestamp::LATEST`]; the arithmetic is checked, so no amount wraps it backwards.
    pub fn try_advance_secs(&self, secs: u64) -> Result<Timestamp, ClockMoveRefused> {
        let mut current = self.now.load(Ordering::SeqCst);
        loop {
            let to = secs
                .checked_mul(MICROS_PER_SEC)
                .and_then(|micros| current.checked_add(micros))
                .map(Timestamp)
                .filter(|to| *to <= Timestamp::LATEST)
                .ok_or(ClockMoveRefused::PastTheEnd)?;
            match self
                .now
                .compare_exchange(current, to.0, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(to),
                Err(seen) => current = seen,
            }
        }
    }

    pub fn advance_secs(&self, secs: u64) {
        self.advance_micros(secs * MICROS_PER_SEC);
    }

    pub fn advance_micros(&self, micros: u64) {
        self.now.fetch_add(micros, Ordering::SeqCst);
    }

    /// Moves the clock to `to`; refused when that is in the past, because windows and counters
    /// assume time is monotonic.
    pub fn set(&self, to: Timestamp) -> Result<(), ClockMoveRefused> {
        let mut current = self.now.load(Ordering::SeqCst);
        loop {
            if to.0 < current {
                return Err(ClockMoveRefused::Backwards {
                    current: Timestamp(current),
                    requested: to,
                });
            }
            if to > Timestamp::LATEST {
                return Err(ClockMoveRefused::PastTheEnd);
            }
            match self
                .now
                .compare_exchange(current, to.0, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_months_are_the_calendar_s() {
        assert_eq!(days_of_date("1970-01-01"), Some(0));
        assert_eq!(
            days_of_date("2026-10-01").map(|d| d * 86_400),
            Some(1_790_812_800)
        );
        assert_eq!(days_of_date("2024-02-29"), Some(19_782));
        assert_eq!(days_of_date("2026-13-01"), None);
        assert_eq!(days_of_date("2026-10"), None);
        assert_eq!(month_of(1_790_812_800), 2026 * 12 + 9);
        assert_eq!(month_of(1_790_812_799), 2026 * 12 + 8);
    }

    #[test]
    fn compact_seconds_round_trip() {
        let t = Timestamp::from_unix_secs(1_767_225_600);
        assert_eq!(Timestamp::from_secs(t.secs()), t);
        assert_eq!(Timestamp::from_unix_secs(1_000).secs(), 0);
        assert_eq!(t.to_string(), "2026-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::from_unix_secs(951_827_696).to_string(),
            "2000-02-29T12:34:56Z"
        );
    }

    #[test]
    fn manual_clock_moves_only_forward() {
        let clock = ManualClock::at_2026();
        let start = clock.now();
        clock.advance_secs(90);
        assert_eq!(clock.now(), start.plus_secs(90));
        let shared = clock.clone();
        shared.advance_secs(10);
        assert_eq!(clock.now(), start.plus_secs(100));
        assert!(clock.set(start).is_err());
        assert_eq!(clock.now(), start.plus_secs(100));
        clock.set(start.plus_secs(1_000)).unwrap();
        assert_eq!(clock.now(), start.plus_secs(1_000));
    }

    #[test]
    fn no_amount_moves_the_manual_clock_backwards_or_past_its_range() {
        let clock = ManualClock::at_2026();
        let start = clock.now();
        // u64::MAX seconds would wrap the microseconds (to the past, in a release build).
        for secs in [u64::MAX, u64::MAX / MICROS_PER_SEC, 5_000_000_000] {
            assert_eq!(
                clock.try_advance_secs(secs),
                Err(ClockMoveRefused::PastTheEnd)
            );
            assert_eq!(clock.now(), start, "unchanged");
        }
        assert_eq!(
            clock.set(Timestamp(Timestamp::LATEST.0 + 1)),
            Err(ClockMoveRefused::PastTheEnd)
        );
        assert_eq!(Timestamp::checked_from_unix_secs(u64::MAX), None);
        assert_eq!(clock.try_advance_secs(86_400), Ok(start.plus_secs(86_400)));
        let to_the_end = Timestamp::LATEST.unix_secs() - clock.now().unix_secs();
        assert_eq!(clock.try_advance_secs(to_the_end), Ok(Timestamp::LATEST));
        assert_eq!(
            Timestamp::LATEST.secs(),
            u32::MAX - 1,
            "still a compact second"
        );
    }
}
