//! Consent keywords as the operator writes them: per language (`[consent.keywords.en]`,
//! `[consent.keywords.es]`, ...) for every number, and a tenant's own (`[tenants.keywords.*]`)
//! for its numbers. Every language's words are matched together: a person may write in any.

use std::collections::BTreeMap;

use serde::Deserialize;
use wagate_rules::config::{ConsentKeywords, NumberKeywords};
use wagate_rules::ids::PhoneNumberId;

/// Keywords by language.
pub type KeywordsByLanguage = BTreeMap<String, ConsentKeywords>;

/// `[consent]`: the keywords of every number without a tenant's own (the built-in lists, in
/// English, Russian and Spanish, when none are given), and the topics the operator names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentSection {
    pub keywords: KeywordsByLanguage,
    /// Consent topics besides marketing, utility and authentication (at most five), e.g.
    /// `["order_updates", "newsletter"]`: a template may name one.
    pub topics: Vec<String>,
}

/// The languages' lists as one; the built-in lists when no language is given.
pub fn merged(languages: &KeywordsByLanguage) -> ConsentKeywords {
    if languages.is_empty() {
        return ConsentKeywords::default();
    }
    let mut all = ConsentKeywords::none();
    for words in languages.values() {
        all.extend(words);
    }
    all
}

/// A tenant's own lists for its numbers (none when it gives no language).
pub fn of_tenant(numbers: &[u64], languages: &KeywordsByLanguage) -> Option<NumberKeywords> {
    (!languages.is_empty()).then(|| NumberKeywords {
        numbers: numbers.iter().map(|n| PhoneNumberId(*n)).collect(),
        keywords: merged(languages),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_merge_and_none_means_the_built_in_lists() {
        assert_eq!(merged(&BTreeMap::new()), ConsentKeywords::default());
        let section: ConsentSection = toml::from_str(
            "[keywords.en]\nopt_out = [\"STOP\"]\nopt_in = [\"START\"]\n\
             [keywords.es]\nopt_out = [\"BAJA\"]\nmarketing_opt_out = [\"BAJA PROMOS\"]\n",
        )
        .expect("valid");
        let all = merged(&section.keywords);
        assert_eq!(all.opt_out, ["STOP", "BAJA"]);
        assert_eq!(all.marketing_opt_out, ["BAJA PROMOS"]);
        assert!(all.opt_out_payloads.is_empty(), "only what was given");
        assert!(of_tenant(&[1], &BTreeMap::new()).is_none());
        assert_eq!(
            of_tenant(&[1, 2], &section.keywords).map(|t| t.numbers.len()),
            Some(2)
        );
        assert!(toml::from_str::<ConsentSection>("[keywords.en]\nstop = []\n").is_err());
    }
}
