//! A campaign's audience as it arrives: the lines the caller sent, the people already seen in
//! an upload under way, and an entry as kept (the person, then their send's body).

use std::collections::HashSet;

use wagate_rules::ids::Msisdn;

use super::record::Campaign;

/// One line of an audience as the caller sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceLine {
    /// A person and the Cloud API body of their send.
    Person { to: Msisdn, payload: Vec<u8> },
    /// A line that names nobody wagate can send to (its reason, for the count).
    Invalid,
}

/// The people of the uploads under way, by campaign: a person listed twice is sent once.
#[derive(Default)]
pub struct Seen(pub(crate) std::sync::Mutex<std::collections::HashMap<u64, HashSet<u64>>>);

/// An audience entry's person and payload.
pub(crate) fn read_entry(value: &[u8]) -> Option<(Msisdn, &[u8])> {
    let digits = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    Some((Msisdn::from_digits(digits).ok()?, &value[8..]))
}

impl Campaign {
    /// People of the audience not fed yet.
    pub fn left(&self) -> u64 {
        self.audience.saturating_sub(self.cursor)
    }
}
