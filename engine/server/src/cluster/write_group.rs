//! Group commit across writers, for a partition's changelog: the batches of writers that come
//! while an append is under way are combined into one batch and written by one of them (the
//! leader) as one append, while the others wait for its result. A partition's appends are taken
//! one at a time (their order is the state's), and each costs a JetStream round trip through
//! three servers whatever its size: without this, the engine's writers (its group-commit lanes,
//! in-flight marks, settlements, admin changes) queued behind each other's round trips, each
//! paying one. Batches keep their order (first come, first in the combined batch); a combined
//! batch is at most `max_bytes` (a single larger batch goes alone), so no writer waits behind
//! an unbounded append. The combined batch is written whole or not at all, and every writer in
//! it gets the same result.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use wagate_store::{Batch, StoreError};

pub struct WriteGroup {
    state: Mutex<GroupState>,
    turn: Condvar,
    max_bytes: usize,
}

#[derive(Default)]
struct GroupState {
    next_ticket: u64,
    waiting: VecDeque<(u64, Batch)>,
    /// Results not yet taken by their writers.
    done: HashMap<u64, Result<(), StoreError>>,
    leading: bool,
}

fn locked(state: &Mutex<GroupState>) -> MutexGuard<'_, GroupState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands the lead back, with a failure for the batches taken, if the leader's commit panicked.
struct Lead<'a> {
    group: &'a WriteGroup,
    taken: Vec<u64>,
    result: Option<Result<(), StoreError>>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let result = self
            .result
            .take()
            .unwrap_or_else(|| Err(StoreError::Io("a changelog append failed".to_string())));
        let mut state = locked(&self.group.state);
        for ticket in self.taken.drain(..) {
            state.done.insert(ticket, result.clone());
        }
        state.leading = false;
        self.group.turn.notify_all();
    }
}

impl WriteGroup {
    pub fn new(max_bytes: usize) -> WriteGroup {
        WriteGroup {
            state: Mutex::new(GroupState::default()),
            turn: Condvar::new(),
            max_bytes,
        }
    }

    /// Writes `batch` through `commit`, combined with the batches of the writers waiting
    /// beside it; returns once it is written (or refused).
    pub fn write(
        &self,
        batch: &Batch,
        commit: &dyn Fn(&Batch) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut state = locked(&self.state);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push_back((ticket, batch.clone()));
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                return result;
            }
            if state.leading {
                state = self.turn.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.leading = true;
            let (combined, taken) = self.take(&mut state);
            drop(state);
            let mut lead = Lead {
                group: self,
                taken,
                result: None,
            };
            lead.result = Some(commit(&combined));
            drop(lead);
            state = locked(&self.state);
        }
    }

    /// The waiting batches, first come first, up to `max_bytes` (at least one), as one.
    fn take(&self, state: &mut GroupState) -> (Batch, Vec<u64>) {
        let mut combined = Batch::default();
        let mut taken = Vec::new();
        while let Some((_, next)) = state.waiting.front() {
            if !taken.is_empty() && combined.bytes() + next.bytes() > self.max_bytes {
                break;
            }
            let Some((ticket, mut next)) = state.waiting.pop_front() else {
                break;
            };
            combined.append(&mut next);
            taken.push(ticket);
        }
        (combined, taken)
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        locked(&self.state).waiting.len()
    }

    #[cfg(test)]
    fn leading(&self) -> bool {
        locked(&self.state).leading
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;
    use wagate_store::{Family, Op};

    fn batch(i: u8) -> Batch {
        let mut batch = Batch::default();
        batch.put(Family::ALL[0], [i], [i]);
        batch
    }

    fn keys(batch: &Batch) -> Vec<u8> {
        batch
            .ops()
            .map(|op| match op {
                Op::Put { key, .. } => key[0],
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn writers_waiting_behind_an_append_go_together_in_order_in_the_next() {
        let group = Arc::new(WriteGroup::new(1 << 20));
        let committed: Arc<Mutex<Vec<Vec<u8>>>> = Default::default();
        // The first commit is held until four more writers wait behind it.
        let (release, held) = mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let commit = {
            let (committed, held) = (committed.clone(), held.clone());
            move |batch: &Batch| {
                let first = committed.lock().unwrap().is_empty();
                if first {
                    held.lock().unwrap().recv().unwrap();
                }
                let refused = keys(batch).contains(&9);
                committed.lock().unwrap().push(keys(batch));
                if refused {
                    Err(StoreError::Io("refused".into()))
                } else {
                    Ok(())
                }
            }
        };
        let commit = Arc::new(commit);
        let write = |i: u8| {
            let (group, commit) = (group.clone(), commit.clone());
            std::thread::spawn(move || group.write(&batch(i), &*commit))
        };
        let first = write(1);
        while !group.leading() {
            std::thread::yield_now();
        }
        let mut others = Vec::new();
        for i in 2..=5 {
            others.push(write(i));
            while group.waiting() < usize::from(i) - 1 {
                std::thread::yield_now();
            }
        }
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap(), Ok(()));
        for other in others {
            assert_eq!(other.join().unwrap(), Ok(()));
        }
        assert_eq!(
            *committed.lock().unwrap(),
            vec![vec![1], vec![2, 3, 4, 5]],
            "one append for the four that waited, in their order"
        );

        // A refused combined append fails every writer in it.
        let (a, b) = (write(9), write(6));
        let results = [a.join().unwrap(), b.join().unwrap()];
        let all: Vec<u8> = committed.lock().unwrap().concat();
        assert!(all.contains(&9) && all.contains(&6));
        assert!(results[0].is_err());
        let together = committed
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.contains(&9) && c.contains(&6));
        assert_eq!(results[1].is_err(), together);
    }

    #[test]
    fn a_combined_batch_stays_under_its_bound_but_a_large_one_goes_alone() {
        let group = WriteGroup::new(2);
        let mut state = GroupState::default();
        for i in 0..3u8 {
            state.waiting.push_back((u64::from(i), batch(i)));
        }
        let mut big = Batch::default();
        big.put(Family::ALL[0], [7u8; 4], [7u8; 4]);
        state.waiting.push_back((3, big));
        let (first, taken) = group.take(&mut state);
        assert_eq!((keys(&first), taken), (vec![0], vec![0]));
        let (second, _) = group.take(&mut state);
        assert_eq!(keys(&second), vec![1]);
        let (_, _) = group.take(&mut state);
        let (alone, taken) = group.take(&mut state);
        assert_eq!((alone.bytes(), taken), (8, vec![3]));
    }
}
