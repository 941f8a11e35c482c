//! Hand-over lanes: the threads that take a due batch from the dispatcher and send it through
//! the upstream, marking each message in flight (synced) just before it goes out and settling
//! each as its answer comes.
//!
//! A batch's hand-over lasts as long as its slowest send (Meta's answer, a number's pacing), so
//! one batch at a time would leave the upstream idle between batches. Several lanes keep
//! batches overlapping; each message is in exactly one batch, so overlapping never sends a
//! message twice. A lane returns the batch's retries and whether the disk took its writes.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::combine::StatusTurn;
use super::message::{DispatchStatus, DueMessage, StoredMessage};
use crate::log_limit::{admit, LogLimit};
use crate::settlement::settle;
use crate::tenant_news::{News, NewsWriters};
use crate::upstream::{backoff_micros, HandOver, Upstream, UpstreamError};
use wagate_rules::clock::Timestamp;
use wagate_rules::contact_events::FailedSend;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::rate_cards::RateCards;
use wagate_store::keys::message_key;
use wagate_store::{Batch, Family, Store};

/// Logged at most once a second over every lane (an outage fails thousands of sends).
static UPSTREAM_RETRIES: std::sync::Mutex<LogLimit> = std::sync::Mutex::new(LogLimit::new());
static STORE_FAILURES: std::sync::Mutex<LogLimit> = std::sync::Mutex::new(LogLimit::new());

/// Batches handed over at once.
pub const LANES: usize = 4;

/// What a lane reports of one batch.
pub struct Returned {
    /// Messages that failed for now, back in the outbox with their next attempt's time.
    pub retries: Vec<DueMessage>,
    pub sent: u64,
    pub failed: u64,
    /// Sends cut off with their outcome unknown: left in flight.
    pub unknown: u64,
    /// False when the disk refused the batch's in-flight marks or its settlement.
    pub disk_ok: bool,
}

/// A due batch and the time it was found due (the base of its retries' backoff).
struct Work {
    due: Vec<StoredMessage>,
    now: Timestamp,
}

/// The messages this run's lanes hold: registered before their in-flight mark is written,
/// let go after their settlement is. A message marked in flight on disk but not here was left
/// by an earlier run (or a lane that gave up on a failing disk): only those are an operator's
/// to settle.
#[derive(Default)]
pub struct LiveSends(dashmap::DashSet<u64>);

impl LiveSends {
    pub fn holds(&self, id: u64) -> bool {
        self.0.contains(&id)
    }

    /// Messages handed to the upstream by this run and not settled yet.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Meta's refusal of a send, with its code, for the state the code speaks of to change.
#[derive(Debug, Clone)]
pub struct MetaRefusal {
    pub number: PhoneNumberId,
    pub to: Msisdn,
    pub code: u32,
    /// The send as it went (it names the template a template refusal is about).
    pub payload: Vec<u8>,
}

/// Where sends that failed for good go once settled: the shards, which give back their price
/// and their recipient's slot; and Meta's refusals among them, whose codes change state.
pub type OnFailed = Arc<dyn Fn(Vec<FailedSend>, Vec<MetaRefusal>) + Send + Sync>;

pub use crate::tenant_news::DispatchFailure;

pub struct Lanes {
    work: Option<Sender<Work>>,
    pub returned: Receiver<Returned>,
    threads: Vec<JoinHandle<()>>,
}

impl Lanes {
    pub fn start(
        upstream: Arc<dyn Upstream>,
        store: Arc<dyn Store>,
        turn: StatusTurn,
        cards: RateCards,
        on_failed: OnFailed,
        live: Arc<LiveSends>,
        news: NewsWriters,
    ) -> Lanes {
        // No queue in front of the lanes: the dispatcher keeps what is not handed over in
        // send-slot order, and a batch waits there rather than behind a busy lane.
        let (work, incoming) = bounded::<Work>(0);
        let (report, returned) = unbounded();
        let threads = (0..LANES)
            .map(|i| {
                let (incoming, report) = (incoming.clone(), report.clone());
                let (upstream, store, turn) = (upstream.clone(), store.clone(), turn.clone());
                let cards = cards.clone();
                let on_failed = on_failed.clone();
                let live = live.clone();
                let news = news.clone();
                std::thread::Builder::new()
                    .name(format!("wagate-hand-over-{i}"))
                    .spawn(move || {
                        for work in incoming {
                            let books = Books {
                                store: store.as_ref(),
                                turn: &turn,
                                cards: &cards,
                                news: &news,
                            };
                            let returned = hand_over(
                                work.due,
                                upstream.as_ref(),
                                books,
                                work.now,
                                on_failed.as_ref(),
                                &live,
                            );
                            if report.send(returned).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("spawning a hand-over lane")
            })
            .collect();
        Lanes {
            work: Some(work),
            returned,
            threads,
        }
    }

    /// Gives `due` to a free lane, waiting for one.
    pub fn hand(&self, due: Vec<StoredMessage>, now: Timestamp) {
        let work = self.work.as_ref().expect("lanes open until joined");
        // The lanes only stop when `work` is dropped, so a send cannot fail here.
        let _ = work.send(Work { due, now });
    }

    /// Lets the lanes finish what they were given, and waits for them.
    pub fn join(mut self) {
        self.work = None;
        for thread in self.threads.drain(..) {
            thread.join().expect("a hand-over lane panicked");
        }
    }
}

/// Sends `due` through the upstream, which marks each message in flight just before it goes
/// and settles each as its answer comes (through [`Handing`]).
/// Where a batch's outcomes are written: the store, in the statuses' turn where parked
/// statuses apply, a failed send's reversal in its market's ledger row (`cards`).
#[derive(Clone, Copy)]
struct Books<'a> {
    store: &'a dyn Store,
    turn: &'a StatusTurn,
    cards: &'a RateCards,
    /// Writes what tenants hear of sends that failed for good, with their settlement.
    news: &'a NewsWriters,
}

impl Books<'_> {
    /// Puts the tenants' news of `told` (failed for good at `now`) into `batch`: how many.
    fn news_of(&self, told: &[DispatchFailure], now: Timestamp, batch: &mut Batch) -> usize {
        let Some(writer) = self.news.get() else {
            return 0;
        };
        told.iter()
            .map(|failure| writer.write(News::DispatchFailed(failure, now), batch))
            .sum()
    }

    /// `count` records of news are durable now.
    fn news_committed(&self, count: usize) {
        if let (Some(writer), true) = (self.news.get(), count > 0) {
            writer.committed(count);
        }
    }
}

fn hand_over(
    mut due: Vec<StoredMessage>,
    upstream: &dyn Upstream,
    books: Books<'_>,
    now: Timestamp,
    on_failed: &(dyn Fn(Vec<FailedSend>, Vec<MetaRefusal>) + Send + Sync),
    live: &LiveSends,
) -> Returned {
    let (expired, unwritten) = drop_expired(&mut due, books, now, on_failed);
    // Each message as it goes out: the upstream sees the attempt it is (on disk once marked;
    // one never marked is still pending there, as the dispatcher read it).
    for message in &mut due {
        message.status = DispatchStatus::InFlight;
        message.attempts += 1;
    }
    let mut handing = Handing {
        due: &due,
        marked: vec![None; due.len()],
        answered: vec![false; due.len()],
        store: books.store,
        turn: books.turn,
        cards: books.cards,
        books,
        now,
        on_failed,
        live,
        returned: Returned {
            retries: Vec::new(),
            sent: 0,
            failed: 0,
            unknown: 0,
            disk_ok: true,
        },
    };
    upstream.send_all(&due, &mut handing);
    let mut returned = handing.finish();
    returned.failed += expired;
    returned.retries.extend(unwritten);
    returned
}

/// Takes out of `due` the messages whose validity ended before their turn came: settled as
/// failed, never sent (their price and recipient's slot given back, their tenant told as of a
/// send refused for good). Returns how many, and those to try again when the store could not
/// record them (still pending on disk).
fn drop_expired(
    due: &mut Vec<StoredMessage>,
    books: Books<'_>,
    now: Timestamp,
    on_failed: &(dyn Fn(Vec<FailedSend>, Vec<MetaRefusal>) + Send + Sync),
) -> (u64, Vec<DueMessage>) {
    if !due.iter().any(|m| m.expire_at.is_some_and(|at| now >= at)) {
        return (0, Vec::new());
    }
    let (expired, going): (Vec<_>, Vec<_>) = std::mem::take(due)
        .into_iter()
        .partition(|m| m.expire_at.is_some_and(|at| now >= at));
    *due = going;
    let (mut settled, mut failed, mut told) = (Batch::default(), Vec::new(), Vec::new());
    let again: Vec<DueMessage> = expired.iter().map(StoredMessage::due).collect();
    let reason = "expired: the send's validity ended before its turn came; never sent late";
    for mut message in expired {
        tracing::warn!(
            message_id = %super::message::message_id_text(message.id),
            "a send's validity ended before its turn came: dropped, never sent late"
        );
        failed.push(message.failed_send());
        told.push(DispatchFailure {
            message_id: message.id,
            number: message.number,
            to: message.to,
            code: Some(wagate_cloud_api::error::WAGATE_EXPIRED_CODE),
            reason: reason.into(),
        });
        message.uncharge(&mut settled, books.cards);
        settle(message, DispatchStatus::Failed, reason.into(), &mut settled);
    }
    let news = books.news_of(&told, now, &mut settled);
    if let Err(error) = books.store.write(&settled, false) {
        if let Some(times) = admit(&STORE_FAILURES) {
            tracing::error!(%error, times, "recording expired sends failed: they stay pending");
        }
        return (0, again);
    }
    books.news_committed(news);
    let count = failed.len() as u64;
    on_failed(failed, Vec::new());
    (count, Vec::new())
}

/// One batch's hand-over in progress: which messages went out and which were answered.
struct Handing<'a> {
    /// The batch, each message as it will be marked in flight.
    due: &'a [StoredMessage],
    /// Each message as marked in flight, once it went out; taken when it is settled.
    marked: Vec<Option<StoredMessage>>,
    answered: Vec<bool>,
    store: &'a dyn Store,
    turn: &'a StatusTurn,
    /// The ledger's markets, by name, for a failed send's reversal.
    cards: &'a RateCards,
    books: Books<'a>,
    now: Timestamp,
    on_failed: &'a (dyn Fn(Vec<FailedSend>, Vec<MetaRefusal>) + Send + Sync),
    live: &'a LiveSends,
    returned: Returned,
}

impl Handing<'_> {
    /// What the upstream never sent goes back to the queue as it was (still pending on disk);
    /// what went out and was never answered stays in flight.
    fn finish(mut self) -> Returned {
        for (index, message) in self.due.iter().enumerate() {
            if self.marked[index].is_none() && !self.answered[index] {
                self.returned.retries.push(message.due());
            } else if !self.answered[index] {
                tracing::warn!(
                    message_id = %super::message::message_id_text(message.id),
                    "the upstream gave no answer for a send: it stays in flight for an operator"
                );
                self.live.0.remove(&message.id);
                self.returned.unknown += 1;
            }
        }
        self.returned
    }
}

impl HandOver for Handing<'_> {
    fn going_out(&mut self, indices: &[usize]) -> bool {
        if !self.returned.disk_ok {
            return false;
        }
        let mut marks = Batch::default();
        let mut marked = Vec::with_capacity(indices.len());
        for &index in indices {
            let message = self.due[index].clone();
            // Registered before the mark is written: the in-flight list never shows a live send.
            self.live.0.insert(message.id);
            marks.put(Family::Outbox, message_key(message.id), message.encode());
            marked.push((index, message));
        }
        if let Err(error) = self.store.write(&marks, true) {
            if let Some(times) = admit(&STORE_FAILURES) {
                tracing::error!(%error, times, "marking sends in flight failed: they wait");
            }
            // Nothing went out: the messages are as the disk still has them.
            for (_, message) in marked {
                self.live.0.remove(&message.id);
            }
            self.returned.disk_ok = false;
            return false;
        }
        for (index, message) in marked {
            self.marked[index] = Some(message);
        }
        true
    }

    fn outcomes(&mut self, outcomes: Vec<(usize, Result<String, UpstreamError>)>) {
        let mut settled = Batch::default();
        let mut sent_wamids = Vec::new();
        let mut failed = Vec::new();
        let mut refused = Vec::new();
        let mut told = Vec::new();
        let mut answered = Vec::with_capacity(outcomes.len());
        for (index, result) in outcomes {
            let Some(mut message) = self.marked.get_mut(index).and_then(Option::take) else {
                continue; // not marked, or settled already: an upstream's mistake
            };
            self.answered[index] = true;
            answered.push(message.id);
            match result {
                Ok(upstream_id) => {
                    sent_wamids.push(upstream_id.clone());
                    settle(message, DispatchStatus::Sent, upstream_id, &mut settled);
                    self.returned.sent += 1;
                }
                Err(error @ (UpstreamError::Permanent(_) | UpstreamError::Refused { .. })) => {
                    let code = match &error {
                        UpstreamError::Refused { code, .. } => Some(*code),
                        _ => None,
                    };
                    let reason = match error {
                        UpstreamError::Refused { code, reason } => {
                            refused.push(MetaRefusal {
                                number: message.number,
                                to: message.to,
                                code,
                                payload: message.payload.clone(),
                            });
                            reason
                        }
                        UpstreamError::Permanent(reason)
                        | UpstreamError::Retryable(reason)
                        | UpstreamError::Unknown(reason) => reason,
                    };
                    tracing::warn!(
                        message_id = %super::message::message_id_text(message.id),
                        %reason,
                        "the upstream refused a send for good: its price and its recipient's slot are given back"
                    );
                    failed.push(message.failed_send());
                    told.push(DispatchFailure {
                        message_id: message.id,
                        number: message.number,
                        to: message.to,
                        code,
                        reason: reason.clone(),
                    });
                    message.uncharge(&mut settled, self.cards);
                    settle(message, DispatchStatus::Failed, reason, &mut settled);
                    self.returned.failed += 1;
                }
                Err(UpstreamError::Unknown(reason)) => {
                    // Marked in flight on disk already: left so, never pending (invariant 10).
                    tracing::warn!(
                        message_id = %super::message::message_id_text(message.id),
                        %reason,
                        "a send was cut off: it stays in flight for an operator"
                    );
                    self.returned.unknown += 1;
                }
                Err(UpstreamError::Retryable(reason)) => {
                    if let Some(retries) = admit(&UPSTREAM_RETRIES) {
                        tracing::warn!(
                            message_id = %super::message::message_id_text(message.id),
                            %reason,
                            attempts = message.attempts,
                            retries,
                            "a send failed for now: it is retried with backoff"
                        );
                    }
                    message.status = DispatchStatus::Pending;
                    // Kept so that the message's state says why it is waiting.
                    message.upstream = reason;
                    message.decision.send_at =
                        Timestamp(self.now.0 + backoff_micros(message.attempts));
                    // Waiting for a retry, the message stays in the outbox.
                    settled.put(Family::Outbox, message_key(message.id), message.encode());
                    self.returned.retries.push(message.due());
                }
            }
        }
        // The tenants' news of sends refused for good goes with their settlement.
        let news = self.books.news_of(&told, self.now, &mut settled);
        // Not synced: a stop before this reaches the disk leaves the messages in flight, and
        // the restart asks the upstream about them.
        let written = match self.store.write(&settled, false) {
            Ok(()) => {
                self.books.news_committed(news);
                true
            }
            Err(error) => {
                if let Some(times) = admit(&STORE_FAILURES) {
                    tracing::error!(
                        %error,
                        times,
                        "recording send outcomes failed: those sends stay in flight for an operator"
                    );
                }
                false
            }
        };
        self.returned.disk_ok &= written;
        // Let go once settled (or given up on: a lane whose disk failed leaves them in flight
        // for an operator).
        for id in answered {
            self.live.0.remove(&id);
        }
        if written {
            // Statuses that came before this settlement were parked; they apply now.
            // (A failure here leaves them parked: the next status for the message applies them.)
            if let Ok(late) = super::early_status::apply_parked_in_turn(
                self.store,
                self.turn,
                self.cards,
                &sent_wamids,
            ) {
                failed.extend(late);
            }
            if !failed.is_empty() || !refused.is_empty() {
                (self.on_failed)(failed, refused);
            }
        }
    }
}
