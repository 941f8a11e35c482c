//! Ingest: sends admitted by the HTTP handlers, batched into the engine by a few threads.
//!
//! Each handler's sends go in as one job on a bounded channel; an ingest thread takes every
//! job waiting, submits them together (they share group commits) and answers each job on its
//! own oneshot. Several threads keep commits pipelined. Admission is counted in messages, so a
//! full server answers 503 at once instead of growing a queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::durable::submission::Submission;
use crate::durable::{SubmitError, SubmitResult, Wagate};

pub type Answers = Vec<Result<SubmitResult, SubmitError>>;

struct Job {
    submissions: Vec<Submission>,
    reply: oneshot::Sender<Answers>,
}

/// Sends taken into one engine call at most (bounds the latency a big batch adds).
const MAX_BATCH: usize = 4_096;

#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Too many messages admitted and not yet answered: retry later.
    Full,
    /// The server is shutting down.
    Closed,
    /// More messages in one request than the server ever admits at once.
    TooLarge,
}

pub struct Ingest {
    jobs: Sender<Job>,
    pending: Arc<AtomicUsize>,
    max_pending: usize,
    threads: Vec<JoinHandle<()>>,
}

/// A claim on `count` admitted messages, released when dropped (answered or abandoned).
pub struct Admission {
    pending: Arc<AtomicUsize>,
    count: usize,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.pending.fetch_sub(self.count, Ordering::AcqRel);
    }
}

impl Ingest {
    pub fn start(wagate: Arc<Wagate>, threads: usize, max_pending: usize) -> Ingest {
        let (jobs, incoming) = bounded::<Job>(max_pending.max(1));
        let threads = (0..threads)
            .map(|i| {
                let incoming = incoming.clone();
                let wagate = wagate.clone();
                std::thread::Builder::new()
                    .name(format!("wagate-ingest-{i}"))
                    .spawn(move || run(&wagate, &incoming))
                    .expect("spawning an ingest thread")
            })
            .collect();
        Ingest {
            jobs,
            pending: Arc::new(AtomicUsize::new(0)),
            max_pending,
            threads,
        }
    }

    /// Admits `count` messages if there is room for them.
    pub fn admit(&self, count: usize) -> Result<Admission, Rejected> {
        if count > self.max_pending {
            return Err(Rejected::TooLarge);
        }
        let before = self.pending.fetch_add(count, Ordering::AcqRel);
        let admission = Admission {
            pending: self.pending.clone(),
            count,
        };
        if before + count > self.max_pending {
            return Err(Rejected::Full);
        }
        Ok(admission)
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Submits admitted sends; the answers come in order.
    pub async fn submit(
        &self,
        _admission: &Admission,
        submissions: Vec<Submission>,
    ) -> Result<Answers, Rejected> {
        let (reply, answer) = oneshot::channel();
        match self.jobs.try_send(Job { submissions, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(Rejected::Full),
            Err(TrySendError::Disconnected(_)) => return Err(Rejected::Closed),
        }
        answer.await.map_err(|_| Rejected::Closed)
    }

    /// Stops taking jobs and waits for the ones taken to be answered.
    pub fn shutdown(self) {
        drop(self.jobs);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn run(wagate: &Wagate, incoming: &Receiver<Job>) {
    while let Ok(first) = incoming.recv() {
        let mut jobs = vec![first];
        let mut total = jobs[0].submissions.len();
        while total < MAX_BATCH {
            match incoming.try_recv() {
                Ok(job) => {
                    total += job.submissions.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut submissions = Vec::with_capacity(total);
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            replies.push((job.submissions.len(), job.reply));
            submissions.extend(job.submissions);
        }
        let mut answers = wagate.submit_many(submissions).into_iter();
        for (count, reply) in replies {
            // A caller that went away still had its sends decided; only the answer is lost,
            // and an idempotent retry gets it back.
            let _ = reply.send(answers.by_ref().take(count).collect());
        }
    }
}
