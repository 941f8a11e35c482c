//! A sender's queued sends (scheduled for later, or waiting on the rules): listed per number
//! in due order, moved to another time, or cancelled, until they are released.
//!
//! The release index is the arbiter: whoever takes a send out of it (the releaser when it comes
//! due, or its sender here) owns it, so a send is released or withdrawn, never both. A cancel
//! leaves a record that a status read finds (`cancelled`).

use wagate_rules::clock::Timestamp;
use wagate_rules::ids::PhoneNumberId;
use wagate_store::keys::{deferred_key, message_key};
use wagate_store::{Batch, Family, StoreError};

use crate::deferred::DeferredRecord;
use crate::message::DispatchStatus;
use crate::outcome::never_sent;
use crate::Wagate;

impl Wagate {
    /// `number`'s queued sends in due order, at most `limit`; a read of the whole queue's
    /// records until `limit` of the number's are found.
    pub fn queued_of(
        &self,
        number: PhoneNumberId,
        limit: usize,
    ) -> Result<Vec<DeferredRecord>, StoreError> {
        let mut found = Vec::new();
        self.store
            .scan(Family::Deferred, &[], &[0xff; 17], &mut |key, value| {
                if let Some(record) = DeferredRecord::decode(key, value) {
                    if record.submission.request.number == number {
                        found.push(record);
                    }
                }
                found.len() < limit
            })?;
        Ok(found)
    }

    /// Takes a queued send out of the release index and reads it: `None` when it is not
    /// queued (released, being released, or unknown).
    fn take_queued(&self, id: u64) -> Result<Option<DeferredRecord>, StoreError> {
        let Some(due) = self.release.remove(id) else {
            return Ok(None);
        };
        let key = deferred_key(due.0, id);
        match self.store.get(Family::Deferred, &key) {
            Ok(Some(value)) => Ok(DeferredRecord::decode(&key, &value)),
            Ok(None) => Ok(None),
            Err(error) => {
                self.release.insert(due, id);
                Err(error)
            }
        }
    }

    /// Cancels a queued send: its record, when it was queued (`None`: nothing to cancel).
    pub fn cancel_queued(&self, id: u64) -> Result<Option<DeferredRecord>, StoreError> {
        let Some(record) = self.take_queued(id)? else {
            return Ok(None);
        };
        let mut batch = Batch::default();
        batch.delete(Family::Deferred, record.key());
        let cancelled = never_sent(
            id,
            &record.submission,
            self.clock.now(),
            DispatchStatus::Cancelled,
            "cancelled: by its sender before it was released".into(),
            0,
        );
        batch.put(Family::Messages, message_key(id), cancelled.encode());
        if let Err(error) = self.store.write(&batch, true) {
            self.release.insert(record.due, id);
            return Err(error);
        }
        Ok(Some(record))
    }

    /// Moves a queued send to `at` (and, when given, a new expiry): its record as it now
    /// stands, when it was queued (`None`: nothing to move).
    pub fn reschedule_queued(
        &self,
        id: u64,
        at: Timestamp,
        expire_at: Option<Option<Timestamp>>,
    ) -> Result<Option<DeferredRecord>, StoreError> {
        let Some(old) = self.take_queued(id)? else {
            return Ok(None);
        };
        let mut moved = old.clone();
        moved.due = at;
        moved.reason = wagate_rules::decision::DeferReason::Scheduled;
        if let Some(expire_at) = expire_at {
            moved.submission.request.options.expire_at = expire_at;
        }
        let mut batch = Batch::default();
        batch.delete(Family::Deferred, old.key());
        batch.put(Family::Deferred, moved.key(), moved.encode());
        if let Err(error) = self.store.write(&batch, true) {
            self.release.insert(old.due, id);
            return Err(error);
        }
        self.release.insert(moved.due, id);
        Ok(Some(moved))
    }
}
