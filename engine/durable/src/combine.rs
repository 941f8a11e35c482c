//! Work that must run one at a time, done in groups: whoever gets the turn does every job
//! waiting, its own among them (flat combining). Delivery statuses need the one-at-a-time: a
//! status moves a stored message by reading it and writing it back, so two applied at once
//! could move it backwards (`read` then `sent`). The grouping pays for it: the jobs that queued
//! while one group was being written go out in the next group's single synced write, rather
//! than one write (and one fsync) per webhook.

use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{bounded, Sender};

/// The turn to apply delivery statuses: held by the webhook combiner while it applies a group
/// and by a hand-over lane while it applies statuses parked for the messages it settled.
#[derive(Clone, Default)]
pub struct StatusTurn(Arc<Mutex<()>>);

impl StatusTurn {
    /// Waits for the turn; it is held until the guard drops.
    pub fn take(&self) -> MutexGuard<'_, ()> {
        // Nothing is kept behind the lock, so a panic while it was held leaves nothing broken.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Jobs waiting for the turn, each with where its result goes.
pub(crate) struct Combiner<J, R> {
    turn: StatusTurn,
    waiting: Mutex<Vec<(J, Sender<R>)>>,
}

impl<J, R> Combiner<J, R> {
    pub(crate) fn new(turn: StatusTurn) -> Combiner<J, R> {
        Combiner {
            turn,
            waiting: Mutex::new(Vec::new()),
        }
    }

    /// The turn the groups take, for other work that must not run beside them.
    pub(crate) fn turn(&self) -> &StatusTurn {
        &self.turn
    }

    /// Runs `job`, alone or in a group with every job waiting when the turn comes: `apply`
    /// gets the group in arrival order and answers one result per job, in that order. `None`
    /// only if the group that took the job did not answer it (`apply` panicked or answered
    /// short).
    pub(crate) fn run(&self, job: J, apply: impl FnOnce(Vec<J>) -> Vec<R>) -> Option<R> {
        let (reply, result) = bounded(1);
        self.lock_waiting().push((job, reply));
        let _turn = self.turn.take();
        // A group run while this caller waited for the turn may have taken its job already;
        // that group answered before giving the turn up.
        if let Ok(answer) = result.try_recv() {
            return Some(answer);
        }
        let group = std::mem::take(&mut *self.lock_waiting());
        let (jobs, replies): (Vec<J>, Vec<Sender<R>>) = group.into_iter().unzip();
        for (reply, answer) in replies.into_iter().zip(apply(jobs)) {
            // The caller of a job always waits for its answer (it is one of these callers).
            let _ = reply.send(answer);
        }
        result.try_recv().ok()
    }

    fn lock_waiting(&self) -> MutexGuard<'_, Vec<(J, Sender<R>)>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    use super::*;

    #[test]
    fn every_caller_gets_its_own_result_and_groups_run_one_at_a_time() {
        let combiner: Combiner<u64, u64> = Combiner::new(StatusTurn::default());
        let running = AtomicUsize::new(0);
        let start = Barrier::new(8);
        std::thread::scope(|scope| {
            for caller in 0..8u64 {
                let (combiner, running, start) = (&combiner, &running, &start);
                scope.spawn(move || {
                    start.wait();
                    for round in 0..200u64 {
                        let job = caller * 1_000 + round;
                        let answer = combiner.run(job, |jobs| {
                            assert_eq!(
                                running.fetch_add(1, Ordering::SeqCst),
                                0,
                                "two groups at once"
                            );
                            let answers = jobs.iter().map(|j| j * 2).collect();
                            running.fetch_sub(1, Ordering::SeqCst);
                            answers
                        });
                        assert_eq!(answer, Some(job * 2));
                    }
                });
            }
        });
    }

    #[test]
    fn jobs_that_wait_for_the_turn_go_in_one_group() {
        let turn = StatusTurn::default();
        let combiner: Combiner<u64, u64> = Combiner::new(turn.clone());
        let sizes = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            let held = turn.take();
            let callers: Vec<_> = (1..=3u64)
                .map(|job| {
                    let (combiner, sizes) = (&combiner, &sizes);
                    scope.spawn(move || {
                        combiner.run(job, |jobs| {
                            sizes.lock().unwrap().push(jobs.len());
                            jobs.iter().map(|j| j + 10).collect()
                        })
                    })
                })
                .collect();
            while combiner.lock_waiting().len() < 3 {
                std::thread::yield_now();
            }
            drop(held);
            let answers: Vec<_> = callers.into_iter().map(|c| c.join().unwrap()).collect();
            assert_eq!(answers, vec![Some(11), Some(12), Some(13)]);
        });
        assert_eq!(*sizes.lock().unwrap(), vec![3]);
    }

    #[test]
    fn the_turn_keeps_other_status_work_out_while_a_group_runs() {
        let turn = StatusTurn::default();
        let combiner: Combiner<(), bool> = Combiner::new(turn.clone());
        // A group that finds the turn free could take it again: it is held for the group.
        let answer = combiner.run((), |jobs| {
            jobs.iter().map(|_| turn.0.try_lock().is_err()).collect()
        });
        assert_eq!(answer, Some(true));
        // A group that answers short leaves its caller without an answer, not hanging.
        assert_eq!(combiner.run((), |_| Vec::new()), None);
    }
}
