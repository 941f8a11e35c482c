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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the manual clock cannot go back from {current:?} to {requested:?}")]
pub struct ClockWentBackwards {
    pub current: Timestamp,
    pub requested: Timestamp,
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

    pub fn advance_secs(&self, secs: u64) {
        self.advance_micros(secs * MICROS_PER_SEC);
    }

    pub fn advance_micros(&self, micros: u64) {
        self.now.fetch_add(micros, Ordering::SeqCst);
    }

    /// Moves the clock to `to`; refused when that is in the past, because windows and counters
    /// assume time is monotonic.
    pub fn set(&self, to: Timestamp) -> Result<(), ClockWentBackwards> {
        let mut current = self.now.load(Ordering::SeqCst);
        loop {
            if to.0 < current {
                return Err(ClockWentBackwards {
                    current: Timestamp(current),
                    requested: to,
                });
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
}
