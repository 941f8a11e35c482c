//! The one hash of a person's number that every structure agrees on.
//!
//! Shard placement, the contact table and the HyperLogLog sketches all derive from the same
//! 64-bit mix, so that a shard owns a fixed slice of sketch registers (which is what makes the
//! per-shard sketches add up without locks; see `sketch`).

/// SplitMix64's finaliser: a bijective mix with full avalanche, cheap enough for the hot path.
#[inline]
pub fn mix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a hash onto `0..n` without a division (Lemire's multiply-shift).
#[inline]
pub fn reduce(hash: u64, n: usize) -> usize {
    ((u128::from(hash) * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_stays_in_range_and_spreads() {
        let n = 7;
        let mut seen = [0u32; 7];
        for i in 0..7_000u64 {
            let slot = reduce(mix64(i), n);
            seen[slot] += 1;
        }
        for count in seen {
            assert!((800..1200).contains(&count), "{seen:?}");
        }
    }
}

/// A `Hasher` for the core's small integer keys, built on [`mix64`]; std's SipHash costs more
/// than the rest of a decision's lookups together.
#[derive(Default, Clone, Copy)]
pub struct MixHasher(u64);

impl std::hash::Hasher for MixHasher {
    #[inline]
    fn finish(&self) -> u64 {
        mix64(self.0)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.0 = mix64(self.0 ^ value).rotate_left(5);
    }

    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    #[inline]
    fn write_u16(&mut self, value: u16) {
        self.write_u64(u64::from(value));
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.write_u64(u64::from(value));
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

pub type MixBuildHasher = std::hash::BuildHasherDefault<MixHasher>;
pub type MixHashMap<K, V> = std::collections::HashMap<K, V, MixBuildHasher>;
