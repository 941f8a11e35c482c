//! Calls counted per key over moving windows, for Meta's limits on how often something may be
//! done (registration calls, template edits): which of `limits` (most calls, window) a new call
//! would break, and when it may go. In memory, bounded by the keys in use and the longest window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One of Meta's limits: at most `calls` in any `window_secs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    pub(crate) calls: usize,
    pub(crate) window_secs: u64,
}

/// Each key's calls (Unix seconds, oldest first) within the longest of its limits.
#[derive(Default)]
pub(crate) struct RecentCalls {
    calls: Mutex<HashMap<u64, VecDeque<u64>>>,
}

impl RecentCalls {
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
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.entry(key).or_default().push_back(now);
    }

    fn judge(&self, key: u64, now: u64, limits: &[Limit], count: bool) -> Result<(), u64> {
        let longest = limits.iter().map(|l| l.window_secs).max().unwrap_or(0);
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let recent = calls.entry(key).or_default();
        while recent.front().is_some_and(|&at| at + longest <= now) {
            recent.pop_front();
        }
        let mut free_at = None;
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
        match free_at {
            Some(at) => Err(at),
            None => {
                if count {
                    recent.push_back(now);
                }
                Ok(())
            }
        }
    }

    /// Meta said the limit is reached: `key` has `calls` at `now` as far as wagate knows.
    pub(crate) fn fill(&self, key: u64, now: u64, calls: usize) {
        let mut all = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let recent = all.entry(key).or_default();
        while recent.len() < calls {
            recent.push_back(now);
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
