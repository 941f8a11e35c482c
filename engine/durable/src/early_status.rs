//! Statuses that arrive before their message is settled. Meta can send a message's `sent`
//! status before wagate has read Meta's answer and written the wamid down; such a status is
//! parked under `early:<wamid>` in [`Family::Idempotency`] (number 0, with an expiry, so the
//! statuses of messages wagate never sent are dropped by compaction) and applied when the
//! message is settled. Both sides write first and look for the other second, so one of them
//! always sees the other; applying twice is harmless, since delivery states only move forward.

use std::collections::HashMap;

use super::combine::StatusTurn;
use super::message::Delivery;
use super::reconcile::{charge_key, early_charge_key, Charge, CHARGES};
use super::sent_record::{self, message_id, SentRecord};
use super::template_deliveries;
use wagate_cloud_api::webhooks::events::StatusPricing;
use wagate_rules::contact_events::FailedSend;
use wagate_rules::rate_cards::RateCards;
use wagate_store::keys::idempotency_key;
use wagate_store::{Batch, Family, Store, StoreError};

const PARKED: Family = Family::Idempotency;

fn early_key(wamid: &str) -> Vec<u8> {
    idempotency_key(0, &format!("early:{wamid}"))
}

/// What pricing a status of a message not settled yet needs from the status itself: its
/// number, recipient and time, and when the parked charge may be forgotten.
#[derive(Debug, Clone)]
pub(crate) struct EarlyPricing {
    pub number: wagate_rules::ids::PhoneNumberId,
    pub to: Option<wagate_rules::ids::Msisdn>,
    pub at: wagate_rules::clock::Timestamp,
    pub expires_at: u64,
    /// The number's portfolio's volume counts: the tier Meta's charge is priced at.
    pub volume: Option<std::sync::Arc<wagate_rules::volume::VolumeCounts>>,
}

/// Where a status webhook moves a message: its delivery state and, for `Failed`, Meta's
/// error code (0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryState {
    pub delivery: Delivery,
    pub error: u32,
}

/// `[expiry u64 BE][delivery u8][error u32 BE]`: the expiry first, as the family requires.
fn decode(value: &[u8]) -> Option<DeliveryState> {
    let delivery = Delivery::from_u8(*value.get(8)?)?;
    let error = u32::from_be_bytes(value.get(9..13)?.try_into().ok()?);
    Some(DeliveryState { delivery, error })
}

fn encode(expires_at: u64, state: DeliveryState) -> [u8; 13] {
    let mut out = [0u8; 13];
    out[..8].copy_from_slice(&expires_at.to_be_bytes());
    out[8] = state.delivery as u8;
    out[9..].copy_from_slice(&state.error.to_be_bytes());
    out
}

/// Delivery statuses recorded together: applied to their messages' sent records, or parked
/// for messages not settled yet, in one synced write ([`StatusWrites::flush`]) however many
/// there are. Several statuses of one message in one set see each other.
pub(crate) struct StatusWrites {
    /// The ledger rows' markets are written by name on these cards.
    cards: RateCards,
    batch: Batch,
    /// Sent records as this set leaves them, by wamid.
    sent: HashMap<String, SentRecord>,
    parked: HashMap<String, DeliveryState>,
    /// Messages this set moved to failed and uncharged: the shards take back their slots.
    failed: Vec<FailedSend>,
    /// Meta's charges this set recorded (`None`: taken back), by wamid.
    charged: HashMap<String, Option<Charge>>,
    /// Group participants' statuses this set wrote (`groups`), by key.
    participants: HashMap<Vec<u8>, Vec<u8>>,
}

/// What recording a status did to its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Moved it forward.
    Moved,
    /// It was in that state already: a repeat (Meta retries webhooks).
    AlreadyThere,
    /// It is past that state.
    Behind,
    /// Its message is not settled yet: kept until it is.
    Parked,
}

impl StatusWrites {
    pub(crate) fn new(cards: RateCards) -> StatusWrites {
        StatusWrites {
            cards,
            batch: Batch::default(),
            sent: HashMap::new(),
            parked: HashMap::new(),
            failed: Vec::new(),
            charged: HashMap::new(),
            participants: HashMap::new(),
        }
    }

    /// A group participant's status as this set leaves it (its own write, else the store's).
    pub(crate) fn participant_status(
        &self,
        store: &dyn Store,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.participants.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None => store.get(wagate_store::Family::Groups, key),
        }
    }

    /// Writes a group participant's status with this set.
    pub(crate) fn set_participant_status(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.batch
            .put(wagate_store::Family::Groups, key.clone(), value.clone());
        self.participants.insert(key, value);
    }

    /// Records `next` for the message sent as `wamid`: applied if the message is settled,
    /// else parked until `expires_at`.
    pub(crate) fn record(
        &mut self,
        store: &dyn Store,
        wamid: &str,
        next: DeliveryState,
        expires_at: u64,
    ) -> Result<Recorded, StoreError> {
        match self.sent_record(store, wamid)? {
            Some(record) => self.advance_recorded(store, wamid, record, next),
            None => {
                self.park(store, wamid, next, expires_at)?;
                Ok(Recorded::Parked)
            }
        }
    }

    /// The sent record of the message sent as `wamid`, this set's writes first.
    fn sent_record(
        &self,
        store: &dyn Store,
        wamid: &str,
    ) -> Result<Option<SentRecord>, StoreError> {
        match self.sent.get(wamid) {
            Some(record) => Ok(Some(*record)),
            None => sent_record::read(store, wamid),
        }
    }

    /// Moves the message sent as `wamid` (its sent record `record`) to `next` if that is
    /// forward.
    fn advance(&mut self, wamid: &str, mut record: SentRecord, next: DeliveryState) -> Recorded {
        if record.delivery == next.delivery {
            return Recorded::AlreadyThere;
        }
        if !record.delivery.advances_to(next.delivery) {
            return Recorded::Behind;
        }
        if template_deliveries::counts(&record, next.delivery) {
            template_deliveries::record_into(&record, &mut self.batch);
        }
        if record.campaign != 0 {
            count_for_campaign(&mut self.batch, &record, next.delivery);
        }
        record.delivery = next.delivery;
        if next.delivery == Delivery::Failed {
            record.error = next.error;
        }
        sent_record::write(&mut self.batch, wamid, &record);
        self.sent.insert(wamid.to_string(), record);
        Recorded::Moved
    }

    /// Parks a status for a wamid not yet known, keeping the furthest of those parked.
    fn park(
        &mut self,
        store: &dyn Store,
        wamid: &str,
        next: DeliveryState,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let key = early_key(wamid);
        let parked = self.parked_for(store, wamid, &key)?;
        if parked.is_none_or(|p| p.delivery.advances_to(next.delivery)) {
            self.batch.put(PARKED, &key, encode(expires_at, next));
            self.parked.insert(wamid.to_string(), next);
        }
        Ok(())
    }

    /// What is parked for `wamid` (stored under `key`), this set's writes first.
    fn parked_for(
        &self,
        store: &dyn Store,
        wamid: &str,
        key: &[u8],
    ) -> Result<Option<DeliveryState>, StoreError> {
        match self.parked.get(wamid) {
            Some(parked) => Ok(Some(*parked)),
            None => Ok(store.get(PARKED, key)?.and_then(|v| decode(&v))),
        }
    }

    /// Books Meta's charge parked for the message settled as sent under `wamid`, once.
    fn take_parked_charge(&mut self, store: &dyn Store, wamid: &str) -> Result<(), StoreError> {
        let key = early_charge_key(wamid);
        // Kept as a charge record is (its expiry first): it becomes the message's as it is.
        let Some(value) = store.get(PARKED, &key)? else {
            return Ok(());
        };
        let Some(charge) = Charge::decode(&value) else {
            self.batch.delete(PARKED, &key);
            return Ok(());
        };
        let record = self.sent_record(store, wamid)?;
        let failed = record.is_none_or(|record| record.delivery == Delivery::Failed);
        if !failed && self.charge_for(store, wamid)?.is_none() {
            let campaign = record.map_or(0, |r| r.campaign);
            self.book(&charge, campaign, 1);
            self.batch.put(CHARGES, charge_key(wamid), &value);
            self.charged.insert(wamid.to_string(), Some(charge));
        }
        self.batch.delete(PARKED, &key);
        Ok(())
    }

    /// Applies what was parked for the message settled as sent under `wamid`.
    fn take_parked(&mut self, store: &dyn Store, wamid: &str) -> Result<(), StoreError> {
        let key = early_key(wamid);
        let parked = self.parked_for(store, wamid, &key)?;
        self.parked.remove(wamid);
        if let Some(state) = parked {
            if let Some(record) = self.sent_record(store, wamid)? {
                self.advance_recorded(store, wamid, record, state)?;
            }
            self.batch.delete(PARKED, &key);
        }
        self.take_parked_charge(store, wamid)
    }

    /// Moves a settled message's delivery state; one that fails for good is uncharged too.
    fn advance_recorded(
        &mut self,
        store: &dyn Store,
        wamid: &str,
        record: SentRecord,
        next: DeliveryState,
    ) -> Result<Recorded, StoreError> {
        let recorded = self.advance(wamid, record, next);
        if recorded == Recorded::Moved && next.delivery == Delivery::Failed {
            self.uncharge(store, record.id)?;
            // Meta charges no undelivered message: what its pricing said is taken back too.
            if let Some(charge) = self.charge_for(store, wamid)? {
                self.book(&charge, record.campaign, -1);
                self.batch.delete(CHARGES, charge_key(wamid));
                self.charged.insert(wamid.to_string(), None);
            }
        }
        Ok(recorded)
    }

    /// Records Meta's pricing of the message sent as `wamid`, once: its charge goes to the
    /// reconciled ledger. False when it was recorded already, or the message failed, or it is
    /// not settled yet (then the pricing is not kept: a gap the estimate covers).
    pub(crate) fn reconcile(
        &mut self,
        store: &dyn Store,
        wamid: &str,
        pricing: &StatusPricing,
        early: EarlyPricing,
    ) -> Result<bool, StoreError> {
        let volume = early.volume.as_deref();
        let Some(record) = self.sent_record(store, wamid)? else {
            // Not settled yet: priced from the status and kept until it is.
            if let Some(to) = early.to {
                let charge =
                    Charge::early(early.number, to, early.at, pricing, &self.cards, volume);
                self.batch.put(
                    PARKED,
                    early_charge_key(wamid),
                    charge.encode(early.expires_at),
                );
            }
            return Ok(false);
        };
        let expires_at = early.expires_at;
        if record.delivery == Delivery::Failed || self.charge_for(store, wamid)?.is_some() {
            return Ok(false);
        }
        let charge = Charge::of(&record, pricing, &self.cards, volume);
        self.book(&charge, record.campaign, 1);
        self.batch
            .put(CHARGES, charge_key(wamid), charge.encode(expires_at));
        self.charged.insert(wamid.to_string(), Some(charge));
        Ok(true)
    }

    /// Books Meta's `charge` (`sign` -1: taken back) in the reconciled ledger and, for a
    /// campaign's send, in its reconciled cost.
    fn book(&mut self, charge: &Charge, campaign: u64, sign: i64) {
        charge.book(&mut self.batch, sign, &self.cards);
        if campaign != 0 {
            crate::campaigns::count_charge(&mut self.batch, campaign, charge.micros, sign);
        }
    }

    /// Meta's charge recorded for `wamid`, this set's writes first.
    fn charge_for(&self, store: &dyn Store, wamid: &str) -> Result<Option<Charge>, StoreError> {
        match self.charged.get(wamid) {
            Some(charge) => Ok(*charge),
            None => Ok(store
                .get(CHARGES, &charge_key(wamid))?
                .and_then(|bytes| Charge::decode(&bytes))),
        }
    }

    /// A sent message whose delivery failed for good: Meta charges nothing for it, so its
    /// price is taken back (in the message and the ledger, with the status itself, once: the
    /// message keeps the failure as the mark) and its send noted for the shards.
    fn uncharge(&mut self, store: &dyn Store, id: u64) -> Result<(), StoreError> {
        let key = wagate_store::keys::message_key(id);
        let Some(mut message) = store
            .get(Family::Messages, &key)?
            .and_then(|bytes| super::message::StoredMessage::decode(&bytes))
        else {
            return Ok(());
        };
        if message.delivery == Delivery::Failed {
            return Ok(());
        }
        tracing::debug!(
            message_id = %super::message::message_id_text(id),
            "Meta reported a delivery failed: its price and its recipient's slot are given back"
        );
        self.failed.push(message.failed_send());
        message.uncharge(&mut self.batch, &self.cards);
        message.delivery = Delivery::Failed;
        self.batch.put(Family::Messages, key, message.encode());
        Ok(())
    }

    /// Puts `key` to `value` in the same write (a webhook's dedupe record).
    pub(crate) fn put(&mut self, family: Family, key: &[u8], value: &[u8]) {
        self.batch.put(family, key, value);
    }

    /// Writes everything, synced; then applies what was parked for messages settled
    /// meanwhile. Parking writes before it looks and settling writes before it looks, so one
    /// side always sees the other. Returns the sends whose delivery failed for good, written
    /// uncharged: the shards give back their recipients' slots.
    pub(crate) fn flush(self, store: &dyn Store) -> Result<Vec<FailedSend>, StoreError> {
        if self.batch.is_empty() {
            return Ok(Vec::new());
        }
        store.write(&self.batch, true)?;
        let mut late = Vec::new();
        for wamid in self.parked.keys() {
            if message_id(store, wamid)?.is_some() {
                late.push(wamid.clone());
            }
        }
        let mut failed = self.failed;
        failed.extend(apply_parked(store, &self.cards, &late)?);
        Ok(failed)
    }
}

/// After messages were settled as sent (by wamid), their settlement written: applies the
/// statuses parked for them in the statuses' turn, taken only when some are parked (a webhook
/// group holds it through its synced write). The look for parked keys needs no turn: the
/// settlement was written first, so a status parked after the look finds the message itself
/// when its group flushes.
pub(crate) fn apply_parked_in_turn(
    store: &dyn Store,
    turn: &StatusTurn,
    cards: &RateCards,
    settled: &[String],
) -> Result<Vec<FailedSend>, StoreError> {
    let parked = with_parked(store, settled)?;
    if parked.is_empty() {
        return Ok(Vec::new());
    }
    let _turn = turn.take();
    apply_parked(store, cards, &parked)
}

/// Of messages settled as sent (by wamid), those with a status parked for them.
fn with_parked(store: &dyn Store, settled: &[String]) -> Result<Vec<String>, StoreError> {
    let mut found = Vec::new();
    for wamid in settled {
        if store.get(PARKED, &early_key(wamid))?.is_some() {
            found.push(wamid.clone());
        }
    }
    Ok(found)
}

/// After messages were settled as sent (id, wamid): applies the statuses parked for them, in
/// one write. Returns the sends whose delivery failed for good (written uncharged), for the
/// shards.
pub(crate) fn apply_parked(
    store: &dyn Store,
    cards: &RateCards,
    settled: &[String],
) -> Result<Vec<FailedSend>, StoreError> {
    let mut writes = StatusWrites::new(cards.clone());
    for wamid in settled {
        writes.take_parked(store, wamid)?;
    }
    if writes.batch.is_empty() {
        return Ok(Vec::new());
    }
    store.write(&writes.batch, true)?;
    Ok(writes.failed)
}

/// Counts a campaign's send into each delivery state it reaches from where it was (a status
/// Meta skipped, `read` straight after `sent`, counts the `delivered` it implies).
fn count_for_campaign(batch: &mut Batch, record: &SentRecord, next: Delivery) {
    if next == Delivery::Failed {
        crate::campaigns::count_delivery(batch, record.campaign, Delivery::Failed);
        return;
    }
    for state in [Delivery::Sent, Delivery::Delivered, Delivery::Read] {
        if (record.delivery as u8) < state as u8 && state as u8 <= next as u8 {
            crate::campaigns::count_delivery(batch, record.campaign, state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{DispatchStatus, StoredMessage};
    use super::*;
    use crate::settlement::settle;
    use wagate_store::keys::message_key;
    use wagate_store::MemoryStore;

    fn test_cards() -> RateCards {
        RateCards::embedded("whatsapp-2025").expect("cards")
    }

    fn state(delivery: Delivery, error: u32) -> DeliveryState {
        DeliveryState { delivery, error }
    }

    #[test]
    fn parked_values_round_trip_and_carry_their_expiry() {
        let value = encode(1_800_000_000, state(Delivery::Failed, 131_026));
        assert_eq!(decode(&value), Some(state(Delivery::Failed, 131_026)));
        assert_eq!(wagate_store::expires_at(&value), Some(1_800_000_000));
        assert_eq!(decode(b"\0\0\0\0\0\0\0\0\x09\0\0\0\0"), None);
        let store = MemoryStore::new();
        // Within one set and across two, the furthest parked status is kept.
        let mut writes = StatusWrites::new(test_cards());
        writes
            .record(&store, "wamid.x", state(Delivery::Delivered, 0), 9)
            .unwrap();
        writes
            .record(&store, "wamid.x", state(Delivery::Sent, 0), 9)
            .unwrap();
        writes.flush(&store).unwrap();
        let mut writes = StatusWrites::new(test_cards());
        writes
            .record(&store, "wamid.x", state(Delivery::Sent, 0), 9)
            .unwrap();
        writes.flush(&store).unwrap();
        let kept = store.get(PARKED, &early_key("wamid.x")).unwrap();
        assert_eq!(
            kept.and_then(|v| decode(&v)),
            Some(state(Delivery::Delivered, 0))
        );
    }

    fn in_flight(id: u64) -> StoredMessage {
        StoredMessage {
            id,
            number: wagate_rules::ids::PhoneNumberId(1),
            to: wagate_rules::ids::Msisdn::from_digits(16_505_550_000 + id).unwrap(),
            accepted_at: wagate_rules::clock::Timestamp(0),
            decision: wagate_rules::decision::Accepted {
                category: wagate_rules::template::model::Category::Utility,
                business_initiated: true,
                new_unique_recipient: true,
                price_micros: 5_500,
                market: wagate_rules::volume::MarketId::NONE,
                send_at: wagate_rules::clock::Timestamp(0),
                consent_at: 0,
            },
            status: DispatchStatus::InFlight,
            attempts: 1,
            upstream: String::new(),
            idempotency_key: String::new(),
            payload: Vec::new(),
            delivery: Delivery::None,
            delivery_error: 0,
            expire_at: None,
        }
    }

    fn settled(store: &MemoryStore, id: u64, wamid: &str) {
        let mut batch = Batch::default();
        settle(
            in_flight(id),
            DispatchStatus::Sent,
            wamid.into(),
            &mut batch,
        );
        store.write(&batch, true).unwrap();
    }

    /// Settled before sent records carried the delivery state: the message holds it, and its
    /// wamid only its id.
    fn settled_before_sent_records(store: &MemoryStore, id: u64, wamid: &str) {
        let mut message = in_flight(id);
        message.status = DispatchStatus::Sent;
        message.upstream = wamid.into();
        message.delivery = Delivery::Sent;
        let mut batch = Batch::default();
        batch.put(Family::Messages, message_key(id), message.encode());
        batch.put(Family::UpstreamIds, wamid.as_bytes(), id.to_be_bytes());
        store.write(&batch, true).unwrap();
    }

    fn delivery(store: &MemoryStore, wamid: &str) -> (Delivery, u32) {
        let sent = sent_record::read(store, wamid).unwrap().expect("settled");
        (sent.delivery, sent.error)
    }

    #[test]
    fn a_message_settled_before_sent_records_takes_statuses_and_gets_one() {
        let store = MemoryStore::new();
        settled_before_sent_records(&store, 5, "wamid.e");
        assert_eq!(message_id(&store, "wamid.e").unwrap(), Some(5));
        assert_eq!(delivery(&store, "wamid.e"), (Delivery::Sent, 0));
        let mut writes = StatusWrites::new(test_cards());
        let recorded = writes
            .record(&store, "wamid.e", state(Delivery::Sent, 0), 9)
            .unwrap();
        assert_eq!(recorded, Recorded::AlreadyThere, "the message's own state");
        let recorded = writes
            .record(&store, "wamid.e", state(Delivery::Read, 0), 9)
            .unwrap();
        assert_eq!(recorded, Recorded::Moved);
        writes.flush(&store).unwrap();
        assert_eq!(delivery(&store, "wamid.e"), (Delivery::Read, 0));
        assert_eq!(message_id(&store, "wamid.e").unwrap(), Some(5));
        let record = store.get(Family::UpstreamIds, b"wamid.e").unwrap().unwrap();
        assert_eq!(record.len(), 38, "a sent record of its own now");
    }

    #[test]
    fn statuses_of_one_message_in_one_write_build_on_each_other() {
        let store = MemoryStore::new();
        settled(&store, 1, "wamid.a");
        let mut writes = StatusWrites::new(test_cards());
        let mut record = |delivery| {
            writes
                .record(&store, "wamid.a", state(delivery, 0), 9)
                .unwrap()
        };
        assert_eq!(record(Delivery::Sent), Recorded::Moved);
        assert_eq!(record(Delivery::Delivered), Recorded::Moved);
        assert_eq!(record(Delivery::Delivered), Recorded::AlreadyThere);
        assert_eq!(record(Delivery::Sent), Recorded::Behind);
        // Nothing is visible before the write.
        assert_eq!(delivery(&store, "wamid.a"), (Delivery::None, 0));
        writes.flush(&store).unwrap();
        assert_eq!(delivery(&store, "wamid.a"), (Delivery::Delivered, 0));
        // The message itself is not rewritten for a status.
        let message = store.get(Family::Messages, &message_key(1)).unwrap();
        let message = StoredMessage::decode(&message.unwrap()).unwrap();
        assert_eq!(message.delivery, Delivery::None);
    }

    #[test]
    fn a_parked_status_lands_when_its_message_is_settled_and_is_then_gone() {
        let store = MemoryStore::new();
        let mut writes = StatusWrites::new(test_cards());
        assert_eq!(
            writes
                .record(&store, "wamid.b", state(Delivery::Failed, 131_026), 9)
                .unwrap(),
            Recorded::Parked
        );
        writes.flush(&store).unwrap();
        settled(&store, 2, "wamid.b");
        settled(&store, 4, "wamid.d");
        let both = ["wamid.b".to_string(), "wamid.d".to_string()];
        let parked = with_parked(&store, &both).unwrap();
        assert_eq!(
            parked,
            ["wamid.b".to_string()],
            "only b has a parked status"
        );
        // The parked failure is Meta's word that message 2 reached nobody: uncharged, and
        // handed back for its recipient's slot.
        let failed = apply_parked(&store, &test_cards(), &parked).unwrap();
        assert_eq!(failed, vec![in_flight(2).failed_send()]);
        assert!(with_parked(&store, &both).unwrap().is_empty());
        assert_eq!(delivery(&store, "wamid.b"), (Delivery::Failed, 131_026));
        let message = store.get(Family::Messages, &message_key(2)).unwrap();
        let message = StoredMessage::decode(&message.unwrap()).unwrap();
        assert_eq!(message.decision.price_micros, 0);
        // In the row of its recipient's market.
        let cards = test_cards();
        let row = wagate_store::keys::LedgerRowKey {
            number: 1,
            day: wagate_rules::price::unix_day(0),
            category: 1,
            side: wagate_store::keys::LedgerSide::Estimate,
            market: cards.market_name(cards.market_at(0, message.to)),
        };
        assert_ne!(row.market, "");
        let ledger_row = wagate_store::keys::ledger_key(&row);
        let counters = store.get(Family::Ledger, &ledger_row).unwrap().unwrap();
        assert_eq!(
            wagate_store::add_counters(Some(&counters), &{
                let mut acceptance = 1u64.to_le_bytes().to_vec();
                acceptance.extend_from_slice(&5_500u64.to_le_bytes());
                acceptance
            }),
            [0u8; 16].to_vec(),
            "the reversal of its acceptance"
        );
        assert_eq!(store.get(PARKED, &early_key("wamid.b")).unwrap(), None);
        // Settled while the status was being parked: the flush applies it itself.
        let mut writes = StatusWrites::new(test_cards());
        settled(&store, 3, "wamid.c");
        writes
            .park(&store, "wamid.c", state(Delivery::Read, 0), 9)
            .unwrap();
        writes.flush(&store).unwrap();
        assert_eq!(delivery(&store, "wamid.c"), (Delivery::Read, 0));
    }
}
