//! A shard's day and week views of one scope's registers: sparse while few registers are set,
//! dense past that.
//!
//! Two dense views cost two bytes per owned register (128 KiB per scope on one shard) whatever
//! the scope sends; a number that reached a few thousand people would pay that for each. While
//! few registers are set, both views live in one open-addressing table of 4-byte entries
//! (register, day rank, week rank), which turns into the two arrays when it would outgrow
//! them. Lookups are the same either way, so the estimates do not depend on the form.

use super::hll::BINS;

/// The local register index plus one (0 marks a free entry), then the day rank, the week rank.
const INDEX_SHIFT: u32 = 12;
const RANK_BITS: u32 = 6;
const RANK_MASK: u32 = (1 << RANK_BITS) - 1;
const MIN_ENTRIES: usize = 64;

#[derive(Debug)]
enum Form {
    Sparse { entries: Vec<u32>, len: usize },
    Dense { day: Box<[u8]>, week: Box<[u8]> },
}

/// The day and week ranks of each of `owned` registers.
#[derive(Debug)]
pub(super) struct Views {
    owned: usize,
    form: Form,
}

#[inline]
fn entry_of(local: usize, day: u8, week: u8) -> u32 {
    ((local as u32 + 1) << INDEX_SHIFT) | (u32::from(day) << RANK_BITS) | u32::from(week)
}

#[inline]
fn local_of(entry: u32) -> usize {
    (entry >> INDEX_SHIFT) as usize - 1
}

#[inline]
fn ranks_of(entry: u32) -> (u8, u8) {
    (
        ((entry >> RANK_BITS) & RANK_MASK) as u8,
        (entry & RANK_MASK) as u8,
    )
}

/// Where `local`'s entry is, or the free entry it would take (capacity a power of two).
#[inline]
fn probe(entries: &[u32], local: usize) -> usize {
    let mask = entries.len() - 1;
    // Register indices are already hash bits; the multiply spreads runs of neighbours.
    let mut at = (local as u32).wrapping_mul(0x9E37_79B1) as usize & mask;
    loop {
        let entry = entries[at];
        if entry == 0 || local_of(entry) == local {
            return at;
        }
        at = (at + 1) & mask;
    }
}

impl Views {
    pub(super) fn new(owned: usize) -> Views {
        Views {
            owned,
            form: Form::Sparse {
                entries: Vec::new(),
                len: 0,
            },
        }
    }

    /// The registers these views cover.
    pub(super) fn owned(&self) -> usize {
        self.owned
    }

    /// The (day, week) ranks of register `local`.
    #[inline]
    pub(super) fn get(&self, local: usize) -> (u8, u8) {
        match &self.form {
            Form::Dense { day, week } => (day[local], week[local]),
            Form::Sparse { entries, .. } => {
                if entries.is_empty() {
                    return (0, 0);
                }
                let entry = entries[probe(entries, local)];
                if entry == 0 {
                    (0, 0)
                } else {
                    ranks_of(entry)
                }
            }
        }
    }

    /// Sets the (day, week) ranks of register `local`; a register never goes back to zero
    /// here (views are rebuilt whole when hours leave them).
    #[inline]
    pub(super) fn set(&mut self, local: usize, day_rank: u8, week_rank: u8) {
        debug_assert!(local < self.owned);
        if let Form::Sparse { entries, len } = &mut self.form {
            let full = entries.is_empty() || (*len + 1) * 4 > entries.len() * 3;
            if full && !self.grow_sparse() {
                self.densify();
            }
        }
        match &mut self.form {
            Form::Dense { day, week } => {
                day[local] = day_rank;
                week[local] = week_rank;
            }
            Form::Sparse { entries, len } => {
                let at = probe(entries, local);
                if entries[at] == 0 {
                    *len += 1;
                }
                entries[at] = entry_of(local, day_rank, week_rank);
            }
        }
    }

    /// Doubles the sparse table, unless the doubled table would outgrow the dense arrays.
    fn grow_sparse(&mut self) -> bool {
        let Form::Sparse { entries, .. } = &mut self.form else {
            return true;
        };
        let capacity = (entries.len() * 2).max(MIN_ENTRIES);
        if capacity * 4 > self.owned * 2 {
            return false;
        }
        let old = std::mem::replace(entries, vec![0; capacity]);
        for entry in old.into_iter().filter(|e| *e != 0) {
            let at = probe(entries, local_of(entry));
            entries[at] = entry;
        }
        true
    }

    /// Takes the dense form now (a rebuild that will set many registers).
    pub(super) fn make_dense(&mut self) {
        if matches!(self.form, Form::Sparse { .. }) {
            self.densify();
        }
    }

    /// Raises every register to at least `registers` (a dense hour bucket), in the week view
    /// and, if `in_day`, the day view. Vectorises when both are dense.
    pub(super) fn raise_all(&mut self, registers: &[u8], in_day: bool) {
        match &mut self.form {
            Form::Dense { day, week } => {
                for (slot, value) in week.iter_mut().zip(registers) {
                    *slot = (*slot).max(*value);
                }
                if in_day {
                    for (slot, value) in day.iter_mut().zip(registers) {
                        *slot = (*slot).max(*value);
                    }
                }
            }
            Form::Sparse { .. } => {
                for (local, rank) in registers.iter().enumerate().filter(|(_, r)| **r != 0) {
                    self.raise(local, *rank, in_day);
                }
            }
        }
    }

    /// Raises register `local` to at least `rank` in the week view and, if `in_day`, the day's.
    #[inline]
    pub(super) fn raise(&mut self, local: usize, rank: u8, in_day: bool) {
        let (old_day, old_week) = self.get(local);
        let day = if in_day { old_day.max(rank) } else { old_day };
        let week = old_week.max(rank);
        if (day, week) != (old_day, old_week) {
            self.set(local, day, week);
        }
    }

    fn densify(&mut self) {
        let mut day = vec![0u8; self.owned].into_boxed_slice();
        let mut week = vec![0u8; self.owned].into_boxed_slice();
        if let Form::Sparse { entries, .. } = &self.form {
            for entry in entries.iter().filter(|e| **e != 0) {
                let (d, w) = ranks_of(*entry);
                day[local_of(*entry)] = d;
                week[local_of(*entry)] = w;
            }
        }
        self.form = Form::Dense { day, week };
    }

    /// The histograms of register values of the day and the week view.
    pub(super) fn histograms(&self) -> ([u32; BINS], [u32; BINS]) {
        let mut day = [0u32; BINS];
        let mut week = [0u32; BINS];
        match &self.form {
            Form::Dense { day: d, week: w } => {
                for value in d.iter() {
                    day[usize::from(*value)] += 1;
                }
                for value in w.iter() {
                    week[usize::from(*value)] += 1;
                }
            }
            Form::Sparse { entries, len } => {
                for entry in entries.iter().filter(|e| **e != 0) {
                    let (d, w) = ranks_of(*entry);
                    day[usize::from(d)] += 1;
                    week[usize::from(w)] += 1;
                }
                // Registers without an entry are zero in both views.
                day[0] += (self.owned - len) as u32;
                week[0] += (self.owned - len) as u32;
            }
        }
        (day, week)
    }

    pub(super) fn heap_bytes(&self) -> usize {
        match &self.form {
            Form::Dense { day, week } => day.len() + week.len(),
            Form::Sparse { entries, .. } => entries.capacity() * 4,
        }
    }

    #[cfg(test)]
    fn is_dense(&self) -> bool {
        matches!(self.form, Form::Dense { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_and_dense_read_alike_and_the_table_turns_dense_when_it_would_outgrow_the_arrays() {
        let owned = 65_536;
        let mut views = Views::new(owned);
        let mut model = vec![(0u8, 0u8); owned];
        for step in 0..40_000usize {
            // An odd multiplier: 40,000 distinct registers.
            let local = (step * 40_503 + 17) % owned;
            let (day, week) = ((step % 50) as u8, ((step + 1) % 50) as u8);
            let week = week.max(day);
            views.set(local, day, week);
            model[local] = (day, week);
            if step == 1_000 {
                assert!(!views.is_dense());
                assert!(views.heap_bytes() <= 8_192, "{}", views.heap_bytes());
            }
        }
        assert!(views.is_dense());
        assert_eq!(views.heap_bytes(), 2 * owned);
        for (index, expected) in model.iter().enumerate() {
            assert_eq!(views.get(index), *expected, "register {index}");
        }
        let (day, week) = views.histograms();
        assert_eq!(day.iter().sum::<u32>(), owned as u32);
        assert_eq!(week.iter().sum::<u32>(), owned as u32);
    }

    #[test]
    fn a_sparse_histogram_counts_the_registers_without_an_entry_as_zero() {
        let mut views = Views::new(1_000);
        views.set(3, 0, 5);
        views.set(900, 2, 2);
        views.set(3, 1, 5);
        assert_eq!(views.get(3), (1, 5));
        assert_eq!(views.get(4), (0, 0));
        let (day, week) = views.histograms();
        assert_eq!((day[0], day[1], day[2]), (998, 1, 1));
        assert_eq!((week[0], week[2], week[5]), (998, 1, 1));
    }
}
