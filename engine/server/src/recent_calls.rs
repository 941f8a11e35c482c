//! Calls counted per key over moving windows, for Meta's limits on how often something may be
//! done (registration calls, template edits): which of `limits` (most calls, window) a new call
//! would break, and when it may go. Bounded by the keys in use and the longest window; kept in
//! the engine's store when made with [`RecentCalls::kept`], so a restart remembers them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use wagate_durable::wagate::Wagate;

/// One of Meta's limits: at most `calls` in any `window_secs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    pub(crate) calls: usize,
    pub(crate) window_secs: u64,
}

/// Where the calls are kept: the engine's store, under a tag of their own.
struct Keeper {
    wagate: Arc<Wagate>,
    tag: u8,
}

/// Each key's calls (Unix seconds, oldest first) within the longest of its limits.
#[derive(Default)]
pub(crate) struct RecentCalls {
    calls: Mutex<HashMap<u64, VecDeque<u64>>>,
    keeper: Option<Keeper>,
}

impl RecentCalls {
    /// Calls kept in `wagate`'s store under `tag` (one tag per limit), those kept before read
    /// back.
    pub(crate) fn kept(wagate: Arc<Wagate>, tag: u8) -> RecentCalls {
        let before = wagate.kept_calls(tag).unwrap_or_else(|error| {
            tracing::warn!(%error, tag, "the calls counted before could not be read: counted from now");
            Vec::new()
        });
        RecentCalls {
            calls: Mutex::new(
                before
                    .into_iter()
                    .map(|(key, calls)| (key, calls.into()))
                    .collect(),
            ),
            keeper: Some(Keeper { wagate, tag }),
        }
    }

    /// Takes a call of `key` at `now` if no limit forbids it; else when the next may go.
    pub(crate) fn take(&self, key: u64, now: u64, limits: &[Limit]) -> Result<(), u64> {
        self.judge(key, now, limits, true)
    }

    /// Whether a call of `key` at `now` would be taken (it is not counted: [`Self::record`]
    /// counts it once it went).
    pub(crate) fn check(&self, key: u64, now: u64, limits: &[Limit]) -> Result<(), u64> {
        self.judge(key, now, limits, false)
    }

    /// Counts a call of `key` at `now`.
    pub(crate) fn record(&self, key: u64, now: u64) {
        self.change(key, |recent| recent.push_back(now));
    }

    fn judge(&self, key: u64, now: u64, limits: &[Limit], count: bool) -> Result<(), u64> {
        let longest = limits.iter().map(|l| l.window_secs).max().unwrap_or(0);
        let mut free_at = None;
        self.change(key, |recent| {
            while recent.front().is_some_and(|&at| at + longest <= now) {
                recent.pop_front();
            }
            for limit in limits {
                let within: Vec<u64> = recent
                    .iter()
                    .copied()
                    .filter(|&at| at + limit.window_secs > now)
                    .collect();
                if within.len() >= limit.calls {
                    // The call that must age out first for this one to fit.
                    let oldest = within[within.len() - limit.calls];
                    free_at = free_at.max(Some(oldest + limit.window_secs));
                }
            }
            if free_at.is_none() && count {
                recent.push_back(now);
            }
        });
        match free_at {
            Some(at) => Err(at),
            None => Ok(()),
        }
    }

    /// Meta said the limit is reached: `key` has `calls` at `now` as far as wagate knows.
    pub(crate) fn fill(&self, key: u64, now: u64, calls: usize) {
        self.change(key, |recent| {
            while recent.len() < calls {
                recent.push_back(now);
            }
        });
    }

    /// Changes `key`'s calls, and keeps them if they changed (a failure to keep is logged:
    /// the count in memory holds, and Meta's own refusal stands where a restart forgets).
    fn change(&self, key: u64, edit: impl FnOnce(&mut VecDeque<u64>)) {
        let changed = {
            let mut all = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let recent = all.entry(key).or_default();
            let before = recent.clone();
            edit(recent);
            let after: Vec<u64> = recent.iter().copied().collect();
            if recent.is_empty() {
                all.remove(&key);
            }
            (before != after).then_some(after)
        };
        if let (Some(calls), Some(keeper)) = (changed, &self.keeper) {
            if let Err(error) = keeper.wagate.keep_calls(keeper.tag, key, &calls) {
                tracing::warn!(%error, tag = keeper.tag, key, "counted calls could not be kept");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_is_kept_and_the_call_goes_when_the_tightest_frees() {
        const DAY: u64 = 86_400;
        let limits = [
            Limit {
                calls: 1,
                window_secs: DAY,
            },
            Limit {
                calls: 3,
                window_secs: 30 * DAY,
            },
        ];
        let calls = RecentCalls::default();
        assert_eq!(calls.take(1, 0, &limits), Ok(()));
        assert_eq!(calls.take(1, 10, &limits), Err(DAY), "one a day");
        assert_eq!(calls.take(2, 10, &limits), Ok(()), "another key");
        assert_eq!(calls.take(1, DAY, &limits), Ok(()));
        assert_eq!(calls.take(1, 2 * DAY, &limits), Ok(()));
        assert_eq!(
            calls.take(1, 3 * DAY, &limits),
            Err(30 * DAY),
            "three in 30 days"
        );
        assert_eq!(calls.take(1, 30 * DAY, &limits), Ok(()));
    }
}
