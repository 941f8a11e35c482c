//! Failures that can come thousands at a time (refused connections, upstream retries, failed
//! forwards) are logged at most once a second, each line saying how many it stands for, so an
//! outage is seen at once without a line per message.

use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(1);

/// One kind of failure's log rate.
#[derive(Debug, Default)]
pub struct LogLimit {
    logged_at: Option<Instant>,
    since_logged: u64,
}

impl LogLimit {
    /// For a `static` shared by every thread that meets this failure.
    pub const fn new() -> LogLimit {
        LogLimit {
            logged_at: None,
            since_logged: 0,
        }
    }

    /// Counts one occurrence; `Some(n)` when it is to be logged now, `n` being the occurrences
    /// it stands for (this one and those not logged since the last line).
    pub fn admit(&mut self) -> Option<u64> {
        self.since_logged += 1;
        if self.logged_at.is_some_and(|at| at.elapsed() < EVERY) {
            return None;
        }
        self.logged_at = Some(Instant::now());
        Some(std::mem::take(&mut self.since_logged))
    }
}

/// [`LogLimit::admit`] on a shared limit.
pub fn admit(limit: &std::sync::Mutex<LogLimit>) -> Option<u64> {
    limit.lock().unwrap_or_else(|e| e.into_inner()).admit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_and_the_rest_of_its_second_counted_into_the_next_line() {
        let mut limit = LogLimit::default();
        assert_eq!(limit.admit(), Some(1));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        limit.logged_at = Some(Instant::now() - EVERY);
        assert_eq!(limit.admit(), Some(3));
    }
}
