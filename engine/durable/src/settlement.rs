//! A message settled with the upstream: out of the outbox into `messages`, with its upstream id
//! indexed when it was sent.

use crate::message::{DispatchStatus, StoredMessage};
use crate::sent_record::{self, SentRecord};
use wagate_store::keys::message_key;
use wagate_store::{Batch, Family};

/// Moves a message settled with the upstream out of the outbox into `messages`: sent (its
/// upstream id indexed, so status webhooks find it) or failed for good (`upstream` is why).
pub(crate) fn settle(
    mut message: StoredMessage,
    status: DispatchStatus,
    upstream: String,
    batch: &mut Batch,
) {
    let key = message_key(message.id);
    if status == DispatchStatus::Sent {
        sent_record::write(batch, &upstream, &SentRecord::of(&message));
    }
    message.status = status;
    message.upstream = upstream;
    batch.delete(Family::Outbox, key);
    batch.put(Family::Messages, key, message.encode());
}
