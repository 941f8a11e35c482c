//! The words and button payloads that change a person's consent when they send them: the
//! lists (built in, or an operator's per language, and a tenant's own for its numbers), and
//! how an inbound message is read against them. A message matches only when all of it, trimmed
//! and case-folded, is one of the words: "please stop sending" is no opt-out.

use std::sync::Arc;

use crate::contact_events::{ConsentChange, InboundContent};
use crate::hash::MixHashMap;
use crate::ids::PhoneNumberId;
use crate::state::contact::ConsentSource;

/// Keywords and button payloads that change consent: one language's as an operator writes
/// them (a list left out is empty), or every language together (a person may write in any of
/// them, and an opt-out means stop whichever they chose).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentKeywords {
    /// Withdraws everything (STOP).
    #[serde(default)]
    pub opt_out: Vec<String>,
    /// Resumes what the business's own opt-outs withdrew (START).
    #[serde(default)]
    pub opt_in: Vec<String>,
    /// Withdraws marketing only ("STOP PROMOTIONS").
    #[serde(default)]
    pub marketing_opt_out: Vec<String>,
    #[serde(default)]
    pub opt_out_payloads: Vec<String>,
    #[serde(default)]
    pub marketing_opt_out_payloads: Vec<String>,
    #[serde(default)]
    pub opt_in_payloads: Vec<String>,
}

impl Default for ConsentKeywords {
    fn default() -> Self {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        ConsentKeywords {
            opt_out: list(&[
                "STOP",
                "STOP ALL",
                "UNSUBSCRIBE",
                "CANCEL",
                "СТОП",
                "ОТПИСАТЬСЯ",
                "BAJA",
            ]),
            opt_in: list(&["START", "SUBSCRIBE", "UNSTOP", "СТАРТ", "ALTA"]),
            marketing_opt_out: list(&["STOP PROMOTIONS", "STOP PROMOS"]),
            opt_out_payloads: list(&["UNSUBSCRIBE", "STOP"]),
            marketing_opt_out_payloads: list(&["STOP_PROMOS", "STOP_PROMOTIONS"]),
            opt_in_payloads: list(&["SUBSCRIBE", "START"]),
        }
    }
}

/// A word given two meanings, or none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    #[error("the consent keyword '{0}' is both an opt-out and an opt-in")]
    Conflict(String),
    #[error("a consent keyword is empty")]
    Empty,
}

/// The form a word is compared in: trimmed, case-folded.
fn folded(word: &str) -> String {
    word.trim().to_uppercase()
}

impl ConsentKeywords {
    /// No word at all.
    pub fn none() -> ConsentKeywords {
        ConsentKeywords {
            opt_out: Vec::new(),
            opt_in: Vec::new(),
            marketing_opt_out: Vec::new(),
            opt_out_payloads: Vec::new(),
            marketing_opt_out_payloads: Vec::new(),
            opt_in_payloads: Vec::new(),
        }
    }

    /// Adds `other`'s words to these (another language's).
    pub fn extend(&mut self, other: &ConsentKeywords) {
        self.opt_out.extend_from_slice(&other.opt_out);
        self.opt_in.extend_from_slice(&other.opt_in);
        self.marketing_opt_out
            .extend_from_slice(&other.marketing_opt_out);
        self.opt_out_payloads
            .extend_from_slice(&other.opt_out_payloads);
        self.marketing_opt_out_payloads
            .extend_from_slice(&other.marketing_opt_out_payloads);
        self.opt_in_payloads
            .extend_from_slice(&other.opt_in_payloads);
    }

    /// Refuses an empty word, and a word (or payload) that both withdraws and resumes.
    pub fn validate(&self) -> Result<(), KeywordError> {
        let all = [
            &self.opt_out,
            &self.opt_in,
            &self.marketing_opt_out,
            &self.opt_out_payloads,
            &self.marketing_opt_out_payloads,
            &self.opt_in_payloads,
        ];
        if all
            .iter()
            .any(|list| list.iter().any(|w| w.trim().is_empty()))
        {
            return Err(KeywordError::Empty);
        }
        let resumes = |list: &[String], word: &str| list.iter().any(|w| folded(w) == word);
        for (stops, starts) in [
            (&self.opt_out, &self.opt_in),
            (&self.marketing_opt_out, &self.opt_in),
            (&self.opt_out_payloads, &self.opt_in_payloads),
            (&self.marketing_opt_out_payloads, &self.opt_in_payloads),
        ] {
            if let Some(word) = stops.iter().map(|w| folded(w)).find(|w| resumes(starts, w)) {
                return Err(KeywordError::Conflict(word));
            }
        }
        Ok(())
    }
}

/// A tenant's own lists, for its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberKeywords {
    pub numbers: Vec<PhoneNumberId>,
    pub keywords: ConsentKeywords,
}

/// Lists folded once, so matching is one comparison per word.
#[derive(Debug, Clone)]
pub struct FoldedKeywords(ConsentKeywords);

impl FoldedKeywords {
    fn new(keywords: &ConsentKeywords) -> Self {
        let mut all = ConsentKeywords::none();
        all.extend(keywords);
        for list in [
            &mut all.opt_out,
            &mut all.opt_in,
            &mut all.marketing_opt_out,
            &mut all.opt_out_payloads,
            &mut all.marketing_opt_out_payloads,
            &mut all.opt_in_payloads,
        ] {
            for word in list.iter_mut() {
                *word = folded(word);
            }
        }
        FoldedKeywords(all)
    }

    /// The consent change an inbound message asks for, if any.
    pub fn classify(&self, content: &InboundContent) -> Option<(ConsentChange, ConsentSource)> {
        // Folded once; the lists hold folded words.
        let is = |list: &[String], text: &str| list.iter().any(|word| word == text);
        let lists = &self.0;
        match content {
            InboundContent::Text(text) => {
                let source = ConsentSource::Keyword;
                let text = &folded(text);
                if is(&lists.opt_out, text) {
                    Some((ConsentChange::OptOut, source))
                } else if is(&lists.marketing_opt_out, text) {
                    Some((ConsentChange::MarketingOptOut, source))
                } else if is(&lists.opt_in, text) {
                    Some((ConsentChange::OptIn, source))
                } else {
                    None
                }
            }
            InboundContent::Button { payload }
            | InboundContent::InteractiveReply { id: payload } => {
                let source = ConsentSource::Button;
                let payload = &folded(payload);
                if is(&lists.marketing_opt_out_payloads, payload) {
                    Some((ConsentChange::MarketingOptOut, source))
                } else if is(&lists.opt_out_payloads, payload) {
                    Some((ConsentChange::OptOut, source))
                } else if is(&lists.opt_in_payloads, payload) {
                    Some((ConsentChange::OptIn, source))
                } else {
                    None
                }
            }
            InboundContent::Other => None,
        }
    }
}

/// Every number's lists: its tenant's own, or the operator's.
#[derive(Debug, Clone)]
pub struct KeywordBook {
    default: FoldedKeywords,
    by_number: MixHashMap<PhoneNumberId, Arc<FoldedKeywords>>,
}

impl KeywordBook {
    pub fn new(default: &ConsentKeywords, tenants: &[NumberKeywords]) -> KeywordBook {
        let mut by_number = MixHashMap::default();
        for tenant in tenants {
            let folded = Arc::new(FoldedKeywords::new(&tenant.keywords));
            for number in &tenant.numbers {
                by_number.insert(*number, folded.clone());
            }
        }
        KeywordBook {
            default: FoldedKeywords::new(default),
            by_number,
        }
    }

    /// The lists a message to `number` is read against.
    #[inline]
    pub fn of(&self, number: PhoneNumberId) -> &FoldedKeywords {
        if self.by_number.is_empty() {
            return &self.default;
        }
        self.by_number.get(&number).map_or(&self.default, |own| own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(words: &str) -> InboundContent {
        InboundContent::Text(words.into())
    }

    #[test]
    fn only_a_whole_message_matches_and_each_list_means_its_change() {
        let book = KeywordBook::new(&ConsentKeywords::default(), &[]);
        let lists = book.of(PhoneNumberId(1));
        let change = |content: &InboundContent| lists.classify(content).map(|c| c.0);
        assert_eq!(change(&text("  stop ")), Some(ConsentChange::OptOut));
        assert_eq!(change(&text("Baja")), Some(ConsentChange::OptOut));
        assert_eq!(change(&text("стоп")), Some(ConsentChange::OptOut));
        assert_eq!(
            change(&text("Stop Promotions")),
            Some(ConsentChange::MarketingOptOut)
        );
        assert_eq!(change(&text("start")), Some(ConsentChange::OptIn));
        assert_eq!(change(&text("please stop sending")), None);
        assert_eq!(change(&text("stopp")), None);
        let button = InboundContent::Button {
            payload: "stop_promos".into(),
        };
        assert_eq!(
            lists.classify(&button),
            Some((ConsentChange::MarketingOptOut, ConsentSource::Button))
        );
    }

    #[test]
    fn a_tenant_s_numbers_read_its_own_lists_and_a_word_may_not_mean_both() {
        let own = ConsentKeywords {
            opt_out: vec!["PARAR".into()],
            opt_in: vec!["VOLVER".into()],
            ..ConsentKeywords::none()
        };
        let book = KeywordBook::new(
            &ConsentKeywords::default(),
            &[NumberKeywords {
                numbers: vec![PhoneNumberId(7)],
                keywords: own.clone(),
            }],
        );
        assert!(book.of(PhoneNumberId(7)).classify(&text("parar")).is_some());
        assert_eq!(book.of(PhoneNumberId(7)).classify(&text("stop")), None);
        assert!(book.of(PhoneNumberId(8)).classify(&text("stop")).is_some());
        assert!(own.validate().is_ok());
        let both = ConsentKeywords {
            opt_in: vec!["parar ".into()],
            ..own.clone()
        };
        assert_eq!(both.validate(), Err(KeywordError::Conflict("PARAR".into())));
        let empty = ConsentKeywords {
            opt_out: vec![" ".into()],
            ..own
        };
        assert_eq!(empty.validate(), Err(KeywordError::Empty));
    }
}
