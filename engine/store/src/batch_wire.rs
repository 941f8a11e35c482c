//! A [`Batch`] as bytes, for a store that ships its writes elsewhere before applying them
//! (cluster mode's changelog): the batch's buffer as it is, then each write's family, kind and
//! where its key and value lie. Decoding checks every range, so a damaged record is refused
//! whole, never half applied.

use super::{Batch, Entry, Family, Kind, StoreError};

/// Format version, first byte of every encoded batch.
const VERSION: u8 = 1;
/// Bytes of one encoded write: family, kind, four offsets.
const ENTRY_LEN: usize = 2 + 4 * 4;

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Put => 0,
        Kind::Delete => 1,
        Kind::Add => 2,
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("an encoded batch {what}"))
}

impl Batch {
    /// Appends this batch's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(9 + self.data.len() + self.entries.len() * ENTRY_LEN);
        out.push(VERSION);
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for entry in &self.entries {
            let family = Family::ALL
                .iter()
                .position(|f| *f == entry.family)
                .unwrap_or_default() as u8;
            out.push(family);
            out.push(kind_code(entry.kind));
            for offset in [entry.key.0, entry.key.1, entry.value.0, entry.value.1] {
                out.extend_from_slice(&offset.to_le_bytes());
            }
        }
    }

    /// The batch `encode` wrote into `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Batch, StoreError> {
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&[u8], StoreError> {
            if rest.len() < n {
                return Err(corrupt("ends early"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if take(1)?[0] != VERSION {
            return Err(corrupt("has an unknown version"));
        }
        let data_len = u32_at(take(4)?, 0) as usize;
        let data = take(data_len)?.to_vec();
        let count = u32_at(take(4)?, 0) as usize;
        let mut entries = Vec::with_capacity(count.min(bytes.len() / ENTRY_LEN));
        for _ in 0..count {
            let raw = take(ENTRY_LEN)?;
            let family = *Family::ALL
                .get(raw[0] as usize)
                .ok_or_else(|| corrupt("names an unknown column family"))?;
            let kind = match raw[1] {
                0 => Kind::Put,
                1 => Kind::Delete,
                2 => Kind::Add,
                _ => return Err(corrupt("has an unknown kind of write")),
            };
            let key = (u32_at(raw, 2), u32_at(raw, 6));
            let value = (u32_at(raw, 10), u32_at(raw, 14));
            let in_data = |(from, to): (u32, u32)| from <= to && to as usize <= data.len();
            if !in_data(key) || !in_data(value) {
                return Err(corrupt("points outside its buffer"));
            }
            entries.push(Entry {
                family,
                kind,
                key,
                value,
            });
        }
        if !rest.is_empty() {
            return Err(corrupt("has bytes after its end"));
        }
        Ok(Batch { data, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Batch {
        let mut batch = Batch::default();
        batch.put(Family::Outbox, b"m1", b"body");
        batch.delete(Family::Deferred, b"d1");
        batch.add(Family::Ledger, b"l1", 1, 250);
        batch.put(Family::Groups, b"", b"");
        batch
    }

    #[test]
    fn a_batch_comes_back_as_it_was_encoded() {
        let batch = sample();
        let mut bytes = Vec::new();
        batch.encode(&mut bytes);
        assert_eq!(Batch::decode(&bytes), Ok(batch));
        let mut empty = Vec::new();
        Batch::default().encode(&mut empty);
        assert_eq!(Batch::decode(&empty), Ok(Batch::default()));
    }

    #[test]
    fn a_damaged_encoding_is_refused_whole() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        for cut in 0..bytes.len() {
            assert!(Batch::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Batch::decode(&longer).is_err());
        let mut wrong_family = bytes.clone();
        let first_entry = 1 + 4 + sample().bytes() + 4;
        wrong_family[first_entry] = 200;
        assert!(Batch::decode(&wrong_family).is_err());
        let mut outside = bytes;
        outside[first_entry + 2 + 4] = 255;
        assert!(Batch::decode(&outside).is_err());
    }
}
