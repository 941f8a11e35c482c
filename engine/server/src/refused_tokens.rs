//! Access tokens Meta refused (its code 190: invalid or expired). Every send with such a token
//! would be refused the same way, so none goes: sends from the numbers using it are held
//! (retried, never failed: the token is the operator's to fix) and one send probes Meta again
//! once a minute on wagate's clock. The operator sees it at once: an error in the log naming the
//! number, and `wagate_meta_token_refused{number}` at 1 until Meta accepts the token again.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How long a refused token is held before one send probes it again.
pub(crate) const PROBE_AFTER_SECS: u64 = 60;

struct Held {
    /// Unix seconds from which one send may probe Meta with the token again.
    until: u64,
    /// The numbers whose sends were held for it (their gauges go back to 0 with it).
    numbers: BTreeSet<u64>,
}

/// Tokens (as their `Authorization` header) Meta refused, and until when.
#[derive(Default)]
pub(crate) struct RefusedTokens {
    /// How many are held: the send path looks at the map only when some are.
    count: AtomicUsize,
    held: Mutex<HashMap<String, Held>>,
}

impl RefusedTokens {
    /// When a send with `authorization` from `number` must wait until, if it must.
    pub(crate) fn held_until(&self, authorization: &str, number: u64, now: u64) -> Option<u64> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let token = held.get_mut(authorization)?;
        token.numbers.insert(number);
        (now < token.until).then_some(token.until)
    }

    /// Meta refused `authorization` on a send from `number` at `now`: held until the next probe.
    pub(crate) fn refused(&self, authorization: &str, number: u64, now: u64) -> u64 {
        let until = now + PROBE_AFTER_SECS;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let token = held.entry(authorization.to_string()).or_insert_with(|| {
            self.count.fetch_add(1, Ordering::Relaxed);
            Held {
                until,
                numbers: BTreeSet::new(),
            }
        });
        token.until = until;
        token.numbers.insert(number);
        until
    }

    /// Meta took a send with `authorization`: the numbers that were held for it, if it was.
    pub(crate) fn accepted(&self, authorization: &str) -> Option<BTreeSet<u64>> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let token = held.remove(authorization)?;
        self.count.fetch_sub(1, Ordering::Relaxed);
        Some(token.numbers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_holds_its_numbers_until_a_probe_and_an_accepted_one_frees_them() {
        let tokens = RefusedTokens::default();
        assert_eq!(tokens.held_until("Bearer a", 1, 100), None);
        assert_eq!(tokens.refused("Bearer a", 1, 100), 160);
        assert_eq!(tokens.held_until("Bearer a", 2, 159), Some(160));
        assert_eq!(tokens.held_until("Bearer b", 3, 120), None, "another token");
        assert_eq!(
            tokens.held_until("Bearer a", 1, 160),
            None,
            "the probe goes"
        );
        assert_eq!(tokens.refused("Bearer a", 1, 160), 220, "refused again");
        assert_eq!(
            tokens.accepted("Bearer a"),
            Some(BTreeSet::from([1, 2])),
            "both numbers were held"
        );
        assert_eq!(tokens.held_until("Bearer a", 1, 161), None);
        assert_eq!(tokens.accepted("Bearer a"), None);
    }
}
