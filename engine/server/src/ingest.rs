//! Ingest: admission of the handlers' sends, and their way into the engine.
//!
//! Admission is counted in messages, so a full server answers 503 at once instead of growing a
//! queue. An admitted batch goes from the handler's task straight to the shard workers and its
//! answers come back to that task: no thread in between, since every hand-off between threads
//! costs a wake-up on both sides. Concurrent requests still share commits: a shard worker takes
//! every batch waiting into one group, written as one commit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use wagate_durable::submission::Submission;
use wagate_durable::{SubmitError, SubmitResult, Wagate};

pub(crate) type Answers = Vec<Result<SubmitResult, SubmitError>>;

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
    wagate: Arc<Wagate>,
    pending: Arc<AtomicUsize>,
    max_pending: usize,
}

/// A claim on `count` admitted messages, released when dropped (answered or abandoned).
pub(crate) struct Admission {
    pending: Arc<AtomicUsize>,
    count: usize,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.pending.fetch_sub(self.count, Ordering::AcqRel);
    }
}

impl Ingest {
    pub fn new(wagate: Arc<Wagate>, max_pending: usize) -> Ingest {
        Ingest {
            wagate,
            pending: Arc::new(AtomicUsize::new(0)),
            max_pending,
        }
    }

    /// Admits `count` messages if there is room for them.
    fn admit(&self, count: usize) -> Result<Admission, Rejected> {
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

    /// Admits `submissions` and submits them; the answers come in order. They count against
    /// `max_pending` until answered (or until the caller goes away).
    pub async fn submit(&self, submissions: Vec<Submission>) -> Result<Answers, Rejected> {
        let _admission = self.admit(submissions.len())?;
        if submissions.iter().all(|s| s.idempotency_key.is_none()) {
            // A caller that goes away still has its sends decided; only the answer is lost.
            return Ok(self.wagate.submit_many_async(submissions).await);
        }
        // Keys stay claimed until their records are durable, even when the caller goes away:
        // a keyed batch runs as a task of its own.
        let wagate = self.wagate.clone();
        tokio::spawn(async move { wagate.submit_many_async(submissions).await })
            .await
            .map_err(|_| Rejected::Closed)
    }
}
