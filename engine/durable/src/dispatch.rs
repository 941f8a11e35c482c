//! The dispatcher: accepted messages, durable, go to the upstream in send-slot order.
//!
//! Exactly once across crashes needs the upstream's help, because no write can be atomic with a
//! network send. So a message is marked in flight with a synced write before it is handed over
//! and settled after; on restart, a message still in flight is not sent again blindly: the
//! upstream is asked whether it has it ([`Upstream::reconcile`]). An upstream that cannot say
//! (`Unknown`) leaves the message in flight for an operator or a later status event, which is
//! the at-most-once side; it is never sent twice.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};

use super::hand_over::{Lanes, Returned, LANES};
use super::message::{DueMessage, StoredMessage};
use super::metrics::time_queued_histogram;
pub use super::upstream::{HandOver, Reconciled, Upstream, UpstreamError};
use prometheus_client::metrics::histogram::Histogram;
use wagate_rules::clock::{Clock, Timestamp};
use wagate_store::keys::message_key;
use wagate_store::{Family, Store, StoreError};

/// Messages handed over per synced in-flight mark.
const DISPATCH_BATCH: usize = 512;
const POLL: Duration = Duration::from_millis(5);

/// What waiting callers can see of the dispatcher.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchView {
    /// Messages waiting for their slot or a retry.
    pub queued: usize,
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    /// Rounds that drained the input and found nothing due.
    pub idle_rounds: u64,
}

pub struct DispatchWatch {
    view: Mutex<DispatchView>,
    changed: Condvar,
    /// Acceptance to first hand-over, observed as messages go to a lane.
    pub time_queued: Histogram,
}

impl Default for DispatchWatch {
    fn default() -> Self {
        DispatchWatch {
            view: Mutex::default(),
            changed: Condvar::new(),
            time_queued: time_queued_histogram(),
        }
    }
}

impl DispatchWatch {
    pub fn view(&self) -> DispatchView {
        *self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until everything handed to the dispatcher before this call and due now has been
    /// handed to the upstream (or `timeout`). Two idle rounds after the call began mean one
    /// round started after it, drained the input and found nothing due.
    pub fn wait_idle(&self, timeout: Duration) -> DispatchView {
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let target = view.idle_rounds + 2;
        let (view, _) = self
            .changed
            .wait_timeout_while(view, timeout, |v| v.idle_rounds < target)
            .unwrap_or_else(|e| e.into_inner());
        *view
    }

    fn publish(&self, update: impl FnOnce(&mut DispatchView)) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        update(&mut view);
        self.changed.notify_all();
    }
}

/// Waiting messages in send-slot order; the records stay on disk until due.
#[derive(Default)]
struct Queue {
    order: BinaryHeap<Reverse<DueMessage>>,
}

impl Queue {
    fn push(&mut self, message: DueMessage) {
        self.order.push(Reverse(message));
    }

    /// Up to `limit` messages due at `now`, read back from the outbox.
    fn due(
        &mut self,
        now: Timestamp,
        limit: usize,
        store: &dyn Store,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut due = Vec::new();
        while due.len() < limit {
            match self.order.peek() {
                Some(Reverse(next)) if next.send_at <= now => {}
                _ => break,
            }
            let Reverse(next) = self.order.pop().expect("peeked");
            // Absent: settled already (a message restored as pending and also re-announced).
            if let Some(bytes) = store.get(Family::Outbox, &message_key(next.id))? {
                due.extend(StoredMessage::decode(&bytes));
            }
        }
        Ok(due)
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}

pub struct Dispatcher {
    thread: JoinHandle<()>,
    pub watch: Arc<DispatchWatch>,
}

impl Dispatcher {
    /// Starts dispatching `backlog` (messages pending from before a restart) and whatever
    /// arrives on `incoming` through `lanes`; once `incoming` is closed, hands over what is
    /// due by then and stops (later slots and retries stay pending on disk).
    pub fn start(
        backlog: Vec<DueMessage>,
        incoming: Receiver<DueMessage>,
        lanes: Lanes,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Dispatcher {
        let watch = Arc::new(DispatchWatch::default());
        let seen = watch.clone();
        let thread = std::thread::Builder::new()
            .name("wagate-dispatch".into())
            .spawn(move || run(backlog, incoming, lanes, store, clock, seen))
            .expect("spawning the dispatcher");
        Dispatcher { thread, watch }
    }

    /// Waits for the dispatcher to stop (after its input closed).
    pub fn join(self) {
        self.thread.join().expect("the dispatcher panicked");
    }
}

fn run(
    backlog: Vec<DueMessage>,
    incoming: Receiver<DueMessage>,
    lanes: Lanes,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    watch: Arc<DispatchWatch>,
) {
    let mut queue = Queue::default();
    for message in backlog {
        queue.push(message);
    }
    let mut dispatching = Dispatching {
        queue,
        lanes,
        incoming,
        outstanding: 0,
        stopped_at: None,
        store,
        clock,
        watch,
    };
    // Every way out (the disk refused a write or a read; stopped with nothing due) ends here.
    let stop = loop {
        if let Err(stop) = dispatching.round() {
            break stop;
        }
    };
    match stop {
        Stop::Disk => tracing::error!(
            queued = dispatching.queue.len(),
            "the dispatcher stopped: the disk refused a write or a read; nothing more is sent \
             until a restart, which resumes from what the disk holds"
        ),
        Stop::Done => tracing::info!("the dispatcher stopped: nothing due is left"),
    }
    // Batches still out finish (their retries are on disk for the next start).
    dispatching.lanes.join();
}

/// The dispatcher thread's state between rounds.
struct Dispatching {
    queue: Queue,
    lanes: Lanes,
    incoming: Receiver<DueMessage>,
    /// Batches given to lanes and not yet returned.
    outstanding: usize,
    /// Set when the input closes (the engine is stopping): what is due by then is handed over,
    /// what comes due later stays pending on disk for the next start. Without it, a backlog
    /// paced over minutes would hold the stop for minutes.
    stopped_at: Option<Timestamp>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    watch: Arc<DispatchWatch>,
}

/// Why the dispatcher stops handing messages over.
enum Stop {
    /// The disk refused a batch's writes or a read: a restart resumes from what it holds.
    Disk,
    /// The input closed and nothing due by then is left.
    Done,
}

impl Dispatching {
    /// Takes what arrived and what came back, hands over one due batch if a lane is free, and
    /// otherwise waits for input, a lane, or a slot.
    fn round(&mut self) -> Result<(), Stop> {
        self.take_input();
        while let Ok(returned) = self.lanes.returned.try_recv() {
            self.take_returned(returned)?;
        }
        if self.outstanding < LANES && self.hand_over_due()? {
            return Ok(());
        }
        crossbeam_channel::select! {
            recv(self.incoming) -> message => {
                // Closed: the next round's `take_input` notes the stop.
                if let Ok(message) = message {
                    self.queue.push(message);
                }
            },
            recv(self.lanes.returned) -> returned => {
                if let Ok(returned) = returned {
                    self.take_returned(returned)?;
                }
            },
            default(POLL) => {}
        }
        Ok(())
    }

    fn take_input(&mut self) {
        loop {
            match self.incoming.try_recv() {
                Ok(message) => self.queue.push(message),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.stopped_at.get_or_insert_with(|| self.clock.now());
                    // A closed channel is always ready: waiting on it would spin while the
                    // lanes finish.
                    self.incoming = crossbeam_channel::never();
                    return;
                }
            }
        }
    }

    fn take_returned(&mut self, returned: Returned) -> Result<(), Stop> {
        self.outstanding -= 1;
        let retried = returned.retries.len() as u64;
        for retry in returned.retries {
            self.queue.push(retry);
        }
        self.watch.publish(|v| {
            v.sent += returned.sent;
            v.failed += returned.failed;
            v.retried += retried;
        });
        if returned.disk_ok {
            Ok(())
        } else {
            Err(Stop::Disk)
        }
    }

    /// Hands a batch due now to a lane: `true` if there was one. With none due and no batch
    /// out, the round counts as idle, and a stopped dispatcher is done.
    fn hand_over_due(&mut self) -> Result<bool, Stop> {
        let now = match self.stopped_at {
            Some(stop) => stop.min(self.clock.now()),
            None => self.clock.now(),
        };
        let due = self
            .queue
            .due(now, DISPATCH_BATCH, self.store.as_ref())
            .map_err(|_| Stop::Disk)?;
        let queued = self.queue.len();
        if !due.is_empty() {
            self.watch.publish(|v| v.queued = queued + due.len());
            for first in due.iter().filter(|m| m.attempts == 0) {
                let waited = now.0.saturating_sub(first.accepted_at.0);
                self.watch.time_queued.observe(waited as f64 / 1e6);
            }
            self.lanes.hand(due, now);
            self.outstanding += 1;
            return Ok(true);
        }
        if self.outstanding == 0 {
            self.watch.publish(|v| {
                v.queued = queued;
                v.idle_rounds += 1;
            });
            if self.stopped_at.is_some() {
                return Err(Stop::Done);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::combine::StatusTurn;
    use crate::message::Delivery;
    use crate::message::DispatchStatus;
    use wagate_rules::clock::ManualClock;
    use wagate_rules::clock::MICROS_PER_SEC;
    use wagate_rules::decision::Accepted;
    use wagate_rules::ids::{Msisdn, PhoneNumberId};
    use wagate_rules::template::model::Category;
    use wagate_store::Batch;
    use wagate_store::MemoryStore;

    /// An upstream that takes a second per send, as a slow Meta would.
    struct SlowUpstream {
        clock: ManualClock,
        sent: Mutex<Vec<u64>>,
    }

    impl Upstream for SlowUpstream {
        fn send(&self, message: &StoredMessage) -> Result<String, UpstreamError> {
            self.sent.lock().unwrap().push(message.id);
            self.clock.advance_secs(1);
            Ok(format!("wamid.{}", message.id))
        }

        fn reconcile(&self, _: &StoredMessage) -> Reconciled {
            Reconciled::Unknown
        }
    }

    /// Lanes for a test: no statuses waiting, failures go nowhere, nothing else sending.
    fn lanes(upstream: Arc<dyn Upstream>, store: Arc<dyn Store>) -> Lanes {
        Lanes::start(
            upstream,
            store,
            StatusTurn::default(),
            wagate_rules::rate_cards::RateCards::embedded("whatsapp-2025").expect("cards"),
            Arc::new(|_, _| {}),
            Arc::default(),
            Arc::default(),
        )
    }

    /// An upstream whose every send is cut off with its outcome unknown.
    struct CutOff;

    impl Upstream for CutOff {
        fn send(&self, _: &StoredMessage) -> Result<String, UpstreamError> {
            Err(UpstreamError::Unknown(
                "the send task ended: cancelled".into(),
            ))
        }

        fn reconcile(&self, _: &StoredMessage) -> Reconciled {
            Reconciled::Unknown
        }
    }

    #[test]
    fn a_send_cut_off_stays_in_flight_and_is_never_tried_again() {
        let clock = ManualClock::at_2026();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let message = pending(1, clock.now());
        let mut records = Batch::default();
        records.put(Family::Outbox, message_key(1), message.encode());
        store.write(&records, true).unwrap();
        let (sender, incoming) = crossbeam_channel::unbounded();
        drop(sender);
        let dispatcher = Dispatcher::start(
            vec![message.due()],
            incoming,
            lanes(Arc::new(CutOff), store.clone()),
            store.clone(),
            Arc::new(clock),
        );
        let watch = dispatcher.watch.clone();
        dispatcher.join();
        let left = store.get(Family::Outbox, &message_key(1)).unwrap();
        let left = StoredMessage::decode(&left.expect("still in the outbox")).unwrap();
        // Pending would send it again at the next start; Meta may have it already.
        assert_eq!((left.status, left.attempts), (DispatchStatus::InFlight, 1));
        assert_eq!(watch.view().retried, 0);
    }

    fn pending(id: u64, send_at: Timestamp) -> StoredMessage {
        StoredMessage {
            id,
            number: PhoneNumberId(106_540_352_242_922),
            to: Msisdn::from_digits(16_505_550_000 + id).unwrap(),
            accepted_at: send_at,
            decision: Accepted {
                category: Category::Utility,
                business_initiated: true,
                new_unique_recipient: true,
                price_micros: 0,
                market: wagate_rules::volume::MarketId::NONE,
                send_at,
                consent_at: 0,
            },
            status: DispatchStatus::Pending,
            attempts: 0,
            upstream: String::new(),
            idempotency_key: String::new(),
            payload: b"{}".to_vec(),
            delivery: Delivery::default(),
            delivery_error: 0,
            expire_at: None,
        }
    }

    /// An upstream that has every message it is asked about.
    struct HasEverything;

    impl Upstream for HasEverything {
        fn send(&self, message: &StoredMessage) -> Result<String, UpstreamError> {
            Ok(format!("wamid.{}", message.id))
        }

        fn reconcile(&self, message: &StoredMessage) -> Reconciled {
            Reconciled::Delivered(format!("wamid.{}", message.id))
        }
    }

    #[test]
    fn a_message_reconciled_as_sent_takes_the_status_that_waited_for_it() {
        use crate::early_status::{DeliveryState, StatusWrites};
        let store = MemoryStore::new();
        // Meta reported it read before the stop; it was still in flight, so the status waited.
        let mut statuses = StatusWrites::new(
            wagate_rules::rate_cards::RateCards::embedded("whatsapp-2025").expect("cards"),
        );
        let read = DeliveryState {
            delivery: Delivery::Read,
            error: 0,
        };
        assert_eq!(
            statuses.record(&store, "wamid.7", read, u64::MAX).unwrap(),
            crate::early_status::Recorded::Parked
        );
        statuses.flush(&store).unwrap();
        let mut in_flight = pending(7, Timestamp(0));
        in_flight.status = DispatchStatus::InFlight;
        let (resend, _) = crate::recovery::reconcile(
            vec![in_flight],
            &HasEverything,
            &store,
            &wagate_rules::rate_cards::RateCards::embedded("whatsapp-2025").expect("cards"),
        )
        .unwrap();
        assert!(resend.is_empty());
        let settled = store.get(Family::Messages, &message_key(7)).unwrap();
        let settled = StoredMessage::decode(&settled.unwrap()).unwrap();
        let sent = crate::sent_record::read(&store, "wamid.7").unwrap();
        assert_eq!(
            (settled.status, sent.map(|s| (s.id, s.delivery))),
            (DispatchStatus::Sent, Some((7, Delivery::Read)))
        );
    }

    #[test]
    fn a_stop_hands_over_what_is_due_then_and_leaves_later_slots_pending() {
        let clock = ManualClock::at_2026();
        let start = clock.now();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut backlog = Vec::new();
        let mut records = Batch::default();
        // One slot a second; each send takes a second, so a slot is always due next.
        for id in 1..=10 {
            let message = pending(id, Timestamp(start.0 + (id - 1) * MICROS_PER_SEC));
            records.put(Family::Outbox, message_key(id), message.encode());
            backlog.push(message.due());
        }
        store.write(&records, true).unwrap();
        let upstream = Arc::new(SlowUpstream {
            clock: clock.clone(),
            sent: Mutex::default(),
        });
        // The input is closed from the start: the engine is stopping at `start`.
        let (sender, incoming) = crossbeam_channel::unbounded();
        drop(sender);
        Dispatcher::start(
            backlog,
            incoming,
            lanes(upstream.clone(), store.clone()),
            store.clone(),
            Arc::new(clock),
        )
        .join();
        assert_eq!(*upstream.sent.lock().unwrap(), vec![1]);
        for id in 2..=10 {
            let left = store.get(Family::Outbox, &message_key(id)).unwrap();
            let left = StoredMessage::decode(&left.expect("still in the outbox")).unwrap();
            assert_eq!((left.status, left.attempts), (DispatchStatus::Pending, 0));
        }
    }

    /// Holds message 1 until the last message has been sent (or ten seconds pass).
    struct HoldsTheFirst {
        last: u64,
        sent: Mutex<Vec<u64>>,
        last_sent: Condvar,
    }

    impl Upstream for HoldsTheFirst {
        fn send(&self, message: &StoredMessage) -> Result<String, UpstreamError> {
            let mut sent = self.sent.lock().unwrap();
            if message.id == 1 {
                let last = self.last;
                sent = self
                    .last_sent
                    .wait_timeout_while(sent, Duration::from_secs(10), |s| !s.contains(&last))
                    .unwrap()
                    .0;
                if !sent.contains(&last) {
                    return Err(UpstreamError::Permanent("held behind its own batch".into()));
                }
            }
            sent.push(message.id);
            self.last_sent.notify_all();
            Ok(format!("wamid.{}", message.id))
        }

        fn reconcile(&self, _: &StoredMessage) -> Reconciled {
            Reconciled::Unknown
        }
    }

    #[test]
    fn a_slow_batch_does_not_hold_back_the_next_and_each_message_goes_once() {
        let clock = ManualClock::at_2026();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // One batch more than fits in one hand-over: the last message is in a second batch.
        let last = DISPATCH_BATCH as u64 + 1;
        let mut records = Batch::default();
        let mut backlog = Vec::new();
        for id in 1..=last {
            let message = pending(id, clock.now());
            records.put(Family::Outbox, message_key(id), message.encode());
            backlog.push(message.due());
        }
        store.write(&records, true).unwrap();
        let upstream = Arc::new(HoldsTheFirst {
            last,
            sent: Mutex::default(),
            last_sent: Condvar::new(),
        });
        let (sender, incoming) = crossbeam_channel::unbounded();
        let dispatcher = Dispatcher::start(
            backlog,
            incoming,
            lanes(upstream.clone(), store.clone()),
            store.clone(),
            Arc::new(clock),
        );
        let view = dispatcher.watch.wait_idle(Duration::from_secs(30));
        drop(sender);
        dispatcher.join();
        assert_eq!((view.sent, view.failed), (last, 0));
        let mut sent = upstream.sent.lock().unwrap().clone();
        let at = |wanted: u64| sent.iter().position(|&id| id == wanted);
        assert!(
            at(last) < at(1),
            "the second batch went while the first was held"
        );
        sent.sort_unstable();
        assert_eq!(sent, (1..=last).collect::<Vec<_>>());
        assert!(store
            .get(Family::Outbox, &message_key(1))
            .unwrap()
            .is_none());
    }
}
