//! Quiet hours: the hours of a person's local day in which some categories of message may go
//! (by default marketing only is held; utility and authentication are not, unless the
//! operator says so). A send outside them is deferred to the next allowed minute, never
//! refused: a queued send goes when the person's morning comes.

use crate::clock::Timestamp;
use crate::template::model::Category;

/// Allowed local hours, `[from, to)` in minutes after midnight (`to` below `from`: across
/// midnight), for the categories in `held` (a bit per `Category as u8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub allowed_from_minute: u16,
    pub allowed_to_minute: u16,
    pub held: u8,
}

const MINUTES_PER_DAY: i64 = 1_440;

impl QuietHours {
    /// Marketing allowed from `from` to `to` (minutes after local midnight).
    pub fn for_marketing(from: u16, to: u16) -> QuietHours {
        QuietHours {
            allowed_from_minute: from,
            allowed_to_minute: to,
            held: 1 << Category::Marketing as u8,
        }
    }

    pub fn holds(&self, category: Category) -> bool {
        self.held & (1 << category as u8) != 0
    }

    /// When a message of `category` at `now` to a person `offset_minutes` from UTC may go:
    /// `None` for now, otherwise the next allowed minute's start.
    pub fn hold_until(
        &self,
        category: Category,
        now: Timestamp,
        offset_minutes: i16,
    ) -> Option<Timestamp> {
        if !self.holds(category) || self.allowed_from_minute == self.allowed_to_minute {
            return None;
        }
        let local_secs = now.unix_secs() as i64 + i64::from(offset_minutes) * 60;
        let minute = local_secs.div_euclid(60).rem_euclid(MINUTES_PER_DAY);
        let (from, to) = (
            i64::from(self.allowed_from_minute),
            i64::from(self.allowed_to_minute),
        );
        let allowed = if from < to {
            (from..to).contains(&minute)
        } else {
            minute >= from || minute < to
        };
        if allowed {
            return None;
        }
        let wait_minutes = (from - minute).rem_euclid(MINUTES_PER_DAY);
        let start_of_minute = now.unix_secs() as i64 - local_secs.rem_euclid(60);
        let until = start_of_minute + wait_minutes * 60;
        Some(Timestamp::from_unix_secs(until as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIDNIGHT_UTC: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    #[test]
    fn marketing_waits_for_the_persons_morning_and_nothing_else_does() {
        let quiet = QuietHours::for_marketing(9 * 60, 21 * 60);
        let at = |secs: u64| Timestamp::from_unix_secs(secs);
        // 00:00 UTC is 05:30 in India: held until 09:00 there, 03:30 UTC.
        assert_eq!(
            quiet.hold_until(Category::Marketing, at(MIDNIGHT_UTC), 330),
            Some(at(MIDNIGHT_UTC + 3 * 3_600 + 1_800))
        );
        assert_eq!(
            quiet.hold_until(Category::Utility, at(MIDNIGHT_UTC), 330),
            None
        );
        // 15:00 UTC is 10:00 in New York: allowed.
        assert_eq!(
            quiet.hold_until(Category::Marketing, at(MIDNIGHT_UTC + 15 * 3_600), -300),
            None
        );
        // 21:00 local exactly is past the end: held until 09:00 the next day, to the second.
        assert_eq!(
            quiet.hold_until(Category::Marketing, at(MIDNIGHT_UTC + 21 * 3_600 + 7), 0),
            Some(at(MIDNIGHT_UTC + 33 * 3_600))
        );
        // Across midnight: allowed 22:00-02:00.
        let night = QuietHours::for_marketing(22 * 60, 2 * 60);
        assert_eq!(
            night.hold_until(Category::Marketing, at(MIDNIGHT_UTC + 3_600), 0),
            None
        );
        assert_eq!(
            night.hold_until(Category::Marketing, at(MIDNIGHT_UTC + 3 * 3_600), 0),
            Some(at(MIDNIGHT_UTC + 22 * 3_600))
        );
    }
}
