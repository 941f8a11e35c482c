//! The media ids wagate has learned the numbers of (uploads through it, Meta's answers), kept
//! within a bound: a forgotten id is asked of Meta again (`media_owner`).

use dashmap::DashMap;

use wagate_rules::ids::PhoneNumberId;

/// Media ids remembered with their numbers; past it, some are forgotten (and asked again).
const REMEMBERED: usize = 100_000;

/// The numbers of media ids learned from uploads and from Meta's answers.
#[derive(Default)]
pub(crate) struct MediaOwners {
    numbers: DashMap<String, u64>,
}

impl MediaOwners {
    pub(crate) fn remember(&self, media_id: &str, number: PhoneNumberId) {
        if self.numbers.len() >= REMEMBERED {
            // Any will do: a forgotten id is asked of Meta again.
            let some: Vec<String> = self
                .numbers
                .iter()
                .take(REMEMBERED / 10)
                .map(|entry| entry.key().clone())
                .collect();
            for id in some {
                self.numbers.remove(&id);
            }
        }
        self.numbers.insert(media_id.to_string(), number.0);
    }

    pub(crate) fn forget(&self, media_id: &str) {
        self.numbers.remove(media_id);
    }

    pub(crate) fn known(&self, media_id: &str) -> Option<u64> {
        self.numbers.get(media_id).map(|number| *number)
    }
}
