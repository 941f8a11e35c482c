//! Exact expiry of unique recipients from a rolling 24 h, per shard and limit scope.
//!
//! Every counted business-initiated send appends `(second, person)`; sends arrive in time
//! order, so the queue is sorted. When a mark is 24 h old, the person leaves the window if the
//! mark is still their latest send; otherwise a later mark stands for them and this one is
//! dropped. The scope's shared `used` counter therefore equals, exactly, the persons with a send
//! in the last 24 h, which is what admission at the limit compares against.

use std::collections::VecDeque;

use crate::clock::Secs;

/// 12 bytes: a person's digits split so the mark packs without padding.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Mark {
    at: Secs,
    person_low: u32,
    person_high: u32,
}

#[derive(Debug, Default)]
pub struct ExpiryQueue {
    marks: VecDeque<Mark>,
}

impl ExpiryQueue {
    pub fn push(&mut self, at: Secs, person: u64) {
        debug_assert!(self.marks.back().is_none_or(|m| m.at <= at));
        self.marks.push_back(Mark {
            at,
            person_low: person as u32,
            person_high: (person >> 32) as u32,
        });
    }

    /// Removes the marks that are `window` old at `now`, calling `expired(person, at)` for each;
    /// it returns whether the mark was still the person's latest send.
    pub fn expire(
        &mut self,
        now: Secs,
        window: Secs,
        mut is_latest: impl FnMut(u64, Secs) -> bool,
    ) -> u32 {
        let mut left = 0;
        while let Some(mark) = self.marks.front().copied() {
            if mark.at.saturating_add(window) > now {
                break;
            }
            self.marks.pop_front();
            if !mark.is_forgotten() && is_latest(person_of(&mark), mark.at) {
                left += 1;
            }
        }
        left
    }

    /// When the oldest still-current mark expires, and how many current marks expire in that
    /// same second; stale marks at the front are dropped first.
    pub fn next_expiry(
        &mut self,
        window: Secs,
        mut is_latest: impl FnMut(u64, Secs) -> bool,
    ) -> Option<(Secs, u32)> {
        while let Some(mark) = self.marks.front().copied() {
            if !mark.is_forgotten() && is_latest(person_of(&mark), mark.at) {
                let current = self
                    .marks
                    .iter()
                    .take_while(|m| m.at == mark.at)
                    .filter(|m| !m.is_forgotten() && is_latest(person_of(m), m.at))
                    .count();
                return Some((mark.at.saturating_add(window), current as u32));
            }
            self.marks.pop_front();
        }
        None
    }

    /// Forgets the mark `(at, person)`: its send gave its slot back, and a later count of the
    /// person in the same second must not find this mark current too (it would leave twice).
    /// False if there is no such mark.
    pub fn forget(&mut self, at: Secs, person: u64) -> bool {
        let from = self.marks.partition_point(|m| m.at < at);
        for mark in self.marks.range_mut(from..) {
            if mark.at != at {
                break;
            }
            if !mark.is_forgotten() && person_of(mark) == person {
                mark.person_low = 0;
                mark.person_high = 0;
                return true;
            }
        }
        false
    }

    /// The oldest mark, current or stale.
    pub fn front(&self) -> Option<(Secs, u64)> {
        self.marks.front().map(|m| (m.at, person_of(m)))
    }

    pub fn len(&self) -> usize {
        self.marks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.marks.capacity() * std::mem::size_of::<Mark>()
    }
}

impl Mark {
    /// Person digits are never zero: zero marks a forgotten mark.
    fn is_forgotten(&self) -> bool {
        self.person_low == 0 && self.person_high == 0
    }
}

fn person_of(mark: &Mark) -> u64 {
    u64::from(mark.person_high) << 32 | u64::from(mark.person_low)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn only_latest_marks_leave_the_window() {
        let mut queue = ExpiryQueue::default();
        let mut latest = HashMap::new();
        for (at, person) in [(10, 1u64), (20, 2), (30, 1), (40, 3)] {
            queue.push(at, person);
            latest.insert(person, at);
        }
        let window = 100;
        assert_eq!(queue.expire(109, window, |p, at| latest[&p] == at), 0);
        // Person 1's mark at 10 is stale (they were sent to again at 30); person 2 leaves.
        assert_eq!(queue.expire(120, window, |p, at| latest[&p] == at), 1);
        assert_eq!(
            queue.next_expiry(window, |p, at| latest[&p] == at),
            Some((130, 1))
        );
        queue.push(40, 4);
        latest.insert(4, 40);
        queue.push(40, 5);
        latest.insert(5, 40);
        assert_eq!(
            queue.expire(130, window, |p, at| latest[&p] == at),
            1,
            "person 1 at 30"
        );
        assert_eq!(
            queue.next_expiry(window, |p, at| latest[&p] == at),
            Some((140, 3)),
            "persons 3, 4 and 5 leave at 140"
        );
        assert_eq!(queue.expire(1_000, window, |p, at| latest[&p] == at), 3);
        assert!(queue.is_empty());
        assert_eq!(queue.next_expiry(window, |_, _| true), None);
    }

    #[test]
    fn a_forgotten_mark_never_leaves_again() {
        let mut queue = ExpiryQueue::default();
        queue.push(10, 1);
        queue.push(10, 2);
        // Person 2's send failed (slot given back), then they were counted again at 10.
        assert!(queue.forget(10, 2));
        assert!(!queue.forget(10, 2), "once");
        queue.push(10, 2);
        assert_eq!(queue.next_expiry(100, |_, _| true), Some((110, 2)));
        assert_eq!(queue.expire(110, 100, |_, _| true), 2, "1 and 2 once each");
        assert!(queue.is_empty());
    }
}
