//! What a shard holds on the heap, by part, for memory reports.

use std::iter::Sum;
use std::ops::Add;

/// Heap bytes of a shard's (or an engine's) contact table, expiry queues and sketches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapBytes {
    pub contacts: usize,
    pub expiry: usize,
    pub sketches: usize,
}

impl HeapBytes {
    pub fn total(&self) -> usize {
        self.contacts + self.expiry + self.sketches
    }
}

impl Add for HeapBytes {
    type Output = HeapBytes;
    fn add(self, other: HeapBytes) -> HeapBytes {
        HeapBytes {
            contacts: self.contacts + other.contacts,
            expiry: self.expiry + other.expiry,
            sketches: self.sketches + other.sketches,
        }
    }
}

impl Sum for HeapBytes {
    fn sum<I: Iterator<Item = HeapBytes>>(parts: I) -> HeapBytes {
        parts.fold(HeapBytes::default(), Add::add)
    }
}
