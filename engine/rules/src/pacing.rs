//! Pacing: when a message may go, rather than whether.
//!
//! * Per-number throughput: a lock-free scheduler (GCRA with a burst of one) that hands each
//!   accepted message its own send slot, `1/mps` apart, so no second ever holds more than the
//!   number's messages per second.
//! * Per (number, person) pair rate: GCRA over the contact record, one message per interval with
//!   a burst allowance that is "borrowed" and paid back by silence, as Meta describes it.
//! * Per-person marketing cap: at most `cap` marketing templates in any 24 h.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::{Secs, Timestamp, MICROS_PER_SEC, SECS_PER_DAY};
use crate::state::contact::ContactRecord;

/// Send slots for one business number.
#[derive(Debug)]
pub struct ThroughputScheduler {
    /// The next free slot, in microseconds since the Unix epoch.
    next_slot: AtomicU64,
    /// The turn after the last one handed to a queued send (see [`Self::queue_turn`]).
    queue_tail: AtomicU64,
    interval_micros: AtomicU64,
}

impl ThroughputScheduler {
    pub fn new(messages_per_second: u32) -> Self {
        ThroughputScheduler {
            next_slot: AtomicU64::new(0),
            queue_tail: AtomicU64::new(0),
            interval_micros: AtomicU64::new(interval_of(messages_per_second)),
        }
    }

    pub fn set_rate(&self, messages_per_second: u32) {
        self.interval_micros
            .store(interval_of(messages_per_second), Ordering::Relaxed);
    }

    pub fn messages_per_second(&self) -> u32 {
        (MICROS_PER_SEC / self.interval_micros.load(Ordering::Relaxed).max(1)) as u32
    }

    /// Reserves the next slot at or after `now`, unless it is more than `horizon` away; then
    /// nothing is reserved and the error says when to ask again.
    #[inline]
    pub fn reserve(&self, now: Timestamp, horizon_micros: u64) -> Result<Timestamp, Timestamp> {
        let interval = self.interval_micros.load(Ordering::Relaxed);
        let mut current = self.next_slot.load(Ordering::Relaxed);
        loop {
            let slot = current.max(now.0);
            if slot - now.0 > horizon_micros {
                return Err(Timestamp(slot - horizon_micros));
            }
            match self.next_slot.compare_exchange_weak(
                current,
                slot + interval,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Timestamp(slot)),
                Err(seen) => current = seen,
            }
        }
    }

    /// For a send found no slot within the horizon and queued: when to decide it again. Each
    /// queued send gets its own turn, one interval after the slots and turns handed out before
    /// it, and comes due a horizon before its turn; so queued sends come due at the number's
    /// rate, in order, instead of all at the moment the first slot frees (and all but one
    /// being queued again). Nothing is reserved: the send takes a real slot when decided again.
    pub fn queue_turn(&self, now: Timestamp, horizon_micros: u64) -> Timestamp {
        let interval = self.interval_micros.load(Ordering::Relaxed);
        let first_free = self.next_slot.load(Ordering::Relaxed).max(now.0);
        let mut turn = 0;
        let _ = self
            .queue_tail
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |tail| {
                turn = tail.max(first_free);
                Some(turn + interval)
            });
        Timestamp(turn.saturating_sub(horizon_micros).max(now.0))
    }

    /// Makes sure no slot is handed out before `slot` ends (slots booked before a restart).
    pub fn book_past(&self, slot: Timestamp) {
        let interval = self.interval_micros.load(Ordering::Relaxed);
        self.next_slot
            .fetch_max(slot.0 + interval, Ordering::AcqRel);
    }

    /// Gives a slot back if nothing was reserved after it (a later check refused the message).
    pub fn release(&self, slot: Timestamp) {
        let interval = self.interval_micros.load(Ordering::Relaxed);
        let _ = self.next_slot.compare_exchange(
            slot.0 + interval,
            slot.0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

fn interval_of(messages_per_second: u32) -> u64 {
    MICROS_PER_SEC / u64::from(messages_per_second.max(1))
}

/// Pair-rate rule: one message per `interval` seconds with `burst` allowed back to back.
#[derive(Debug, Clone, Copy)]
pub struct PairRate {
    pub interval: Secs,
    pub burst: u32,
}

impl PairRate {
    /// `Ok` if a message may go now, else the second from which it may.
    #[inline]
    pub fn check(&self, record: &ContactRecord, now: Secs) -> Result<(), Secs> {
        let tolerance = self.interval * (self.burst - 1);
        if record.pair_tat <= now.saturating_add(tolerance) {
            Ok(())
        } else {
            Err(record.pair_tat - tolerance)
        }
    }

    #[inline]
    pub fn record(&self, record: &mut ContactRecord, now: Secs) {
        record.pair_tat = record.pair_tat.max(now) + self.interval;
    }
}

/// Per-person marketing cap over any rolling 24 h; `cap` is 0 (off), 1 or 2.
#[derive(Debug, Clone, Copy)]
pub struct MarketingCap {
    pub cap: u8,
}

impl MarketingCap {
    pub const MAX: u8 = 2;

    #[inline]
    pub fn check(&self, record: &ContactRecord, now: Secs) -> Result<(), Secs> {
        if self.cap == 0 {
            return Ok(());
        }
        let oldest_counted = record.marketing_sends[usize::from(self.cap) - 1];
        if oldest_counted == 0 || oldest_counted + SECS_PER_DAY <= now {
            Ok(())
        } else {
            Err(oldest_counted + SECS_PER_DAY)
        }
    }

    #[inline]
    pub fn record(&self, record: &mut ContactRecord, now: Secs) {
        record.marketing_sends = [now, record.marketing_sends[0]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_slots_are_spaced_and_bounded_by_the_horizon() {
        let scheduler = ThroughputScheduler::new(80);
        let now = Timestamp(1_000_000_000);
        let slots: Vec<_> = (0..80)
            .map(|_| scheduler.reserve(now, 2_000_000).unwrap())
            .collect();
        assert_eq!(slots[0], now);
        assert_eq!(slots[1].0 - slots[0].0, 12_500);
        // Eighty slots fill exactly one second: the 81st starts the next second.
        assert_eq!(slots[79].0 - now.0, 79 * 12_500);
        assert_eq!(
            scheduler.reserve(now, 2_000_000).unwrap().0 - now.0,
            1_000_000
        );
        // With a 10 ms horizon the next slot (1.0125 s away) is refused, nothing reserved.
        let refused = scheduler.reserve(now, 10_000).unwrap_err();
        assert_eq!(refused.0, now.0 + 1_012_500 - 10_000);
        assert_eq!(
            scheduler.reserve(now, 2_000_000).unwrap().0 - now.0,
            1_012_500
        );
    }

    #[test]
    fn queued_sends_come_due_one_interval_apart_and_find_a_slot_when_they_do() {
        let scheduler = ThroughputScheduler::new(100);
        let (now, horizon) = (Timestamp(5_000_000), 1_000_000);
        // The horizon is full: 100 slots, one second ahead.
        while scheduler.reserve(now, horizon).is_ok() {}
        let turns: Vec<Timestamp> = (0..300)
            .map(|_| scheduler.queue_turn(now, horizon))
            .collect();
        assert_eq!(turns[0], Timestamp(now.0 + 1_000_000 + 10_000 - horizon));
        assert!(turns.windows(2).all(|w| w[1].0 - w[0].0 == 10_000));
        // Decided again in turn, each finds its slot within the horizon.
        for turn in turns {
            assert!(scheduler.reserve(turn, horizon).is_ok(), "at {turn:?}");
        }
    }

    #[test]
    fn released_slot_is_reused_only_when_last() {
        let scheduler = ThroughputScheduler::new(100);
        let now = Timestamp(5_000_000);
        let first = scheduler.reserve(now, 1_000_000).unwrap();
        scheduler.release(first);
        assert_eq!(scheduler.reserve(now, 1_000_000).unwrap(), first);
        let second = scheduler.reserve(now, 1_000_000).unwrap();
        scheduler.release(first); // not the last one: ignored
        assert_eq!(
            scheduler.reserve(now, 1_000_000).unwrap().0,
            second.0 + 10_000
        );
    }

    #[test]
    fn pair_rate_allows_the_burst_then_one_per_interval() {
        let rule = PairRate {
            interval: 6,
            burst: 45,
        };
        let mut record = ContactRecord::default();
        let now = 1_000;
        for _ in 0..45 {
            rule.check(&record, now).unwrap();
            rule.record(&mut record, now);
        }
        assert_eq!(rule.check(&record, now), Err(now + 6));
        assert!(rule.check(&record, now + 6).is_ok());
        // Silence pays the burst back: 45 intervals later the full burst is available again.
        let later = now + 45 * 6;
        for _ in 0..45 {
            rule.check(&record, later).unwrap();
            rule.record(&mut record, later);
        }
        assert!(rule.check(&record, later).is_err());
    }

    #[test]
    fn marketing_cap_counts_a_rolling_day() {
        let mut record = ContactRecord::default();
        let two = MarketingCap { cap: 2 };
        two.check(&record, 100).unwrap();
        two.record(&mut record, 100);
        two.check(&record, 200).unwrap();
        two.record(&mut record, 200);
        assert_eq!(two.check(&record, 300), Err(100 + SECS_PER_DAY));
        assert!(two.check(&record, 100 + SECS_PER_DAY).is_ok());
        let one = MarketingCap { cap: 1 };
        assert_eq!(one.check(&record, 300), Err(200 + SECS_PER_DAY));
        assert!(MarketingCap { cap: 0 }.check(&record, 300).is_ok());
    }
}
