//! Meta allows a number 10 registration calls (`register`, `deregister`) in a moving 72 h, then
//! answers 133016 and blocks the number's registration for 72 h. wagate counts the calls it
//! passes to Meta per number and refuses the 11th itself, with Meta's code and when the next
//! call may go; Meta's own 133016 is Meta's word that the window is full. The calls are kept in
//! the engine's store (tag [`CALLS_TAG`]): a restart counts on.

use super::recent_calls::{Limit, RecentCalls};
use wagate_cloud_api::error::ApiError;

/// Calls Meta takes in the window, and the window.
pub(crate) const LIMIT: Limit = Limit {
    calls: 10,
    window_secs: 72 * 3_600,
};

/// The tag registration calls are kept under.
pub(crate) const CALLS_TAG: u8 = 1;

/// Each number's registration calls in the last 72 h.
#[derive(Default)]
pub(crate) struct RegistrationCalls {
    calls: RecentCalls,
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
    /// The calls kept in `wagate`'s store.
    pub(crate) fn kept(wagate: std::sync::Arc<wagate_durable::wagate::Wagate>) -> Self {
        RegistrationCalls {
            calls: RecentCalls::kept(wagate, CALLS_TAG),
        }
    }

    /// Takes one call of `number` at `now`, or refuses it as Meta would.
    pub(crate) fn take(&self, number: u64, now: u64) -> Result<(), ApiError> {
        self.calls.take(number, now, &[LIMIT]).map_err(|free_at| {
            ApiError::new(
                400,
                133_016,
                "Account register/deregister rate limit exceeded",
                format!(
                    "number {number} made {} registration calls in 72 h; the next may go at \
                     {free_at} (Unix seconds)",
                    LIMIT.calls
                ),
                "registration_rate_limit",
            )
        })
    }

    /// Meta answered 133016: its window for `number` is full as of `now`.
    pub(crate) fn full(&self, number: u64, now: u64) {
        self.calls.fill(number, now, LIMIT.calls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_call_in_72_hours_is_refused_until_the_first_ages_out() {
        let calls = RegistrationCalls::default();
        for i in 0..LIMIT.calls as u64 {
            assert!(calls.take(7, 1_000 + i).is_ok());
        }
        let refused = calls.take(7, 2_000).expect_err("eleventh");
        assert_eq!(refused.code, 133_016);
        assert!(calls.take(8, 2_000).is_ok(), "another number");
        assert!(
            calls.take(7, 1_000 + LIMIT.window_secs).is_ok(),
            "the first aged out"
        );
        assert_eq!(registration_of("/v23.0/1001/register"), Some(1001));
        assert_eq!(registration_of("/v23.0/1001/deregister"), Some(1001));
        assert_eq!(registration_of("/v23.0/1001/request_code"), None);
    }
}
