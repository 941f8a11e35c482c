//! Key and value encodings, one function pair per record. Keys are fixed-width big-endian so
//! that byte order is numeric order; values are little-endian fixed layouts.
//!
//! | family | key | value |
//! |---|---|---|
//! | contacts | register u16, person u64, scope u32 (14 B) | `ContactRecord`, 36 B |
//! | outbox | message id u64 | `StoredMessage`, pending or in flight |
//! | messages | message id u64 | `StoredMessage`, settled (moved here from the outbox) |
//! | idempotency | number u64, key bytes | expiry u64 BE, body hash u64, outcome |
//! | ledger | number u64, day u32, category u8, `E`/`R`, market name | messages u64, micro-dollars u64 |
//! | upstream_ids | the upstream's id (wamid) bytes | message id u64 BE |
//! | registry | kind u8, id u64 (templates: kind, hash u64, account/name/language; calls and volume tiers: see [`registry_kind`]) | JSON or as named |
//! | meta | ASCII name | as named |
//!
//! Contacts lead with the person's sketch register, which is what places a person on a shard:
//! each shard's contacts are one contiguous key range, scanned in parallel at start-up.

use wagate_rules::clock::Secs;
use wagate_rules::state::contact::ContactRecord;
use wagate_rules::state::contact_table::ContactKey;

pub const CONTACT_KEY_LEN: usize = 14;
pub const CONTACT_VALUE_LEN: usize = 36;
/// A contact written before it carried the free entry point window.
const CONTACT_VALUE_LEN_BEFORE_FEP: usize = 32;

pub fn contact_key(register: u16, key: &ContactKey) -> [u8; CONTACT_KEY_LEN] {
    let mut out = [0u8; CONTACT_KEY_LEN];
    out[..2].copy_from_slice(&register.to_be_bytes());
    out[2..10].copy_from_slice(&key.person.to_be_bytes());
    out[10..].copy_from_slice(&key.scope.to_be_bytes());
    out
}

pub fn decode_contact_key(bytes: &[u8]) -> Option<(u16, ContactKey)> {
    if bytes.len() != CONTACT_KEY_LEN {
        return None;
    }
    Some((
        u16::from_be_bytes(bytes[..2].try_into().ok()?),
        ContactKey {
            person: u64::from_be_bytes(bytes[2..10].try_into().ok()?),
            scope: u32::from_be_bytes(bytes[10..].try_into().ok()?),
        },
    ))
}

/// The first key of register `register`'s contacts (scan bounds).
pub fn contact_range_start(register: usize) -> Vec<u8> {
    if register > usize::from(u16::MAX) {
        return vec![0xff; 3];
    }
    (register as u16).to_be_bytes().to_vec()
}

pub fn encode_contact(record: &ContactRecord) -> [u8; CONTACT_VALUE_LEN] {
    let mut out = [0u8; CONTACT_VALUE_LEN];
    let times: [Secs; 7] = [
        record.window_until,
        record.last_business_initiated,
        record.pair_tat,
        record.consent_at,
        record.marketing_cooldown_until,
        record.marketing_sends[0],
        record.marketing_sends[1],
    ];
    for (i, time) in times.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&time.to_le_bytes());
    }
    out[28..30].copy_from_slice(&record.flags.to_le_bytes());
    out[30] = record.consent_source;
    out[32..36].copy_from_slice(&record.fep_until.to_le_bytes());
    out
}

pub fn decode_contact(bytes: &[u8]) -> Option<ContactRecord> {
    if bytes.len() != CONTACT_VALUE_LEN && bytes.len() != CONTACT_VALUE_LEN_BEFORE_FEP {
        return None;
    }
    // The length is checked above: every slice below is exactly as long as its array.
    let time =
        |i: usize| u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap_or_default());
    let mut record = ContactRecord::default();
    record.window_until = time(0);
    record.last_business_initiated = time(1);
    record.pair_tat = time(2);
    record.consent_at = time(3);
    record.marketing_cooldown_until = time(4);
    record.marketing_sends = [time(5), time(6)];
    record.flags = u16::from_le_bytes([bytes[28], bytes[29]]);
    record.consent_source = bytes[30];
    if bytes.len() == CONTACT_VALUE_LEN {
        record.fep_until = time(8);
    }
    Some(record)
}

pub fn message_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Queued sends in due order: (due time in microseconds, message id), both big-endian.
pub fn deferred_key(due_micros: u64, id: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&due_micros.to_be_bytes());
    out[8..].copy_from_slice(&id.to_be_bytes());
    out
}

pub fn idempotency_key(number: u64, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

/// Which of a ledger row's two sums a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerSide {
    /// wagate's estimate at acceptance.
    Estimate,
    /// What Meta's status webhooks said it charged.
    Reconciled,
}

/// A ledger row's key, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerRowKey<'a> {
    pub number: u64,
    /// Days since the Unix epoch (UTC).
    pub day: u32,
    pub category: u8,
    pub side: LedgerSide,
    /// The market's name (`""` when the card has none, and in rows written before markets).
    pub market: &'a str,
}

/// A ledger row: `[number u64 BE][day u32 BE][category u8][E|R][market name]`, so one number's
/// rows sort by day. Rows written before markets were kept (`[...category]` for the estimate,
/// `[...category]R` for the reconciled) read as rows of market `""`.
pub fn ledger_key(row: &LedgerRowKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + row.market.len());
    out.extend_from_slice(&row.number.to_be_bytes());
    out.extend_from_slice(&row.day.to_be_bytes());
    out.push(row.category);
    out.push(match row.side {
        LedgerSide::Estimate => b'E',
        LedgerSide::Reconciled => b'R',
    });
    out.extend_from_slice(row.market.as_bytes());
    out
}

pub fn decode_ledger_key(bytes: &[u8]) -> Option<LedgerRowKey<'_>> {
    if bytes.len() < 13 {
        return None;
    }
    let (side, market) = match bytes.get(13) {
        None | Some(b'E') => (LedgerSide::Estimate, bytes.get(14..).unwrap_or_default()),
        Some(b'R') => (LedgerSide::Reconciled, &bytes[14..]),
        Some(_) => return None,
    };
    Some(LedgerRowKey {
        number: u64::from_be_bytes(bytes[..8].try_into().ok()?),
        day: u32::from_be_bytes(bytes[8..12].try_into().ok()?),
        category: bytes[12],
        side,
        market: std::str::from_utf8(market).ok()?,
    })
}

pub mod registry_kind {
    pub const NUMBER: u8 = 1;
    pub const SCOPE: u8 = 2;
    pub const TEMPLATE: u8 = 3;
    /// Calls counted against one of Meta's moving-window limits: `[kind][limit u8][id u64]`,
    /// the calls' Unix seconds (u64 LE each).
    pub const CALLS: u8 = 4;
    /// Meta's volume tier of a portfolio: `[kind][portfolio u64][category u8][market name]`,
    /// `[month u32][from u32][to u32]` LE (`to` 0: the top tier).
    pub const VOLUME_TIER: u8 = 5;
    /// A person erased from a business, as a salted hash: `[kind][hash 16 bytes]`, the
    /// erasure's Unix seconds (u64 BE).
    pub const SUPPRESSED: u8 = 6;
    /// An erasure not finished yet: `[kind][account u64][person u64]`, see
    /// `wagate_durable::erasure`.
    pub const ERASING: u8 = 7;
}

pub fn registry_key(kind: u8, id: u64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = kind;
    out[1..].copy_from_slice(&id.to_be_bytes());
    out
}

/// A little-endian reader over a value, for the variable-length records.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }

    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

/// The writing side of [`Reader`].
#[derive(Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes.push(value);
        self
    }

    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.u32(value.len() as u32);
        self.bytes.extend_from_slice(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_rules::state::contact::flags;

    #[test]
    fn contact_round_trips_and_keys_sort_by_register_then_person() {
        let mut record = ContactRecord::default();
        record.window_until = 1;
        record.last_business_initiated = 2;
        record.pair_tat = 3;
        record.consent_at = 4;
        record.marketing_cooldown_until = 5;
        record.marketing_sends = [6, 7];
        record.set(flags::OPTED_IN | flags::UNREACHABLE, true);
        record.consent_source = 3;
        assert_eq!(decode_contact(&encode_contact(&record)), Some(record));
        let key = ContactKey {
            person: 4_915_100_000_001,
            scope: 7,
        };
        assert_eq!(
            decode_contact_key(&contact_key(513, &key)),
            Some((513, key))
        );
        let low = contact_key(
            1,
            &ContactKey {
                person: u64::MAX,
                scope: u32::MAX,
            },
        );
        let high = contact_key(
            2,
            &ContactKey {
                person: 1,
                scope: 0,
            },
        );
        assert!(low < high);
        assert!(
            contact_range_start(2).as_slice() <= &high[..]
                && &low[..] < contact_range_start(2).as_slice()
        );
    }

    #[test]
    fn reader_reads_what_writer_wrote_and_stops_at_the_end() {
        let mut writer = Writer::default();
        writer.u8(9).u32(70_000).u64(u64::MAX).bytes(b"payload");
        let mut reader = Reader::new(&writer.bytes);
        assert_eq!(reader.u8(), Some(9));
        assert_eq!(reader.u32(), Some(70_000));
        assert_eq!(reader.u64(), Some(u64::MAX));
        assert_eq!(reader.string().as_deref(), Some("payload"));
        assert_eq!(reader.u8(), None);
    }

    #[test]
    fn ledger_keys_round_trip_and_rows_from_before_markets_read_as_no_market() {
        let row = LedgerRowKey {
            number: 5,
            day: 20_000,
            category: 2,
            side: LedgerSide::Reconciled,
            market: "Rest of Africa",
        };
        assert_eq!(decode_ledger_key(&ledger_key(&row)), Some(row));
        let mut old = ledger_key(&LedgerRowKey {
            market: "",
            side: LedgerSide::Estimate,
            ..row
        });
        old.pop();
        let decoded = decode_ledger_key(&old).expect("old estimate row");
        assert_eq!((decoded.side, decoded.market), (LedgerSide::Estimate, ""));
        old.push(b'R');
        let decoded = decode_ledger_key(&old).expect("old reconciled row");
        assert_eq!((decoded.side, decoded.market), (LedgerSide::Reconciled, ""));
        old.push(b'x');
        old[13] = b'?';
        assert_eq!(decode_ledger_key(&old), None);
    }
}
