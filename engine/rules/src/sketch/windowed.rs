//! Rolling 24-hour and 7-day unique-recipient sketches, kept per shard and merged through a
//! shared histogram.
//!
//! Each shard keeps, for each limit scope it has sent to, a ring of hourly HyperLogLog buckets
//! over the registers it owns (persons are placed on shards by the same hash bits that pick
//! their register, so shards own disjoint register ranges). Two views, the maximum of the last
//! 25 and of the last 169 hourly buckets, are the 24 h and 7-day sketches; every change to a view
//! register is published to the scope's [`WindowSketches`] histograms, from which anyone reads the
//! merged estimate in O(50) without touching a shard.
//!
//! Window edge: a view holds the current hour plus 24 (or 168) whole hours before it, so it
//! covers between 24 h and 25 h (168 h and 169 h) of history. Admission at the limit never uses
//! this estimate; it uses the exact per-contact last send (see `state::expiry`).
//!
//! Memory per (shard, scope): the two views, sparse (4 bytes per register set) until they
//! would outgrow two arrays of one byte per owned register (64 KiB each on one shard; see
//! `views`), plus a bucket per active hour that is sparse (4 bytes per distinct recipient that
//! hour) until it would outgrow a dense register array.

use std::collections::VecDeque;

use super::hll::{index_and_rank, owned_registers, SharedHistogram};
use super::views::Views;
use crate::clock::{Secs, SECS_PER_HOUR};

pub const DAY_HOURS: u32 = 24;
pub const WEEK_HOURS: u32 = 168;

/// The merged sketches of one limit scope, shared by all shards.
#[derive(Debug, Default)]
pub struct WindowSketches {
    pub day: SharedHistogram,
    pub week: SharedHistogram,
}

impl WindowSketches {
    pub fn day_estimate(&self) -> u64 {
        self.day.estimate().round() as u64
    }

    pub fn week_estimate(&self) -> u64 {
        self.week.estimate().round() as u64
    }
}

#[derive(Debug)]
enum Registers {
    /// `local_index << 8 | rank`, appended unsorted, compacted when it doubles.
    Sparse {
        entries: Vec<u32>,
        compacted: usize,
    },
    Dense(Box<[u8]>),
}

#[derive(Debug)]
struct HourBucket {
    hour: u32,
    registers: Registers,
}

impl HourBucket {
    fn new(hour: u32) -> Self {
        HourBucket {
            hour,
            registers: Registers::Sparse {
                entries: Vec::new(),
                compacted: 0,
            },
        }
    }

    fn insert(&mut self, local: usize, rank: u8, owned: usize) {
        match &mut self.registers {
            Registers::Dense(registers) => {
                registers[local] = registers[local].max(rank);
            }
            Registers::Sparse { entries, compacted } => {
                entries.push((local as u32) << 8 | u32::from(rank));
                if entries.len() >= (*compacted * 2).max(64) {
                    compact(entries);
                    *compacted = entries.len();
                    // Four bytes an entry: past a quarter of the registers, dense is smaller.
                    if entries.len() > owned / 4 {
                        let mut dense = vec![0u8; owned].into_boxed_slice();
                        for entry in entries.iter() {
                            let (index, rank) = ((entry >> 8) as usize, *entry as u8);
                            dense[index] = dense[index].max(rank);
                        }
                        self.registers = Registers::Dense(dense);
                    }
                }
            }
        }
    }

    /// Raises `views` to this hour's registers: the week view, and the day view if `in_day`.
    fn merge_into(&self, views: &mut Views, in_day: bool) {
        match &self.registers {
            Registers::Dense(registers) => views.raise_all(registers, in_day),
            Registers::Sparse { entries, .. } => {
                for entry in entries {
                    views.raise((entry >> 8) as usize, *entry as u8, in_day);
                }
            }
        }
    }
}

/// Sorts and keeps the highest rank per register.
fn compact(entries: &mut Vec<u32>) {
    entries.sort_unstable();
    let mut write = 0;
    for read in 0..entries.len() {
        let entry = entries[read];
        if write > 0 && entries[write - 1] >> 8 == entry >> 8 {
            entries[write - 1] = entry; // sorted, so the later one has the higher rank
        } else {
            entries[write] = entry;
            write += 1;
        }
    }
    entries.truncate(write);
}

/// One shard's share of one scope's rolling sketches.
#[derive(Debug)]
pub struct ShardSketch {
    first_register: usize,
    buckets: VecDeque<HourBucket>,
    views: Views,
    view_hour: u32,
}

impl ShardSketch {
    pub fn new(shard: usize, shards: usize) -> Self {
        let owned = owned_registers(shard, shards);
        ShardSketch {
            first_register: owned.start,
            buckets: VecDeque::new(),
            views: Views::new(owned.len()),
            view_hour: 0,
        }
    }

    /// Records a business-initiated send to the person with hash `hash` at `at`.
    pub fn insert(&mut self, shared: &WindowSketches, hash: u64, at: Secs) {
        let hour = (at / SECS_PER_HOUR).max(self.view_hour);
        self.advance_to_hour(shared, hour);
        let (index, rank) = index_and_rank(hash);
        let local = index - self.first_register;
        if self.buckets.back().is_none_or(|b| b.hour != hour) {
            self.buckets.push_back(HourBucket::new(hour));
        }
        let owned = self.views.owned();
        if let Some(bucket) = self.buckets.back_mut() {
            bucket.insert(local, rank, owned);
        }
        let (day, week) = self.views.get(local);
        if rank > day {
            shared.day.moved(day, rank);
        }
        if rank > week {
            shared.week.moved(week, rank);
        }
        if rank > day || rank > week {
            self.views.set(local, day.max(rank), week.max(rank));
        }
    }

    /// Slides both windows to `now`, dropping hours that left them.
    pub fn advance(&mut self, shared: &WindowSketches, now: Secs) {
        self.advance_to_hour(shared, now / SECS_PER_HOUR);
    }

    fn advance_to_hour(&mut self, shared: &WindowSketches, hour: u32) {
        if hour <= self.view_hour {
            return;
        }
        self.view_hour = hour;
        let oldest_kept = hour.saturating_sub(WEEK_HOURS);
        while self.buckets.front().is_some_and(|b| b.hour < oldest_kept) {
            self.buckets.pop_front();
        }
        let day_start = hour.saturating_sub(DAY_HOURS);
        let mut views = Views::new(self.views.owned());
        if self
            .buckets
            .iter()
            .any(|b| matches!(b.registers, Registers::Dense(_)))
        {
            views.make_dense();
        }
        for bucket in &self.buckets {
            bucket.merge_into(&mut views, bucket.hour >= day_start);
        }
        let (day_before, week_before) = self.views.histograms();
        let (day_after, week_after) = views.histograms();
        shared.day.apply_difference(&day_before, &day_after);
        shared.week.apply_difference(&week_before, &week_after);
        self.views = views;
    }

    /// Bytes this sketch holds on the heap (views and buckets).
    pub fn heap_bytes(&self) -> usize {
        let buckets: usize = self
            .buckets
            .iter()
            .map(|b| match &b.registers {
                Registers::Dense(r) => r.len(),
                Registers::Sparse { entries, .. } => entries.capacity() * 4,
            })
            .sum();
        self.views.heap_bytes() + buckets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SECS_PER_DAY;
    use crate::hash::mix64;
    use crate::sketch::hll::shard_of_register;

    fn within(estimate: u64, truth: u64, tolerance: f64) -> bool {
        (estimate as f64 - truth as f64).abs() <= truth as f64 * tolerance
    }

    #[test]
    fn estimates_within_one_percent_at_100k_uniques() {
        let shared = WindowSketches::default();
        let mut sketch = ShardSketch::new(0, 1);
        let start: Secs = 100 * SECS_PER_DAY;
        // 100,000 distinct recipients spread over 20 hours, some of them sent to twice.
        for person in 0..100_000u64 {
            let at = start + (person * 20 * u64::from(SECS_PER_HOUR) / 100_000) as u32;
            sketch.insert(&shared, mix64(16_500_000_000 + person), at);
            if person % 7 == 0 {
                sketch.insert(&shared, mix64(16_500_000_000 + person / 2), at);
            }
        }
        assert!(
            within(shared.day_estimate(), 100_000, 0.01),
            "{}",
            shared.day_estimate()
        );
        assert!(
            within(shared.week_estimate(), 100_000, 0.01),
            "{}",
            shared.week_estimate()
        );
    }

    #[test]
    fn recipients_leave_the_day_view_after_a_day_and_the_week_view_after_a_week() {
        let shared = WindowSketches::default();
        let mut sketch = ShardSketch::new(0, 1);
        let start: Secs = 100 * SECS_PER_DAY;
        for person in 0..5_000u64 {
            sketch.insert(&shared, mix64(person), start);
        }
        let next_day = start + 25 * SECS_PER_HOUR;
        for person in 5_000..7_000u64 {
            sketch.insert(&shared, mix64(person), next_day);
        }
        assert!(
            within(shared.day_estimate(), 2_000, 0.01),
            "{}",
            shared.day_estimate()
        );
        assert!(
            within(shared.week_estimate(), 7_000, 0.01),
            "{}",
            shared.week_estimate()
        );
        sketch.advance(&shared, start + 170 * SECS_PER_HOUR);
        assert!(
            within(shared.week_estimate(), 2_000, 0.01),
            "{}",
            shared.week_estimate()
        );
        assert_eq!(shared.day_estimate(), 0);
        sketch.advance(&shared, next_day + 170 * SECS_PER_HOUR);
        assert_eq!(shared.week_estimate(), 0);
    }

    #[test]
    fn shards_with_disjoint_registers_add_up_to_one_sketch() {
        let shards = 3;
        let shared = WindowSketches::default();
        let mut sketches: Vec<_> = (0..shards).map(|s| ShardSketch::new(s, shards)).collect();
        let single_shared = WindowSketches::default();
        let mut single = ShardSketch::new(0, 1);
        for person in 0..30_000u64 {
            let hash = mix64(person);
            let (index, _) = index_and_rank(hash);
            sketches[shard_of_register(index, shards)].insert(&shared, hash, 1_000_000);
            single.insert(&single_shared, hash, 1_000_000);
        }
        assert_eq!(shared.day.snapshot(), single_shared.day.snapshot());
        assert!(within(shared.day_estimate(), 30_000, 0.01));
    }

    #[test]
    fn compaction_keeps_the_highest_rank_per_register() {
        let mut entries = vec![5 << 8 | 3, 2 << 8 | 1, 5 << 8 | 9, 2 << 8 | 4, 7 << 8 | 2];
        compact(&mut entries);
        assert_eq!(entries, vec![2 << 8 | 4, 5 << 8 | 9, 7 << 8 | 2]);
    }
}
