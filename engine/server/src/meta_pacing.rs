//! What Meta's throttling answers teach the upstream, as Meta's word on its own limits:
//! - 131056, the pair rate (one business number to one person) was hit: no send goes to that
//!   pair until Meta's suggested wait has passed on wagate's clock (4^k seconds for the k-th
//!   refusal in a row: 1, 4, 16, 64, then 256 at most); a send the pair takes resets it.
//! - 130429, the number's throughput was reached: the number is paced at half the rate it was
//!   sent at (at least 1 a second), and a throughput wagate is told later never lifts it above
//!   that cap while this process runs (Meta will say so again after a restart if it still holds).
//!
//! Both are checked on every send only when something is held (one relaxed load otherwise).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use dashmap::DashMap;

/// The longest a pair is held for one refusal (Meta's 4^k, capped).
const PAIR_HOLD_MAX_SECS: u64 = 256;

/// Held pairs kept before those long past their wait are forgotten.
const FORGET_ABOVE: usize = 4_096;

struct PairHold {
    until: u64,
    /// Refusals in a row.
    refusals: u32,
}

/// Pairs (number, person's digits) Meta refused with 131056, and until when.
#[derive(Default)]
pub(crate) struct PairHolds {
    count: AtomicUsize,
    held: Mutex<HashMap<(u64, u64), PairHold>>,
}

impl PairHolds {
    /// Until when a send from `number` to `to` must wait, if it must.
    pub(crate) fn held_until(&self, number: u64, to: u64, now: u64) -> Option<u64> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&(number, to))
            .filter(|hold| now < hold.until)
            .map(|hold| hold.until)
    }

    /// Meta refused a send from `number` to `to` at `now` for the pair rate: held until when.
    pub(crate) fn refused(&self, number: u64, to: u64, now: u64) -> u64 {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.len() >= FORGET_ABOVE {
            // Pairs never sent to again would stay for ever: those whose last wait ended long
            // ago are forgotten (their next refusal starts the count again).
            held.retain(|_, hold| now < hold.until + PAIR_HOLD_MAX_SECS);
            self.count.store(held.len(), Ordering::Relaxed);
        }
        let hold = held.entry((number, to)).or_insert_with(|| {
            self.count.fetch_add(1, Ordering::Relaxed);
            PairHold {
                until: now,
                refusals: 0,
            }
        });
        let wait = 4u64.saturating_pow(hold.refusals).min(PAIR_HOLD_MAX_SECS);
        hold.refusals = hold.refusals.saturating_add(1);
        hold.until = now + wait;
        hold.until
    }

    /// Meta took a send from `number` to `to`: the pair is free again.
    pub(crate) fn sent(&self, number: u64, to: u64) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.remove(&(number, to)).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Throughput caps Meta's 130429 set, per number (messages a second).
#[derive(Default)]
pub(crate) struct ThroughputCaps(DashMap<u64, u32>);

impl ThroughputCaps {
    /// `mps` as far as the number's cap allows.
    pub(crate) fn capped(&self, number: u64, mps: u32) -> u32 {
        self.0.get(&number).map_or(mps, |cap| mps.min(*cap))
    }

    /// Meta said the number's throughput was reached while it was paced at `paced_at`: its
    /// new cap, or `None` when a send before this one lowered it already.
    pub(crate) fn reached(&self, number: u64, paced_at: u32) -> Option<u32> {
        let slower = (paced_at / 2).max(1);
        if slower >= paced_at {
            return None; // one a second is the floor
        }
        let mut cap = self.0.entry(number).or_insert(u32::MAX);
        if *cap < paced_at {
            return None; // lowered already, below the rate this send was paced at
        }
        *cap = slower;
        Some(slower)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_meta_refused_waits_four_times_longer_each_time_and_a_send_frees_it() {
        let pairs = PairHolds::default();
        assert_eq!(pairs.held_until(1, 7, 100), None);
        assert_eq!(pairs.refused(1, 7, 100), 101);
        assert_eq!(pairs.held_until(1, 7, 100), Some(101));
        assert_eq!(pairs.held_until(1, 8, 100), None, "another person");
        assert_eq!(pairs.held_until(1, 7, 101), None);
        assert_eq!(pairs.refused(1, 7, 101), 105);
        assert_eq!(pairs.refused(1, 7, 105), 121);
        pairs.sent(1, 7);
        assert_eq!(pairs.refused(1, 7, 200), 201, "the count starts again");
        for _ in 0..10 {
            pairs.refused(1, 7, 300);
        }
        assert_eq!(pairs.held_until(1, 7, 300), Some(300 + PAIR_HOLD_MAX_SECS));
    }

    #[test]
    fn pairs_long_past_their_wait_are_forgotten_once_many_are_held() {
        let pairs = PairHolds::default();
        for person in 0..FORGET_ABOVE as u64 {
            pairs.refused(1, person, 100);
        }
        let later = 100 + 1 + PAIR_HOLD_MAX_SECS;
        pairs.refused(1, u64::MAX, later);
        assert_eq!(
            pairs.count.load(Ordering::Relaxed),
            1,
            "only the fresh pair is kept"
        );
        assert_eq!(pairs.held_until(1, u64::MAX, later), Some(later + 1));
    }

    #[test]
    fn throughput_is_halved_once_per_rate_and_caps_later_rates() {
        let caps = ThroughputCaps::default();
        assert_eq!(caps.capped(1, 1_000), 1_000);
        assert_eq!(caps.reached(1, 1_000), Some(500));
        assert_eq!(
            caps.reached(1, 1_000),
            None,
            "another send paced at the old rate"
        );
        assert_eq!(caps.capped(1, 1_000), 500);
        assert_eq!(caps.capped(1, 80), 80);
        assert_eq!(caps.reached(1, 500), Some(250));
        assert_eq!(caps.reached(2, 1), None, "one a second is the floor");
    }
}
