//! Identifiers the rules are keyed on: business phone numbers, accounts, portfolios and the
//! people they message, with E.164 parsing for the latter.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A message's id as wagate shows it (`wagate.` and 16 hex digits).
pub fn message_id_text(id: u64) -> String {
    format!("wagate.{id:016x}")
}

/// The message id in [`message_id_text`]'s form, if `text` is one.
pub fn parse_message_id(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("wagate.")?, 16).ok()
}

/// Meta's `phone_number_id` of a business phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PhoneNumberId(pub u64);

/// A WhatsApp Business Account (WABA); templates belong to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub u64);

/// A business portfolio; under `whatsapp-2025` the messaging limit lives here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortfolioId(pub u64);

/// A person's WhatsApp number in E.164, stored as its digits (at most 15, so it fits a `u64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Msisdn(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsisdnError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number contains '{0}', which is not a digit")]
    NotADigit(char),
    #[error("phone number has {0} digits; E.164 allows 8 to 15")]
    WrongLength(usize),
    #[error("phone number starts with 0; E.164 numbers start with a country code")]
    LeadingZero,
}

impl TryFrom<u64> for Msisdn {
    type Error = MsisdnError;

    fn try_from(digits: u64) -> Result<Self, MsisdnError> {
        Msisdn::from_digits(digits)
    }
}

impl From<Msisdn> for u64 {
    fn from(msisdn: Msisdn) -> u64 {
        msisdn.digits()
    }
}

/// Group keys: `999` and 13 digits ([`Msisdn::of_group`]).
const GROUP_KEY_BASE: u64 = 9_990_000_000_000_000;
const GROUP_KEY_SPAN: u64 = 10_000_000_000_000;

impl Msisdn {
    pub const MIN_DIGITS: usize = 8;
    pub const MAX_DIGITS: usize = 15;

    /// Parses `+16505551234` or `16505551234`; spaces, dashes and brackets are allowed as Meta
    /// allows them, anything else is an error.
    pub fn parse(text: &str) -> Result<Self, MsisdnError> {
        let body = text.trim();
        let body = body.strip_prefix('+').unwrap_or(body);
        let mut value: u64 = 0;
        let mut digits = 0usize;
        for ch in body.chars() {
            match ch {
                '0'..='9' => {
                    if digits == 0 && ch == '0' {
                        return Err(MsisdnError::LeadingZero);
                    }
                    digits += 1;
                    if digits <= Self::MAX_DIGITS {
                        value = value * 10 + u64::from(ch as u8 - b'0');
                    }
                }
                ' ' | '-' | '(' | ')' => {}
                other => return Err(MsisdnError::NotADigit(other)),
            }
        }
        if digits == 0 {
            return Err(MsisdnError::Empty);
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits) {
            return Err(MsisdnError::WrongLength(digits));
        }
        Ok(Msisdn(value))
    }

    /// The key a group (Meta's opaque group id) is decided, paced and stored under in place of
    /// a person: 16 digits starting 999 (a country code assigned to nobody), so that no E.164
    /// number, at most 15 digits, is ever one, and a rate card prices it as nowhere in
    /// particular.
    pub fn of_group(id: &str) -> Msisdn {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in id.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Msisdn(GROUP_KEY_BASE + crate::hash::mix64(hash) % GROUP_KEY_SPAN)
    }

    /// Whether this is a group's key ([`Msisdn::of_group`]), not a person.
    pub fn is_group(self) -> bool {
        self.0 >= GROUP_KEY_BASE
    }

    /// Builds from digits already known to be valid E.164 (tests, load generators), or a
    /// group's key read back.
    pub fn from_digits(value: u64) -> Result<Self, MsisdnError> {
        if (GROUP_KEY_BASE..GROUP_KEY_BASE + GROUP_KEY_SPAN).contains(&value) {
            return Ok(Msisdn(value));
        }
        let digits = value.checked_ilog10().map_or(0, |d| d as usize + 1);
        if value == 0 {
            return Err(MsisdnError::Empty);
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits) {
            return Err(MsisdnError::WrongLength(digits));
        }
        Ok(Msisdn(value))
    }

    pub fn digits(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meta_accepted_forms() {
        let expected = Msisdn::from_digits(16_505_551_234).unwrap();
        for text in ["+16505551234", "16505551234", "+1 (650) 555-1234"] {
            assert_eq!(Msisdn::parse(text), Ok(expected), "{text}");
        }
        assert_eq!(expected.to_string(), "+16505551234");
    }

    #[test]
    fn rejects_what_is_not_e164() {
        assert_eq!(Msisdn::parse(""), Err(MsisdnError::Empty));
        assert_eq!(
            Msisdn::parse("+1650555x234"),
            Err(MsisdnError::NotADigit('x'))
        );
        assert_eq!(Msisdn::parse("0650555123"), Err(MsisdnError::LeadingZero));
        assert_eq!(Msisdn::parse("1234567"), Err(MsisdnError::WrongLength(7)));
        assert_eq!(
            Msisdn::parse("1234567890123456"),
            Err(MsisdnError::WrongLength(16))
        );
        assert!(Msisdn::from_digits(0).is_err());
    }

    #[test]
    fn a_group_key_is_never_a_person_and_reads_back() {
        let key = Msisdn::of_group("Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjA");
        assert!(key.is_group());
        assert_eq!(key.digits().to_string().len(), 16);
        assert_eq!(Msisdn::from_digits(key.digits()), Ok(key));
        assert_ne!(key, Msisdn::of_group("another group"));
        assert!(!Msisdn::parse("+999 123 456 789 012").unwrap().is_group());
        assert!(Msisdn::parse(&key.digits().to_string()).is_err());
    }
}
