//! [`Wagate`]: open with a config, submit sends, feed inbound and status events, read usage and
//! the ledger, shut down cleanly.

pub mod admin;
mod campaigns;
mod delivery_path;
mod group_sends;
mod kept_calls;
mod meta_refusals;
mod number_facts;

pub use campaigns::CampaignError;
pub use number_facts::NumberFacts;
pub mod webhook;
pub use webhook::MovedStatus;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::unbounded;
use dashmap::DashSet;

use super::combine::{Combiner, StatusTurn};
use super::commit::Durability;
use super::deferred::DeferredRecord;
use super::dispatch::{DispatchView, Dispatcher, Upstream};
use super::hand_over::Lanes;
use super::idempotency::StoredOutcome;
use super::message::{DispatchStatus, StoredMessage};
use super::recovery;
use super::release_queue::ReleaseQueue;
use super::sent_record;
use super::submission::{Prepared, Submission};
pub use super::submit_error::SubmitError;
use crate::metrics::DurableMetrics;
pub use crate::open_error::OpenError;
use crate::recovery::NEXT_ID_BLOCK;
use crate::workers::{
    BusinessBlock, Consent, ContactRead, DeliveryFailed, Inbound, Onward, SendFailed, ShardPool,
    Submit, Submitted,
};
use admin::AdminError;
use wagate_cloud_api::webhooks::events::WebhookEvent;
use wagate_rules::clock::{Clock, Timestamp};
use wagate_rules::config::EngineConfig;
use wagate_rules::contact_events::{ConsentChange, FailureEffect, InboundEffect, InboundMessage};
use wagate_rules::decision::{Accepted, Decision, DeferReason, Refusal};
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::price::Ledger;
use wagate_rules::registry::Registry;
use wagate_rules::state::contact::ConsentSource;
use wagate_rules::usage::Usage;
use wagate_store::keys::LedgerSide;
use wagate_store::keys::{deferred_key, message_key};
use wagate_store::RocksStore;
use wagate_store::{Family, Store, StoreError};
use webhook::WebhookReport;

#[derive(Debug, Clone)]
pub struct WagateConfig {
    pub engine: EngineConfig,
    /// Where RocksDB keeps its files.
    pub data_dir: PathBuf,
    /// How long a retry with the same idempotency key gets the original answer.
    pub idempotency_retention_secs: u64,
    /// Sync every group commit to the write-ahead log before acknowledging (the default).
    /// Off, an acknowledged message can be lost to a machine crash (not a process crash).
    pub sync: bool,
    /// How long after its last group commit a shard takes a small group (see
    /// `commit::wait_before_group`).
    pub commit_interval: std::time::Duration,
}

impl Default for WagateConfig {
    fn default() -> Self {
        WagateConfig {
            engine: EngineConfig::default(),
            data_dir: PathBuf::from("./data"),
            idempotency_retention_secs: 86_400,
            sync: true,
            commit_interval: std::time::Duration::from_millis(1),
        }
    }
}

/// What came of an operator's settlement of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    Settled,
    /// Not in flight: sent, failed, pending, or unknown.
    NotInFlight,
    /// In flight in this run: a lane is sending it now, and its outcome will be recorded.
    Live,
}

/// What an operator says of a message left in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The upstream has it, under this id.
    Sent { upstream_id: String },
    /// Send it again.
    Resend,
}

/// The answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitResult {
    /// Durable and queued for dispatch. `replayed`: the answer to an earlier request with the
    /// same idempotency key.
    Accepted {
        message_id: u64,
        accepted: Accepted,
        replayed: bool,
    },
    /// Nothing happened; submit again at `until`.
    Deferred {
        until: Timestamp,
        reason: DeferReason,
    },
    Refused {
        code: Option<u32>,
        name: String,
        reason: String,
        replayed: bool,
    },
    /// Durable and waiting for the rules to allow it (the submission asked to queue); it is
    /// decided again at `until`, and dispatched or refused then under the same id.
    Queued {
        message_id: u64,
        until: Option<Timestamp>,
        reason: Option<DeferReason>,
        replayed: bool,
    },
}

impl SubmitResult {
    pub(super) fn from_outcome(outcome: StoredOutcome) -> SubmitResult {
        match outcome {
            StoredOutcome::Accepted {
                message_id,
                accepted,
            } => SubmitResult::Accepted {
                message_id,
                accepted,
                replayed: true,
            },
            StoredOutcome::Refused { code, name, reason } => SubmitResult::Refused {
                code,
                name,
                reason,
                replayed: true,
            },
            StoredOutcome::Queued { message_id } => SubmitResult::Queued {
                message_id,
                until: None,
                reason: None,
                replayed: true,
            },
        }
    }

    pub(super) fn from_decision(decision: Decision, message_id: u64, queue: bool) -> SubmitResult {
        match decision {
            Decision::Deferred { until, reason } if queue => SubmitResult::Queued {
                message_id,
                until: Some(until),
                reason: Some(reason),
                replayed: false,
            },
            Decision::Accepted(accepted) => SubmitResult::Accepted {
                message_id,
                accepted,
                replayed: false,
            },
            Decision::Deferred { until, reason } => SubmitResult::Deferred { until, reason },
            Decision::Refused(refusal) => SubmitResult::Refused {
                code: refusal.meta_code(),
                name: refusal.name().to_string(),
                reason: refusal.to_string(),
                replayed: false,
            },
        }
    }
}

/// What one round of releasing queued sends did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Released {
    /// Queued sends decided again.
    pub count: usize,
    /// Those the rules accepted: on their way to the upstream.
    pub accepted: Vec<ReleasedSend>,
    /// Those the rules refused when their turn came: dropped, never sent.
    pub dropped: Vec<DroppedSend>,
}

/// A queued send the rules accepted when its turn came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleasedSend {
    pub message_id: u64,
    pub number: PhoneNumberId,
    pub to: Msisdn,
}

/// A send wagate accepted into its queue and then dropped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedSend {
    pub message_id: u64,
    pub number: PhoneNumberId,
    pub to: Msisdn,
    pub refusal: Refusal,
}

/// Message ids are handed out from blocks whose end is persisted first, so ids never repeat
/// across restarts without a write per message.
const ID_BLOCK: u64 = 1 << 20;

struct IdAllocator {
    next: AtomicU64,
    ceiling: Mutex<u64>,
}

pub struct Wagate {
    pub(crate) pool: ShardPool,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) durability: Arc<Durability>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(super) retention_secs: u64,
    ids: IdAllocator,
    /// Idempotency keys (as stored) of submissions being decided.
    pub(super) in_flight: DashSet<Vec<u8>>,
    dispatcher: Dispatcher,
    /// Hands messages an operator returned to pending back to the dispatcher.
    redispatch: crossbeam_channel::Sender<super::message::DueMessage>,
    /// Queued sends by due time, for the releaser and status reads.
    pub(crate) release: Arc<ReleaseQueue>,
    /// Webhook POSTs applied one group at a time, in the statuses' turn.
    pub(super) webhooks: Combiner<Vec<WebhookEvent>, Result<WebhookReport, SubmitError>>,
    /// The messages this run's hand-over lanes hold.
    live: Arc<super::hand_over::LiveSends>,
    /// Messages the previous run left in flight, found at this start.
    found_in_flight: usize,
    /// One operator settlement at a time: two at once could both send a message again.
    settling: Mutex<()>,
    /// People erased, as salted hashes.
    pub(crate) suppression: crate::suppression::Suppression,
    /// Erasures not finished yet.
    pub(crate) unfinished: crate::erasure::Unfinisheds,
    /// Campaigns, and the people of the uploads under way.
    pub(crate) campaigns: crate::campaigns::Campaigns,
    pub(crate) campaign_uploads: crate::campaigns::Seen,
    /// What tenants hear of wagate's own doings, written with what it tells of.
    pub(crate) tenant_news: crate::tenant_news::NewsWriters,
    /// The groups of the numbers, as Meta last said.
    pub(crate) groups: crate::groups::GroupBook,
}

impl Wagate {
    /// Opens the RocksDB store in `config.data_dir`, restores everything in it, and starts the
    /// shard workers, their committers and the dispatcher.
    pub fn open(
        config: WagateConfig,
        clock: Arc<dyn Clock>,
        upstream: Arc<dyn Upstream>,
    ) -> Result<Wagate, OpenError> {
        let store = Arc::new(RocksStore::open(&config.data_dir)?);
        Self::open_with_store(config, store, clock, upstream)
    }

    /// Like [`Wagate::open`] over any store (the memory store in tests).
    pub fn open_with_store(
        config: WagateConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        upstream: Arc<dyn Upstream>,
    ) -> Result<Wagate, OpenError> {
        let restored = recovery::restore(
            &config.engine,
            store.as_ref(),
            clock.clone(),
            upstream.as_ref(),
        )?;
        let durability = Arc::new(Durability::new(
            store.clone(),
            config.sync,
            config.commit_interval,
        ));
        let (dispatch, incoming) = unbounded();
        let redispatch = dispatch.clone();
        let release = Arc::new(ReleaseQueue::load(store.as_ref())?);
        let suppression = crate::suppression::Suppression::load(store.as_ref())?;
        let unfinished = crate::erasure::Unfinisheds::load(store.as_ref())?;
        let campaigns = crate::campaigns::Campaigns::load(store.as_ref())?;
        let groups = crate::groups::GroupBook::load(store.clone(), clock.now().unix_secs())?;
        let tenant_news = crate::tenant_news::NewsWriters::default();
        let pool = ShardPool::start_persistent(
            restored.engine,
            durability.clone(),
            Onward {
                dispatch,
                release: release.clone(),
                news: tenant_news.clone(),
            },
        );
        let statuses_turn = StatusTurn::default();
        let teller = pool.teller();
        let news = meta_refusals::RefusalNews {
            core: pool.core().clone(),
            store: store.clone(),
            clock: clock.clone(),
            shards: pool.teller(),
        };
        let on_failed: super::hand_over::OnFailed = Arc::new(move |failed, refused| {
            // Meta's word first: the same shard takes the person's news before the slot back.
            news.apply(refused);
            let count = failed.len();
            if count > 0 && !teller.tell(failed.into_iter().map(SendFailed).collect()) {
                // After a stop has begun the shards are gone: those recipients stay counted
                // until their 24 h pass (never fewer than Meta counts).
                tracing::warn!(
                    count,
                    "sends failed while stopping: their recipients stay counted for 24 h"
                );
            }
        });
        let live = Arc::new(super::hand_over::LiveSends::default());
        let dispatcher = Dispatcher::start(
            restored.backlog.iter().map(StoredMessage::due).collect(),
            incoming,
            Lanes::start(
                upstream,
                store.clone(),
                statuses_turn.clone(),
                pool.registry().profile().rate_cards.clone(),
                on_failed,
                live.clone(),
                tenant_news.clone(),
            ),
            store.clone(),
            clock.clone(),
        );
        let wagate = Wagate {
            pool,
            store,
            durability,
            clock,
            retention_secs: config.idempotency_retention_secs,
            ids: IdAllocator {
                next: AtomicU64::new(restored.next_message_id),
                ceiling: Mutex::new(restored.next_message_id),
            },
            in_flight: DashSet::new(),
            dispatcher,
            redispatch,
            release,
            webhooks: Combiner::new(statuses_turn),
            live,
            found_in_flight: restored.found_in_flight,
            settling: Mutex::new(()),
            suppression,
            unfinished,
            campaigns,
            campaign_uploads: Default::default(),
            tenant_news,
            groups,
        };
        // An erasure a crash interrupted is finished before anything else is served.
        if let Err(error) = wagate.finish_erasures() {
            tracing::error!(%error, "finishing an interrupted erasure failed: tried again later");
        }
        Ok(wagate)
    }

    /// The groups of the numbers (Meta's Groups API), as Meta last said.
    pub fn groups(&self) -> &crate::groups::GroupBook {
        &self.groups
    }

    pub fn registry(&self) -> &Registry {
        self.pool.registry()
    }

    /// Sets what writes tenants' news (queued sends' fates, failures at dispatch, campaign
    /// events) into the writes that record them (once; a second writer is refused and
    /// returned).
    pub fn on_tenant_news(
        &self,
        writer: Box<dyn crate::tenant_news::NewsWriter>,
    ) -> Result<(), Box<dyn crate::tenant_news::NewsWriter>> {
        self.tenant_news.set(writer)
    }

    /// Puts what `news`'s tenant hears into `batch`, if anyone writes news; how many records.
    pub(crate) fn write_news(
        &self,
        news: crate::tenant_news::News<'_>,
        batch: &mut wagate_store::Batch,
    ) -> usize {
        self.tenant_news
            .get()
            .map_or(0, |writer| writer.write(news, batch))
    }

    /// `count` records of news written by [`Wagate::write_news`] are durable now.
    pub(crate) fn news_committed(&self, count: usize) {
        if let (Some(writer), true) = (self.tenant_news.get(), count > 0) {
            writer.committed(count);
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Has every shard apply what the clock made due (expirations of counted recipients,
    /// sketch windows, scheduled tier changes) and waits: after a manual clock moved.
    pub fn catch_up(&self) {
        self.pool.catch_up();
    }

    /// Applies the projected upgrades that came due, where the operator allows wagate to
    /// (`EngineConfig::apply_projected_upgrades`); nothing otherwise.
    pub fn confirm_projections(&self) {
        self.pool.confirm_projections();
    }

    /// How long idempotency records (and webhook claims) are kept.
    pub fn retention_secs(&self) -> u64 {
        self.retention_secs
    }

    /// Records commit latencies from now on (benchmarks).
    /// The engine's histograms (group commits, time queued), to register for `/metrics`.
    pub fn metrics(&self) -> DurableMetrics {
        DurableMetrics {
            commit_seconds: self.durability.commit_seconds.clone(),
            commit_records: self.durability.commit_records.clone(),
            time_queued_seconds: self.dispatcher.watch.time_queued.clone(),
        }
    }

    pub fn durability(&self) -> &Arc<Durability> {
        &self.durability
    }

    /// The id the next message will take: every message so far has a lower one.
    pub(crate) fn next_message_id(&self) -> u64 {
        self.ids.next.load(Ordering::Acquire)
    }

    /// Reserves `count` consecutive message ids and returns the first.
    pub(super) fn reserve_message_ids(&self, count: u64) -> Result<u64, StoreError> {
        let first = self.ids.next.fetch_add(count, Ordering::AcqRel);
        let mut ceiling = self.ids.ceiling.lock().unwrap_or_else(|e| e.into_inner());
        if first + count > *ceiling {
            let next = first + count + ID_BLOCK;
            let mut batch = wagate_store::Batch::default();
            batch.put(Family::Meta, NEXT_ID_BLOCK, next.to_be_bytes());
            self.store.write(&batch, true)?;
            *ceiling = next;
        }
        Ok(first)
    }

    /// Decides one send and, if accepted, makes it durable before answering.
    pub fn submit(&self, submission: Submission) -> Result<SubmitResult, SubmitError> {
        self.submit_many(vec![submission])
            .pop()
            .expect("one answer per submission")
    }

    /// Hands queued sends due by now back to their shards, at most `limit` of them; returns
    /// how many. Each is decided again under its id: accepted, refused, or queued anew.
    pub fn release_due(&self, limit: usize) -> Result<usize, StoreError> {
        Ok(self.release_due_reporting(limit)?.count)
    }

    /// [`Wagate::release_due`], also naming the sends the rules refused when their turn came
    /// (an opt-out since, a template withdrawn): dropped, for their tenant to be told.
    pub fn release_due_reporting(&self, limit: usize) -> Result<Released, StoreError> {
        let taken = self.release.take_due(self.clock.now(), limit);
        if taken.is_empty() {
            return Ok(Released::default());
        }
        let mut due = Vec::with_capacity(taken.len());
        for (at, id) in &taken {
            let key = deferred_key(at.0, *id);
            // Absent: decided already (a round put back after a failure had committed it).
            match self.store.get(Family::Deferred, &key) {
                Ok(Some(value)) => due.extend(DeferredRecord::decode(&key, &value)),
                Ok(None) => {}
                Err(error) => {
                    self.requeue(&taken);
                    return Err(error);
                }
            }
        }
        let count = due.len();
        let recipients: Vec<(PhoneNumberId, Msisdn)> = due
            .iter()
            .map(|record| {
                (
                    record.submission.request.number,
                    record.submission.request.to,
                )
            })
            .collect();
        let commands = due
            .into_iter()
            .map(|record| {
                Submit(Box::new(Prepared {
                    released_from: Some(record.key()),
                    key_number: record.submission.request.number,
                    message_id: record.id,
                    submission: record.submission,
                    body_hash: 0,
                    expires_at: 0,
                }))
            })
            .collect();
        let (mut accepted, mut dropped) = (Vec::new(), Vec::new());
        for (reply, (number, to)) in self
            .pool
            .send(commands)
            .wait_each()
            .into_iter()
            .zip(recipients)
        {
            match reply {
                Err(error) => {
                    // Records whose decision was not committed are still on disk; those that
                    // were are gone, and a later release skips them.
                    self.requeue(&taken);
                    return Err(error);
                }
                Ok(Submitted {
                    decision: Decision::Refused(refusal),
                    message_id,
                }) => dropped.push(DroppedSend {
                    message_id,
                    number,
                    to,
                    refusal,
                }),
                Ok(Submitted {
                    decision: Decision::Accepted(_),
                    message_id,
                }) => accepted.push(ReleasedSend {
                    message_id,
                    number,
                    to,
                }),
                Ok(_) => {}
            }
        }
        Ok(Released {
            count,
            accepted,
            dropped,
        })
    }

    fn requeue(&self, taken: &[(Timestamp, u64)]) {
        for (due, id) in taken {
            self.release.insert_if_absent(*due, *id);
        }
    }

    /// Queued sends waiting for their time.
    pub fn queued_count(&self) -> usize {
        self.release.len()
    }

    /// A queued send by id, if it is still waiting.
    pub fn queued(&self, id: u64) -> Result<Option<DeferredRecord>, StoreError> {
        let Some(due) = self.release.due_of(id) else {
            return Ok(None);
        };
        let key = deferred_key(due.0, id);
        Ok(self
            .store
            .get(Family::Deferred, &key)?
            .and_then(|value| DeferredRecord::decode(&key, &value)))
    }

    /// An inbound message (Meta's `messages` webhook): opens the window, may change consent.
    pub fn inbound(
        &self,
        message: InboundMessage,
    ) -> Result<Result<InboundEffect, Refusal>, SubmitError> {
        Ok(self.pool.ask(Inbound(message))?)
    }

    /// Meta's `status` (`delivered`, `read`, `failed`) of a message of `template` (if a
    /// template) from `number` to `person`: the status automations it sets going, decided on
    /// the person's shard within the loop bound.
    pub fn follow_status(
        &self,
        number: PhoneNumberId,
        person: Msisdn,
        status: &'static str,
        template: Option<String>,
    ) -> Result<wagate_rules::contact_events::Automated, SubmitError> {
        Ok(self.pool.ask(crate::workers::FollowStatus {
            number,
            person,
            status,
            template,
        })?)
    }

    pub fn consent(
        &self,
        number: PhoneNumberId,
        person: Msisdn,
        change: ConsentChange,
        source: ConsentSource,
    ) -> Result<Result<(), Refusal>, SubmitError> {
        Ok(self
            .record_consents(vec![Consent::from((number, person, change, source))])?
            .pop()
            .expect("one answer"))
    }

    /// A person's consent events with the business of `number`, oldest first.
    pub fn consent_history(
        &self,
        number: PhoneNumberId,
        person: Msisdn,
    ) -> Result<Vec<crate::consent_history::ConsentRecord>, AdminError> {
        let account = self.business_of(number)?;
        Ok(crate::consent_history::read(
            self.store.as_ref(),
            account,
            person,
        )?)
    }

    /// Visits the consent events of the business of `number` (of one person, when given),
    /// person by person, oldest first, until `visit` says stop: an export that holds one
    /// event at a time.
    pub fn each_consent_event(
        &self,
        number: PhoneNumberId,
        person: Option<Msisdn>,
        visit: &mut dyn FnMut(Msisdn, crate::consent_history::ConsentRecord) -> bool,
    ) -> Result<(), AdminError> {
        let account = self.business_of(number)?;
        Ok(crate::consent_history::scan(
            self.store.as_ref(),
            account,
            person,
            visit,
        )?)
    }

    fn business_of(
        &self,
        number: PhoneNumberId,
    ) -> Result<wagate_rules::ids::AccountId, AdminError> {
        Ok(self
            .registry()
            .number(number)
            .ok_or(AdminError::Registry(
                wagate_rules::registry::RegistryError::UnknownNumber(number),
            ))?
            .account)
    }

    /// Many consent changes in one group commit (imports, set-up).
    pub fn consent_many(
        &self,
        changes: Vec<(PhoneNumberId, Msisdn, ConsentChange, ConsentSource)>,
    ) -> Result<Vec<Result<(), Refusal>>, SubmitError> {
        self.record_consents(changes.into_iter().map(Consent::from).collect())
    }

    /// Many consent changes, each with its source and proof, in one group commit.
    ///
    /// An opt-in for a person erased from the business is refused ([`Refusal::Erased`])
    /// unless it says `after_erasure` and carries evidence: a fresh opt-in, which takes them
    /// off the suppression list.
    pub fn record_consents(
        &self,
        changes: Vec<Consent>,
    ) -> Result<Vec<Result<(), Refusal>>, SubmitError> {
        if self.suppressed_count() == 0 {
            return Ok(self.pool.submit(changes)?);
        }
        self.record_consents_past_erasures(changes)
    }

    /// [`Wagate::record_consents`] when someone was erased: each opt-in is checked against
    /// the suppression list, and a fresh one lifts its person off it once applied.
    fn record_consents_past_erasures(
        &self,
        changes: Vec<Consent>,
    ) -> Result<Vec<Result<(), Refusal>>, SubmitError> {
        let mut answers: Vec<Option<Result<(), Refusal>>> = vec![None; changes.len()];
        let (mut allowed, mut lifted) = (Vec::with_capacity(changes.len()), Vec::new());
        for (index, change) in changes.into_iter().enumerate() {
            // The person's own act in WhatsApp (a keyword, a button, Meta's resume) is a
            // fresh opt-in by itself.
            let own = matches!(
                change.source,
                ConsentSource::Keyword | ConsentSource::Button | ConsentSource::UserPreferences
            );
            let erased = change.change.is_opt_in()
                && self.registry().number(change.number).is_some_and(|n| {
                    self.suppression
                        .erased_at(n.account, change.person)
                        .is_some()
                });
            if !erased {
                allowed.push((index, change));
            } else if own || (change.after_erasure && change.evidence.is_some()) {
                let account = self.business_of(change.number).ok();
                lifted.extend(account.map(|a| (index, self.suppression.hash(a, change.person))));
                allowed.push((index, change));
            } else {
                answers[index] = Some(Err(Refusal::Erased));
            }
        }
        let (indices, allowed): (Vec<usize>, Vec<Consent>) = allowed.into_iter().unzip();
        for (index, answer) in indices.into_iter().zip(self.pool.submit(allowed)?) {
            answers[index] = Some(answer);
        }
        let lifted: Vec<_> = lifted
            .into_iter()
            .filter(|(index, _)| matches!(answers[*index], Some(Ok(()))))
            .map(|(_, hash)| hash)
            .collect();
        if !lifted.is_empty() {
            let mut batch = wagate_store::Batch::default();
            for hash in &lifted {
                crate::suppression::Suppression::write_lift(&mut batch, hash);
            }
            self.store.write(&batch, true)?;
            for hash in &lifted {
                self.suppression.forget(hash);
            }
        }
        Ok(answers
            .into_iter()
            .map(|answer| answer.expect("every change answered"))
            .collect())
    }

    /// A delivery failure Meta reported for a message to `person` (status webhook).
    pub fn delivery_failed(
        &self,
        number: PhoneNumberId,
        person: Msisdn,
        code: u32,
    ) -> Result<Result<FailureEffect, Refusal>, SubmitError> {
        Ok(self.pool.ask(DeliveryFailed {
            number,
            person,
            code,
        })?)
    }

    /// The business blocked (`true`) or unblocked these people on `number`, as Meta's block
    /// list says: applied on their shards and written like any change to a person.
    pub fn business_block(
        &self,
        number: PhoneNumberId,
        people: &[Msisdn],
        blocked: bool,
    ) -> Result<Vec<Result<(), Refusal>>, SubmitError> {
        let commands = people
            .iter()
            .map(|&person| BusinessBlock {
                number,
                person,
                blocked,
            })
            .collect();
        Ok(self.pool.submit(commands)?)
    }

    /// A person's record for a number: consent, window, reachability (`None`: never seen).
    pub fn contact(
        &self,
        number: PhoneNumberId,
        person: Msisdn,
    ) -> Result<Option<wagate_rules::contact_events::ContactView>, SubmitError> {
        Ok(self.pool.ask(ContactRead { number, person })?)
    }

    /// The limit facts of the number's scope and, below the tier the profile's delivery path
    /// leads to, the delivered messages counted toward it (over all the scope's numbers).
    pub fn usage(&self, number: PhoneNumberId) -> Result<Usage, AdminError> {
        let mut usage = self.limit_usage(number)?;
        usage.delivery_path = self.delivery_path_progress(number)?;
        if let Some(state) = self.registry().number(number) {
            usage.name_status = state.name_status();
        }
        Ok(usage)
    }

    /// [`Wagate::usage`] without the delivery path: the limit facts from memory, no disk read
    /// (what `/metrics` shows for every number at each scrape).
    pub fn limit_usage(&self, number: PhoneNumberId) -> Result<Usage, AdminError> {
        Ok(self.pool.usage(number)?)
    }

    /// The number's counted recipients by the hour they leave the rolling 24 h, over the next
    /// 24 hours: when its capacity frees (a scan of every shard's contacts).
    pub fn capacity_schedule(&self, number: PhoneNumberId) -> Result<Vec<u64>, AdminError> {
        Ok(self.pool.capacity_schedule(number)?)
    }

    /// A stored message and its dispatch state: in the outbox until settled, then in messages,
    /// its delivery as its sent record has it once sent.
    pub fn message(&self, id: u64) -> Result<Option<StoredMessage>, StoreError> {
        let key = message_key(id);
        if let Some(bytes) = self.store.get(Family::Outbox, &key)? {
            return Ok(StoredMessage::decode(&bytes));
        }
        let Some(mut message) = self
            .store
            .get(Family::Messages, &key)?
            .and_then(|b| StoredMessage::decode(&b))
        else {
            return Ok(None);
        };
        if message.status == DispatchStatus::Sent {
            if let Some(sent) = sent_record::read(self.store.as_ref(), &message.upstream)? {
                sent.overlay(&mut message);
            }
        }
        Ok(Some(message))
    }

    /// The price ledger, from disk: every accepted message since the data directory was made.
    pub fn ledger(&self) -> Result<Ledger, StoreError> {
        crate::ledger_rows::read_ledger(
            self.store.as_ref(),
            LedgerSide::Estimate,
            &self.registry().profile().rate_cards,
        )
    }

    /// What Meta's status webhooks said it charged, in the same rows (number, day, category,
    /// market).
    pub fn reconciled_ledger(&self) -> Result<Ledger, StoreError> {
        crate::ledger_rows::read_ledger(
            self.store.as_ref(),
            LedgerSide::Reconciled,
            &self.registry().profile().rate_cards,
        )
    }

    /// The name of a ledger row's market.
    pub fn market_name(&self, market: wagate_rules::volume::MarketId) -> &str {
        self.registry().profile().rate_cards.market_name(market)
    }

    /// Removes idempotency records past their retention (a compaction of that family only).
    pub fn purge_expired(&self) -> Result<(), StoreError> {
        self.store.purge_expired(self.clock.now().unix_secs())
    }

    pub fn dispatch_view(&self) -> DispatchView {
        self.dispatcher.watch.view()
    }

    /// Waits until every message due now has been handed to the upstream (or `timeout`).
    pub fn wait_dispatched(&self, timeout: Duration) -> DispatchView {
        self.dispatcher.watch.wait_idle(timeout)
    }

    /// The error that made the engine stop accepting work, if any.
    pub fn failure(&self) -> Option<StoreError> {
        self.durability.failure()
    }

    /// Stops taking work, finishes what was queued (decisions, commits, due dispatches), and
    /// closes the store.
    pub fn shutdown(self) {
        self.pool.shutdown();
        // The dispatcher stops once every sender of its input is gone.
        drop(self.redispatch);
        self.dispatcher.join();
        // Everything is written: flushed now, the next start replays no log (a crash's
        // start replays at most the store's bound on its logs).
        let flushing = std::time::Instant::now();
        match self.store.flush() {
            Ok(()) => tracing::info!(
                seconds = flushing.elapsed().as_secs_f64(),
                "store flushed at shutdown"
            ),
            Err(error) => {
                tracing::warn!(%error, "store not flushed at shutdown; the next start replays its log")
            }
        }
    }

    /// Messages handed to the upstream by an earlier run and never settled: after a crash,
    /// those the upstream could not account for (Meta's API cannot be asked), for an operator
    /// to settle. What this run's lanes are sending now is not among them.
    pub fn in_flight(&self) -> Result<Vec<StoredMessage>, StoreError> {
        let mut found = Vec::new();
        self.store
            .scan(Family::Outbox, &[], &[0xff; 9], &mut |_, value| {
                if let Some(message) = StoredMessage::decode(value) {
                    if message.status == super::message::DispatchStatus::InFlight
                        && !self.live.holds(message.id)
                    {
                        found.push(message);
                    }
                }
                true
            })?;
        Ok(found)
    }

    /// Messages the previous run had left in flight when this one started (before the
    /// upstream was asked about them).
    pub fn found_in_flight_at_start(&self) -> usize {
        self.found_in_flight
    }

    /// Messages this run has handed to the upstream and not yet settled.
    pub fn sending_now(&self) -> usize {
        self.live.len()
    }

    /// An operator's word on a message left in flight by an earlier run: the upstream has it
    /// (with this id), or it should be sent again (accepting that it may reach the person
    /// twice). Refused for a message this run is sending now.
    pub fn settle_in_flight(
        &self,
        id: u64,
        settlement: Settlement,
    ) -> Result<SettleOutcome, StoreError> {
        let _one_at_a_time = self.settling.lock().unwrap_or_else(|e| e.into_inner());
        if self.live.holds(id) {
            return Ok(SettleOutcome::Live);
        }
        let Some(mut message) = self
            .store
            .get(Family::Outbox, &message_key(id))?
            .and_then(|b| StoredMessage::decode(&b))
            .filter(|m| m.status == super::message::DispatchStatus::InFlight)
        else {
            return Ok(SettleOutcome::NotInFlight);
        };
        // A lane registers a message before writing its mark: one marked since the first look
        // is seen here.
        if self.live.holds(id) {
            return Ok(SettleOutcome::Live);
        }
        let mut batch = wagate_store::Batch::default();
        match settlement {
            Settlement::Sent { upstream_id } => {
                crate::settlement::settle(
                    message,
                    super::message::DispatchStatus::Sent,
                    upstream_id.clone(),
                    &mut batch,
                );
                self.store.write(&batch, true)?;
                // Meta's statuses for it came while it was in flight: parked until now.
                let failed = super::early_status::apply_parked_in_turn(
                    self.store.as_ref(),
                    self.webhooks.turn(),
                    &self.registry().profile().rate_cards,
                    &[upstream_id],
                )?;
                if !failed.is_empty() {
                    // Not waited for: the message's own writes are done; the slot follows.
                    self.pool
                        .teller()
                        .tell(failed.into_iter().map(SendFailed).collect());
                }
            }
            Settlement::Resend => {
                message.status = super::message::DispatchStatus::Pending;
                message.decision.send_at = self.clock.now();
                batch.put(Family::Outbox, message_key(id), message.encode());
                self.store.write(&batch, true)?;
                let _ = self.redispatch.send(message.due());
            }
        }
        Ok(SettleOutcome::Settled)
    }
}
