//! Where a campaign's parts lie in [`wagate_store::Family::Campaigns`]: its record, its
//! audience by position, and its delivery counters, each under the campaign's id so that one
//! range holds a campaign whole.

const RECORD: u8 = 1;
const AUDIENCE: u8 = 2;
const COUNTER: u8 = 3;

pub(crate) fn record(id: u64) -> [u8; 9] {
    let mut key = [RECORD; 9];
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

/// All records: `[start, end)`.
pub(crate) fn records() -> ([u8; 1], [u8; 1]) {
    ([RECORD], [RECORD + 1])
}

pub(crate) fn audience(id: u64, position: u64) -> [u8; 17] {
    let mut key = [AUDIENCE; 17];
    key[1..9].copy_from_slice(&id.to_be_bytes());
    key[9..].copy_from_slice(&position.to_be_bytes());
    key
}

/// The counter of Meta's charges (beside the delivery states' counters, by their bytes).
pub(crate) const CHARGED: u8 = 0xC0;

pub(crate) fn counter(id: u64, what: u8) -> [u8; 10] {
    let mut key = [COUNTER; 10];
    key[1..9].copy_from_slice(&id.to_be_bytes());
    key[9] = what;
    key
}

/// What the idempotency key of a campaign's send starts with; its id and position follow.
pub(crate) const SEND_KEY_PREFIX: &str = "wagate-campaign-";

pub(crate) fn send_key(id: u64, position: u64) -> String {
    format!("{SEND_KEY_PREFIX}{id}-{position}")
}

/// The campaign a send belongs to, from its idempotency key (0: none).
pub(crate) fn campaign_of(idempotency_key: &str) -> u64 {
    idempotency_key
        .strip_prefix(SEND_KEY_PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_send_names_its_campaign_and_others_none() {
        assert_eq!(super::campaign_of(&super::send_key(42, 7)), 42);
        assert_eq!(super::campaign_of("order-42"), 0);
        assert_eq!(super::campaign_of(""), 0);
    }
}
