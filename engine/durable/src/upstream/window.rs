//! The default way a due batch goes to an upstream: through a window of sends under way at
//! once, each marked in flight just before it goes and settled as soon as its answer comes.
//!
//! A batch is marked in flight a window at a time, never whole: a crash then leaves in flight
//! only what was really under way (a batch of 512 marked at once left hundreds in flight that
//! had never been sent). The marks of sends that free up together share one synced write.

use crossbeam_channel::{unbounded, Receiver};

use super::{HandOver, Upstream, UpstreamError};
use crate::message::StoredMessage;

type Outcome = (usize, Result<String, UpstreamError>);

/// Sends `messages` with up to `upstream.concurrency()` sends under way, each on a worker
/// thread of this call.
pub(super) fn send_in_window<U: Upstream + ?Sized>(
    upstream: &U,
    messages: &[StoredMessage],
    hand_over: &mut dyn HandOver,
) {
    let workers = upstream.concurrency().clamp(1, messages.len().max(1));
    if workers == 1 {
        for (index, message) in messages.iter().enumerate() {
            if !hand_over.going_out(&[index]) {
                return;
            }
            hand_over.outcomes(vec![(index, upstream.send(message))]);
        }
        return;
    }
    let (work, to_send) = unbounded::<usize>();
    let (answer, answers) = unbounded::<Outcome>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (to_send, answer) = (to_send.clone(), answer.clone());
            scope.spawn(move || {
                for index in to_send {
                    if answer
                        .send((index, upstream.send(&messages[index])))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(answer);
        let mut next = 0;
        let mut free = workers;
        while next < messages.len() || free < workers {
            if free > 0 && next < messages.len() {
                let group: Vec<usize> = (next..(next + free).min(messages.len())).collect();
                if !hand_over.going_out(&group) {
                    // Nothing more goes out; what is under way still reports.
                    next = messages.len();
                    continue;
                }
                next += group.len();
                free -= group.len();
                for index in group {
                    let _ = work.send(index);
                }
            }
            if free < workers {
                let came = arrived(&answers);
                if came.is_empty() {
                    break; // every worker is gone (a panic, which the scope passes on)
                }
                free += came.len();
                hand_over.outcomes(came);
            }
        }
        // The workers end once the work channel is gone.
        drop(work);
    });
}

/// The next outcome (waiting for it) and every other one already there.
fn arrived(answers: &Receiver<Outcome>) -> Vec<Outcome> {
    let mut came: Vec<Outcome> = answers.recv().into_iter().collect();
    came.extend(answers.try_iter());
    came
}
