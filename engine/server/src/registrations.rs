//! Meta allows a number 10 registration calls (`register`, `deregister`) in a moving 72 h, then
//! answers 133016 and blocks the number's registration for 72 h. wagate counts the calls it
//! passes to Meta per number and refuses the 11th itself, with Meta's code and when the next
//! call may go; Meta's own 133016 is Meta's word that the window is full. Counted in memory:
//! after a restart the count starts again, and Meta's answer stands where wagate forgot.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use wagate_cloud_api::error::ApiError;

/// Calls Meta takes in the window, and the window.
pub(crate) const MAX_CALLS: usize = 10;
pub(crate) const WINDOW_SECS: u64 = 72 * 3_600;

/// Each number's registration calls in the last 72 h (Unix seconds, oldest first).
#[derive(Default)]
pub(crate) struct RegistrationCalls {
    calls: Mutex<HashMap<u64, VecDeque<u64>>>,
}

/// Whether `path` is a registration call of a number: `/{version}/{number}/register` or
/// `/deregister`; the number.
pub(crate) fn registration_of(path: &str) -> Option<u64> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [_version, number, "register" | "deregister"] => number.parse().ok(),
        _ => None,
    }
}

impl RegistrationCalls {
    /// Takes one call of `number` at `now`, or refuses it as Meta would.
    pub(crate) fn take(&self, number: u64, now: u64) -> Result<(), ApiError> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let recent = calls.entry(number).or_default();
        while recent.front().is_some_and(|&at| at + WINDOW_SECS <= now) {
            recent.pop_front();
        }
        if recent.len() >= MAX_CALLS {
            let free_at = recent.front().map_or(now, |&at| at + WINDOW_SECS);
            return Err(ApiError::new(
                400,
                133_016,
                "Account register/deregister rate limit exceeded",
                format!(
                    "number {number} made {MAX_CALLS} registration calls in 72 h; the next may \
                     go at {free_at} (Unix seconds)"
                ),
                "registration_rate_limit",
            ));
        }
        recent.push_back(now);
        Ok(())
    }

    /// Meta answered 133016: its window for `number` is full as of `now`.
    pub(crate) fn full(&self, number: u64, now: u64) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let recent = calls.entry(number).or_default();
        while recent.len() < MAX_CALLS {
            recent.push_back(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_call_in_72_hours_is_refused_until_the_first_ages_out() {
        let calls = RegistrationCalls::default();
        for i in 0..MAX_CALLS as u64 {
            assert!(calls.take(7, 1_000 + i).is_ok());
        }
        let refused = calls.take(7, 2_000).expect_err("eleventh");
        assert_eq!(refused.code, 133_016);
        assert!(calls.take(8, 2_000).is_ok(), "another number");
        assert!(
            calls.take(7, 1_000 + WINDOW_SECS).is_ok(),
            "the first aged out"
        );
        assert_eq!(registration_of("/v23.0/1001/register"), Some(1001));
        assert_eq!(registration_of("/v23.0/1001/deregister"), Some(1001));
        assert_eq!(registration_of("/v23.0/1001/request_code"), None);
    }
}
