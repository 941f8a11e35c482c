//! Automations as data, evaluated on the shard that owns the person: which of a tenant's
//! keyword automations a person's message sets going (its whole text, a button's payload or an
//! interactive reply's id, trimmed and case-folded), which status automations Meta's status of
//! a message sets going, and the loop bound: at most [`MAX_AUTOMATED_PER_HOUR`] automated
//! sends to a person from a number an hour (two automated parties answering each other stop
//! there). The bound is kept in the shard's memory, as each person's other per-hour counts are
//! derived: a restart starts it over.

use std::collections::VecDeque;

use crate::clock::Secs;
use crate::contact_events::InboundContent;
use crate::hash::MixHashMap;
use crate::ids::{Msisdn, PhoneNumberId};

/// Automated sends to one person from one number within an hour, at most.
pub const MAX_AUTOMATED_PER_HOUR: usize = 5;
const HOUR: Secs = 3_600;

/// One number's automations, each by its index in its tenant's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberAutomations {
    pub number: PhoneNumberId,
    /// (keyword, index).
    pub keywords: Vec<(String, usize)>,
    /// (status: `delivered`, `read` or `failed`; only for messages of this template if
    /// given; index).
    pub statuses: Vec<(String, Option<String>, usize)>,
}

/// Every number's automations, keywords folded once.
#[derive(Debug, Default)]
pub struct AutomationBook {
    by_number: MixHashMap<PhoneNumberId, NumberAutomations>,
    follows_statuses: bool,
}

fn folded(word: &str) -> String {
    word.trim().to_uppercase()
}

impl AutomationBook {
    pub fn new(numbers: &[NumberAutomations]) -> AutomationBook {
        let by_number = numbers
            .iter()
            .map(|n| {
                let mut n = n.clone();
                for (word, _) in &mut n.keywords {
                    *word = folded(word);
                }
                (n.number, n)
            })
            .collect::<MixHashMap<_, NumberAutomations>>();
        let follows_statuses = by_number.values().any(|n| !n.statuses.is_empty());
        AutomationBook {
            by_number,
            follows_statuses,
        }
    }

    /// The keyword automations of `number` that `content` is the whole keyword of.
    pub fn keyword(&self, number: PhoneNumberId, content: &InboundContent) -> Vec<usize> {
        let Some(automations) = self.by_number.get(&number) else {
            return Vec::new();
        };
        let words = match content {
            InboundContent::Text(text) => text.as_str(),
            InboundContent::Button { payload } => payload.as_str(),
            InboundContent::InteractiveReply { id } => id.as_str(),
            InboundContent::Other => return Vec::new(),
        };
        if automations.keywords.is_empty() || words.trim().is_empty() {
            return Vec::new();
        }
        let words = folded(words);
        automations
            .keywords
            .iter()
            .filter(|(keyword, _)| *keyword == words)
            .map(|(_, index)| *index)
            .collect()
    }

    /// The status automations of `number` that `status` of a message of `template` (if a
    /// template) sets going.
    pub fn status(
        &self,
        number: PhoneNumberId,
        status: &str,
        template: Option<&str>,
    ) -> Vec<usize> {
        self.by_number
            .get(&number)
            .into_iter()
            .flat_map(|n| &n.statuses)
            .filter(|(on, of, _)| {
                on == status && of.as_deref().is_none_or(|of| Some(of) == template)
            })
            .map(|(_, _, index)| *index)
            .collect()
    }

    /// Whether any number follows statuses (only then are they looked at).
    pub fn follows_statuses(&self) -> bool {
        self.follows_statuses
    }
}

/// The automated sends of the last hour per (number, person), on one shard.
#[derive(Debug, Default)]
pub struct LoopGuard {
    recent: MixHashMap<(PhoneNumberId, u64), VecDeque<Secs>>,
}

impl LoopGuard {
    /// Counts one automated send to `person` from `number` at `now`, if the hour allows one
    /// more: false when the person had the most.
    pub fn admit(&mut self, number: PhoneNumberId, person: Msisdn, now: Secs) -> bool {
        let times = self.recent.entry((number, person.digits())).or_default();
        while times.front().is_some_and(|&at| at + HOUR <= now) {
            times.pop_front();
        }
        if times.len() >= MAX_AUTOMATED_PER_HOUR {
            return false;
        }
        times.push_back(now);
        true
    }

    /// Forgets the pairs whose sends are all an hour old (the shard's hourly tick).
    pub fn prune(&mut self, now: Secs) {
        self.recent
            .retain(|_, times| times.back().is_some_and(|&at| at + HOUR > now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> AutomationBook {
        AutomationBook::new(&[NumberAutomations {
            number: PhoneNumberId(1),
            keywords: vec![(" Menu ".into(), 0), ("help".into(), 2)],
            statuses: vec![("read".into(), Some("order_update".into()), 1)],
        }])
    }

    #[test]
    fn a_whole_keyword_any_case_sets_its_automations_going_and_nothing_else_does() {
        let book = book();
        let text = |t: &str| InboundContent::Text(t.into());
        assert_eq!(book.keyword(PhoneNumberId(1), &text("  menu")), [0]);
        let button = InboundContent::Button {
            payload: "HELP".into(),
        };
        assert_eq!(book.keyword(PhoneNumberId(1), &button), [2]);
        assert!(book.keyword(PhoneNumberId(1), &text("the menu")).is_empty());
        assert!(book.keyword(PhoneNumberId(2), &text("menu")).is_empty());
        assert_eq!(
            book.status(PhoneNumberId(1), "read", Some("order_update")),
            [1]
        );
        assert!(book
            .status(PhoneNumberId(1), "read", Some("other"))
            .is_empty());
        assert!(book
            .status(PhoneNumberId(1), "failed", Some("order_update"))
            .is_empty());
        assert!(book.follows_statuses());
    }

    #[test]
    fn five_automated_sends_an_hour_then_none_until_the_first_is_an_hour_old() {
        let mut guard = LoopGuard::default();
        let (number, ana) = (PhoneNumberId(1), Msisdn::parse("+16505550001").unwrap());
        for second in 0..5 {
            assert!(guard.admit(number, ana, second * 10));
        }
        assert!(!guard.admit(number, ana, 100), "the sixth in the hour");
        let bea = Msisdn::parse("+16505550002").unwrap();
        assert!(
            guard.admit(number, bea, 100),
            "another person has their own"
        );
        assert!(guard.admit(number, ana, HOUR), "the first is an hour old");
        guard.prune(2 * HOUR);
        assert!(guard.recent.is_empty());
    }
}
