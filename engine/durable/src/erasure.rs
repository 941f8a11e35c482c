//! Erasing a person (the law's right to erasure) from a business: their contact records,
//! consent history, messages (bodies and all), queued sends and waiting webhooks go; a salted
//! hash goes on the suppression list (so a re-import cannot opt them back in without a fresh,
//! evidenced opt-in) and the erasure into the audit log.
//!
//! An erasure is durable before it starts: the list entry, the audit entry and a marker of the
//! unfinished erasure (registry kind `ERASING`) are one synced write, so a crash part-way is
//! finished at the next start. It stays unfinished while something must outlive it a while:
//! counts toward a limit Meta still applies (see `Shard::erase`), or a message being sent at
//! that moment (its record is removed once it settles). [`Wagate::finish_erasures`] finishes
//! what came due; the server calls it once a second.

use std::sync::Mutex;

use serde::Serialize;
use serde_json::json;
use wagate_rules::clock::Timestamp;
use wagate_rules::ids::{AccountId, Msisdn, PhoneNumberId};
use wagate_store::keys::registry_kind;
use wagate_store::{Batch, Family, Store, StoreError};

use crate::deferred::DeferredRecord;
use crate::family_scan::everything;
use crate::message::{DispatchStatus, StoredMessage};
use crate::suppression::{PersonHash, Suppression};
use crate::workers::Erase;
use crate::{audit, consent_history, SubmitError, Wagate};

/// How long after an erasure a message that was being sent is looked for again.
const IN_FLIGHT_RECHECK_SECS: u64 = 60;

/// What an erasure removed, and whether anything must still outlive it a while.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// The person's salted hash on the suppression list (hex): what the audit log names.
    pub suppressed_as: String,
    pub history_events: usize,
    /// Messages settled with Meta (sent or failed), with their bodies.
    pub messages: usize,
    /// Accepted sends not handed to Meta yet: dropped, never sent.
    pub pending: usize,
    /// Sends queued for later (scheduled or waiting on a limit): dropped.
    pub queued: usize,
    /// Sends Meta was being handed at that moment: their records go once they settle.
    pub in_flight: usize,
    /// Webhooks about the person still waiting for the tenant's callback: dropped.
    pub forwards: usize,
    /// Until when counts toward Meta's limits are kept (Unix seconds), when any are.
    pub counts_kept_until: Option<u64>,
    /// Nothing of the person is left (otherwise it finishes by itself when it comes due).
    pub finished: bool,
}

/// An erasure not finished yet, as its marker keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unfinished {
    account: AccountId,
    person: Msisdn,
    /// `false`: the records were not erased yet (a crash came first).
    records_erased: bool,
    /// When to look again (Unix seconds).
    due: u64,
    /// Messages with lower ids existed at the erasure; later ones are the person's anew.
    id_ceiling: u64,
}

const MARKER_LEN: usize = 17;

fn marker_key(account: AccountId, person: Msisdn) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = registry_kind::ERASING;
    key[1..9].copy_from_slice(&account.0.to_be_bytes());
    key[9..].copy_from_slice(&person.digits().to_be_bytes());
    key
}

impl Unfinished {
    fn write(&self, batch: &mut Batch) {
        let mut value = [0u8; MARKER_LEN];
        value[0] = u8::from(self.records_erased);
        value[1..9].copy_from_slice(&self.due.to_be_bytes());
        value[9..].copy_from_slice(&self.id_ceiling.to_be_bytes());
        batch.put(
            Family::Registry,
            marker_key(self.account, self.person),
            value,
        );
    }

    fn decode(key: &[u8], value: &[u8]) -> Option<Unfinished> {
        let key: &[u8; 17] = key.try_into().ok()?;
        let value: &[u8; MARKER_LEN] = value.try_into().ok()?;
        let u64_at = |bytes: &[u8], at: usize| {
            u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
        };
        (key[0] == registry_kind::ERASING).then_some(())?;
        Some(Unfinished {
            account: AccountId(u64_at(key, 1)),
            person: Msisdn::from_digits(u64_at(key, 9)).ok()?,
            records_erased: value[0] != 0,
            due: u64_at(value, 1),
            id_ceiling: u64_at(value, 9),
        })
    }
}

/// The unfinished erasures, in memory (few: each finishes within a day).
#[derive(Default)]
pub(crate) struct Unfinisheds(Mutex<Vec<Unfinished>>);

impl Unfinisheds {
    pub(crate) fn load(store: &dyn Store) -> Result<Unfinisheds, StoreError> {
        let mut found = Vec::new();
        everything(store, Family::Registry, |key, value| {
            if key.first() == Some(&registry_kind::ERASING) {
                found.extend(Unfinished::decode(key, value));
            }
        })?;
        Ok(Unfinisheds(Mutex::new(found)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Unfinished>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn hex(hash: &PersonHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

impl Wagate {
    /// Erases `person` from the business `account`: see the module's note. `by` names who
    /// asked (the audit log keeps it).
    pub fn erase(
        &self,
        account: AccountId,
        person: Msisdn,
        by: &str,
    ) -> Result<Erasure, SubmitError> {
        let now = self.clock.now();
        let hash = self.suppression.hash(account, person);
        let unfinished = Unfinished {
            account,
            person,
            records_erased: false,
            due: now.unix_secs(),
            id_ceiling: self.next_message_id(),
        };
        let mut batch = Batch::default();
        Suppression::write(&mut batch, &hash, now.unix_secs());
        unfinished.write(&mut batch);
        audit::write(
            &mut batch,
            now,
            json!({
                "action": "erase",
                "business": account.0.to_string(),
                "person": hex(&hash),
                "by": by,
            }),
        );
        self.store.write(&batch, true)?;
        self.suppression.note(hash, now.unix_secs());
        tracing::info!(
            target: "wagate::audit",
            business = account.0,
            person = %hex(&hash),
            by,
            "a person is being erased"
        );
        self.carry_out(unfinished)
    }

    /// Finishes the erasures that came due (and any a crash interrupted); returns how many
    /// finished.
    pub fn finish_erasures(&self) -> Result<usize, SubmitError> {
        let now = self.clock.now().unix_secs();
        let due: Vec<Unfinished> = self
            .unfinished
            .lock()
            .iter()
            .filter(|u| u.due <= now)
            .copied()
            .collect();
        let mut finished = 0;
        for unfinished in due {
            finished += usize::from(self.carry_out(unfinished)?.finished);
        }
        Ok(finished)
    }

    /// The audit log from `since` (Unix seconds), oldest first, at most `limit` entries.
    pub fn audit_log(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        audit::read(self.store.as_ref(), since, limit)
    }

    /// Erasures not finished yet.
    pub fn unfinished_erasures(&self) -> usize {
        self.unfinished.lock().len()
    }

    /// People on the suppression list.
    pub fn suppressed_count(&self) -> usize {
        self.suppression.len()
    }

    /// Whether `person` was erased from `account` and not opted in afresh since (Unix seconds
    /// of the erasure).
    pub fn erased_at(&self, account: AccountId, person: Msisdn) -> Option<u64> {
        self.suppression.erased_at(account, person)
    }

    fn carry_out(&self, mut unfinished: Unfinished) -> Result<Erasure, SubmitError> {
        let (account, person) = (unfinished.account, unfinished.person);
        let kept = self.pool.ask(Erase {
            account,
            person,
            forget_spent: unfinished.records_erased,
        })?;
        let now = self.clock.now();
        let mut batch = Batch::default();
        let mut erasure = Erasure {
            suppressed_as: hex(&self.suppression.hash(account, person)),
            history_events: consent_history::delete_person(
                self.store.as_ref(),
                &mut batch,
                account,
                person,
            )?,
            counts_kept_until: kept.map(Timestamp::unix_secs),
            ..Erasure::default()
        };
        self.purge_messages(&unfinished, &mut batch, &mut erasure)?;
        erasure.finished = kept.is_none() && erasure.in_flight + erasure.pending == 0;
        unfinished.records_erased = true;
        if erasure.finished {
            batch.delete(Family::Registry, marker_key(account, person));
            audit::write(
                &mut batch,
                now,
                json!({
                    "action": "erasure_finished",
                    "business": account.0.to_string(),
                    "person": erasure.suppressed_as,
                }),
            );
        } else {
            // A send being handed over as its record was read is looked for again.
            let recheck = (erasure.in_flight + erasure.pending > 0)
                .then_some(now.unix_secs() + IN_FLIGHT_RECHECK_SECS);
            unfinished.due = erasure
                .counts_kept_until
                .into_iter()
                .chain(recheck)
                .min()
                .unwrap_or(now.unix_secs());
            unfinished.write(&mut batch);
        }
        self.store.write(&batch, true)?;
        let mut list = self.unfinished.lock();
        list.retain(|u| (u.account, u.person) != (account, person));
        if !erasure.finished {
            list.push(unfinished);
        }
        Ok(erasure)
    }

    /// Deletes, in `batch`, the person's messages with the business from every family that
    /// holds them, counting each kind.
    fn purge_messages(
        &self,
        unfinished: &Unfinished,
        batch: &mut Batch,
        erasure: &mut Erasure,
    ) -> Result<(), StoreError> {
        let numbers: Vec<PhoneNumberId> = self
            .registry()
            .numbers()
            .iter()
            .filter(|number| number.account == unfinished.account)
            .map(|number| number.id)
            .collect();
        let theirs = |number: PhoneNumberId, to: Msisdn, id: u64| {
            to == unfinished.person && id < unfinished.id_ceiling && numbers.contains(&number)
        };
        let store = self.store.as_ref();
        everything(store, Family::Messages, |key, value| {
            if let Some(message) = StoredMessage::decode(value) {
                if theirs(message.number, message.to, message.id) {
                    batch.delete(Family::Messages, key);
                    if message.status == DispatchStatus::Sent {
                        batch.delete(Family::UpstreamIds, message.upstream.as_bytes());
                    }
                    erasure.messages += 1;
                }
            }
        })?;
        everything(store, Family::Outbox, |key, value| {
            if let Some(message) = StoredMessage::decode(value) {
                if theirs(message.number, message.to, message.id) {
                    if message.status == DispatchStatus::InFlight {
                        erasure.in_flight += 1;
                    } else {
                        // The dispatcher skips a message no longer in the outbox.
                        batch.delete(Family::Outbox, key);
                        erasure.pending += 1;
                    }
                }
            }
        })?;
        everything(store, Family::Deferred, |key, value| {
            if let Some(record) = DeferredRecord::decode(key, value) {
                let request = &record.submission.request;
                if theirs(request.number, request.to, record.id) {
                    batch.delete(Family::Deferred, key);
                    let _ = self.release.remove(record.id);
                    erasure.queued += 1;
                }
            }
        })?;
        let digits = format!("\"{}\"", unfinished.person.digits());
        let ids: Vec<String> = numbers.iter().map(|n| format!("\"{}\"", n.0)).collect();
        let news = self.tenant_news.get();
        everything(store, Family::Forward, |key, value| {
            let mentions = |needle: &str| {
                value
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
            };
            // A send's own news is kept in the writer's form, not as JSON: it says whom.
            let named = match news.and_then(|writer| writer.about(value)) {
                Some((number, to)) => to == unfinished.person && numbers.contains(&number),
                None => mentions(&digits) && ids.iter().any(|id| mentions(id)),
            };
            if named {
                batch.delete(Family::Forward, key);
                erasure.forwards += 1;
            }
        })?;
        Ok(())
    }
}
