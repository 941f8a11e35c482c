//! Submitting a batch of sends: idempotency keys claimed (a retry answered from its record),
//! message ids reserved, the rest handed to the shards as commands, and their replies turned
//! into answers in the batch's order. The same steps serve a blocking caller
//! ([`Wagate::submit_many`]) and an async one ([`Wagate::submit_many_async`], the server's
//! handlers), which differ only in how they wait for the shards.

use super::idempotency::{body_hash, request_hash, IdempotencyRecord};
use super::submission::{Prepared, Submission};
use super::wagate::{SubmitError, SubmitResult, Wagate};
use crate::workers::{Submit, Submitted};
use wagate_rules::clock::Timestamp;
use wagate_rules::decision::{Decision, Refusal};
use wagate_store::keys::idempotency_key;
use wagate_store::{Family, StoreError};

/// A batch between its hand-out to the shards and their replies.
struct HandedOut {
    /// One per submission: answered already (a replay, a refused key) or waiting for a reply.
    answers: Vec<Option<Result<SubmitResult, SubmitError>>>,
    /// Where each command's reply goes in `answers`, and whether its submission may queue.
    slots: Vec<(usize, bool)>,
    /// Idempotency keys held in flight until the replies are in.
    claimed: Vec<Vec<u8>>,
}

impl Wagate {
    /// Decides many sends; they share group commits, so this is the fast way in.
    pub fn submit_many(
        &self,
        submissions: Vec<Submission>,
    ) -> Vec<Result<SubmitResult, SubmitError>> {
        let (submitted, commands) = self.prepare(submissions);
        // A batch with no commands (every send a replay) is handed to no worker.
        let replies = self.pool.send(commands).wait_each();
        self.answer(submitted, replies)
    }

    /// Like [`Wagate::submit_many`], waiting for the shards without blocking a thread (it
    /// blocks only to read an idempotency record, to persist the end of a new block of message
    /// ids once per 2^20 ids, or while a shard's channel is full).
    ///
    /// Drive it to completion: dropped while the shards decide, it leaves the batch's
    /// idempotency keys claimed (retries are told "in flight") until a restart, because
    /// letting them go before their records are durable could send a retry twice. The
    /// server runs keyed batches as tasks of their own for that reason.
    pub async fn submit_many_async(
        &self,
        submissions: Vec<Submission>,
    ) -> Vec<Result<SubmitResult, SubmitError>> {
        let (submitted, commands) = self.prepare(submissions);
        let replies = self.pool.send_to_task(commands).wait_each().await;
        self.answer(submitted, replies)
    }

    fn prepare(&self, submissions: Vec<Submission>) -> (HandedOut, Vec<Submit>) {
        let now = self.clock.now();
        let expires_at = now.unix_secs() + self.retention_secs;
        let mut submitted = HandedOut {
            answers: Vec::with_capacity(submissions.len()),
            slots: Vec::with_capacity(submissions.len()),
            claimed: Vec::new(),
        };
        let mut admitted = Vec::with_capacity(submissions.len());
        for mut submission in submissions {
            if submission.request.to.is_group() {
                // A group's own rules first: a send breaking one is answered, nothing written.
                // Its participants' consent is read now, so it is decided now: never scheduled,
                // and, made to wait, answered so rather than queued (a queued send is released
                // to its shard, past this screen).
                submission.queue_when_deferred = false;
                let screened = match submission.request.options.send_at {
                    Some(_) => Err(wagate_rules::groups::GroupRefusal::NotLater),
                    None => self.screen_group(&submission),
                };
                if let Err(refusal) = screened {
                    let refused = Decision::Refused(Refusal::Group(refusal));
                    submitted
                        .answers
                        .push(Some(Ok(SubmitResult::from_decision(refused, 0, false))));
                    continue;
                }
            }
            let request = &submission.request;
            let mut hash = 0;
            if let Some(key) = &submission.idempotency_key {
                let (number, to) = (request.number.0, request.to.digits());
                hash = request_hash(number, to, &submission.payload);
                let stored_key = idempotency_key(number, key);
                // Records written before hashes were canonical hold the raw bytes' hash.
                let raw = || body_hash(number, to, &submission.payload);
                match self.claim(&stored_key, key, hash, raw, now) {
                    Ok(None) => submitted.claimed.push(stored_key),
                    Ok(Some(replay)) => {
                        submitted.answers.push(Some(Ok(replay)));
                        continue;
                    }
                    Err(error) => {
                        submitted.answers.push(Some(Err(error)));
                        continue;
                    }
                }
            }
            submitted
                .slots
                .push((submitted.answers.len(), submission.queue_when_deferred));
            submitted.answers.push(None);
            admitted.push((submission, hash));
        }
        let mut commands = Vec::with_capacity(admitted.len());
        match self.reserve_message_ids(admitted.len() as u64) {
            Ok(first) => {
                for (offset, (submission, body_hash)) in admitted.into_iter().enumerate() {
                    commands.push(Submit(Box::new(Prepared {
                        key_number: submission.request.number,
                        submission,
                        message_id: first + offset as u64,
                        body_hash,
                        expires_at,
                        released_from: None,
                    })));
                }
            }
            Err(error) => {
                for (slot, _) in submitted.slots.drain(..) {
                    submitted.answers[slot] = Some(Err(SubmitError::Unavailable(error.clone())));
                }
            }
        }
        (submitted, commands)
    }

    /// The batch's answers, in order, once the shards replied; its keys let go.
    fn answer(
        &self,
        submitted: HandedOut,
        replies: Vec<Result<Submitted, StoreError>>,
    ) -> Vec<Result<SubmitResult, SubmitError>> {
        let HandedOut {
            mut answers,
            slots,
            claimed,
        } = submitted;
        for key in claimed {
            self.in_flight.remove(&key);
        }
        for ((slot, queue), reply) in slots.into_iter().zip(replies) {
            answers[slot] = Some(match reply {
                Ok(Submitted {
                    decision,
                    message_id,
                }) => Ok(SubmitResult::from_decision(decision, message_id, queue)),
                Err(error) => Err(SubmitError::Unavailable(error)),
            });
        }
        answers
            .into_iter()
            .map(|a| a.expect("every submission answered"))
            .collect()
    }

    /// Claims an idempotency key for a new request, or returns the answer it already has.
    fn claim(
        &self,
        stored_key: &[u8],
        key: &str,
        hash: u64,
        raw_hash: impl FnOnce() -> u64,
        now: Timestamp,
    ) -> Result<Option<SubmitResult>, SubmitError> {
        if !self.in_flight.insert(stored_key.to_vec()) {
            return Err(SubmitError::KeyInFlight(key.to_string()));
        }
        let stored = self
            .store
            .get(Family::Idempotency, stored_key)
            .map_err(SubmitError::Unavailable)
            .and_then(|bytes| {
                bytes
                    .map(|b| {
                        IdempotencyRecord::decode(&b).ok_or_else(|| {
                            SubmitError::Unavailable(StoreError::Corrupt(
                                "idempotency record".into(),
                            ))
                        })
                    })
                    .transpose()
            });
        let found = match stored {
            Ok(found) => found.filter(|record| record.expires_at > now.unix_secs()),
            Err(error) => {
                self.in_flight.remove(stored_key);
                return Err(error);
            }
        };
        let Some(record) = found else {
            return Ok(None);
        };
        self.in_flight.remove(stored_key);
        if record.body_hash != hash && record.body_hash != raw_hash() {
            return Err(SubmitError::KeyReused(key.to_string()));
        }
        Ok(Some(SubmitResult::from_outcome(record.outcome)))
    }
}
