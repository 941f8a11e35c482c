//! Consent per topic: besides marketing (its own flags: the business's opt-out and Meta's
//! stop), utility, authentication and up to five topics the operator names (`order_updates`,
//! `newsletter`). A template carries its category's topic and, if given, a named one; a person
//! who withdrew either gets none of it, inside the window or not. The withdrawn topics are
//! eight bits of the contact record's flags: no memory more per contact.

use crate::template::model::Category;

/// Topics as bits: marketing (which the record keeps in its own flags), utility,
/// authentication, then the named topics in the order the operator lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TopicSet(pub u8);

impl TopicSet {
    pub const MARKETING: TopicSet = TopicSet(1);
    pub const UTILITY: TopicSet = TopicSet(1 << 1);
    pub const AUTHENTICATION: TopicSet = TopicSet(1 << 2);
    /// How many topics an operator may name.
    pub const NAMED: usize = 5;

    /// The topic of a template's category (none for service).
    pub fn of_category(category: Category) -> TopicSet {
        match category {
            Category::Marketing => TopicSet::MARKETING,
            Category::Utility => TopicSet::UTILITY,
            Category::Authentication => TopicSet::AUTHENTICATION,
            Category::Service => TopicSet(0),
        }
    }

    pub fn union(self, other: TopicSet) -> TopicSet {
        TopicSet(self.0 | other.0)
    }

    pub fn intersects(self, other: TopicSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn contains(self, other: TopicSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Without marketing: what the record's topic bits hold.
    pub fn kept(self) -> TopicSet {
        TopicSet(self.0 & !TopicSet::MARKETING.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// A topic name no list knows, or too many named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("unknown consent topic '{0}' (marketing, utility, authentication, or one of consent.topics)")]
    Unknown(String),
    #[error("at most {max} named consent topics, not {0}", max = TopicSet::NAMED)]
    TooMany(usize),
    #[error("the consent topic '{0}' is named twice or is a built-in topic")]
    Repeated(String),
}

/// The topic names: the built-in three and the operator's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicNames {
    named: Vec<String>,
}

const BUILT_IN: [(&str, TopicSet); 3] = [
    ("marketing", TopicSet::MARKETING),
    ("utility", TopicSet::UTILITY),
    ("authentication", TopicSet::AUTHENTICATION),
];

impl TopicNames {
    pub fn new(named: &[String]) -> Result<TopicNames, TopicError> {
        if named.len() > TopicSet::NAMED {
            return Err(TopicError::TooMany(named.len()));
        }
        let mut seen: Vec<String> = BUILT_IN.iter().map(|(n, _)| n.to_string()).collect();
        for name in named {
            let name = name.trim().to_lowercase();
            if name.is_empty() || seen.contains(&name) {
                return Err(TopicError::Repeated(name));
            }
            seen.push(name);
        }
        Ok(TopicNames {
            named: seen.split_off(BUILT_IN.len()),
        })
    }

    /// The topic called `name` (case aside). Asked on each send of a template naming a topic:
    /// compared in place, nothing allocated.
    pub fn topic(&self, name: &str) -> Result<TopicSet, TopicError> {
        let wanted = name.trim();
        if let Some((_, topic)) = BUILT_IN
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(wanted))
        {
            return Ok(*topic);
        }
        self.named
            .iter()
            .position(|n| n.eq_ignore_ascii_case(wanted))
            .map(|index| TopicSet(1 << (3 + index)))
            .ok_or(TopicError::Unknown(name.to_string()))
    }

    /// The topics called `names`.
    pub fn topics<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<TopicSet, TopicError> {
        names
            .into_iter()
            .try_fold(TopicSet::default(), |all, name| {
                Ok(all.union(self.topic(name)?))
            })
    }

    /// The names of `topics`, built-in first.
    pub fn names(&self, topics: TopicSet) -> Vec<&str> {
        let built_in = BUILT_IN.iter().map(|(n, t)| (*n, *t));
        let named = self
            .named
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), TopicSet(1 << (3 + i))));
        built_in
            .chain(named)
            .filter(|(_, topic)| topics.contains(*topic))
            .map(|(name, _)| name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_bits_and_back() {
        let names = TopicNames::new(&["order_updates".into(), "Newsletter".into()]).unwrap();
        let both = names.topics(["newsletter", "utility"]).unwrap();
        assert_eq!(names.names(both), ["utility", "newsletter"]);
        assert_eq!(names.topic("marketing"), Ok(TopicSet::MARKETING));
        assert!(names.topic("sports").is_err());
        assert!(both.kept() == both && !both.intersects(TopicSet::MARKETING));
        assert_eq!(TopicSet::of_category(Category::Utility), TopicSet::UTILITY);
        assert!(TopicNames::new(&["utility".into()]).is_err());
        let six: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
        assert_eq!(TopicNames::new(&six), Err(TopicError::TooMany(6)));
    }
}
