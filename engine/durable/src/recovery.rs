//! Start-up: rebuild the engine from the store, exactly as it was acknowledged.
//!
//! Order matters: portfolios before their numbers (numbers share their scopes), numbers before
//! contacts (contacts are keyed by number index), contacts before the derived limits (counts,
//! expiry queues and sketches are rebuilt from each contact's last counted send), and the
//! outbox last (messages in flight at the stop are settled with the upstream first).

use std::sync::Arc;

use super::message::{DispatchStatus, StoredMessage};
use super::records::{decode, NumberRecord, ScopeRecord, TemplateRecord};
use crate::family_scan::everything;
use crate::open_error::OpenError;
use crate::settlement::settle;
use crate::upstream::{Reconciled, Upstream};
use wagate_rules::clock::Clock;
use wagate_rules::config::EngineConfig;
use wagate_rules::hash::MixHashMap;
use wagate_rules::inline_engine::Engine;
use wagate_rules::registry::Registry;
use wagate_rules::sketch::hll::owned_registers;
use wagate_store::keys::{contact_range_start, decode_contact, decode_contact_key, registry_kind};
use wagate_store::{Batch, Family, Store, StoreError};

/// The on-disk format this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The key in `Family::Meta` of the next block of message ids.
pub(crate) const NEXT_ID_BLOCK: &[u8] = b"next_id_block";
const FORMAT_KEY: &[u8] = b"format";

pub(crate) struct Restored {
    pub engine: Engine,
    /// Messages to dispatch: pending ones, and in-flight ones the upstream does not have.
    pub backlog: Vec<StoredMessage>,
    pub next_message_id: u64,
    /// Messages the previous run left in flight (handed over, never settled).
    pub found_in_flight: usize,
}

fn check_format(store: &dyn Store) -> Result<(), StoreError> {
    match store.get(Family::Meta, FORMAT_KEY)? {
        Some(bytes) if bytes == FORMAT_VERSION.to_be_bytes() => Ok(()),
        Some(other) => Err(StoreError::Corrupt(format!(
            "data directory has format {:?}; this wagate reads format {FORMAT_VERSION}",
            other
        ))),
        None => {
            let mut batch = Batch::default();
            batch.put(Family::Meta, FORMAT_KEY, FORMAT_VERSION.to_be_bytes());
            store.write(&batch, true)
        }
    }
}

fn restore_registry(store: &dyn Store, registry: &Registry) -> Result<(), StoreError> {
    let (mut numbers, mut scopes, mut templates) = (Vec::new(), Vec::new(), Vec::new());
    let mut failure = None;
    everything(store, Family::Registry, |key, value| {
        let result = match key.first() {
            Some(&registry_kind::NUMBER) => decode::<NumberRecord>(value).map(|r| numbers.push(r)),
            Some(&registry_kind::SCOPE) => decode::<ScopeRecord>(value).map(|r| scopes.push(r)),
            Some(&registry_kind::TEMPLATE) => {
                decode::<TemplateRecord>(value).map(|r| templates.push(r))
            }
            // Read after the numbers: call windows by the server, volume tiers below; the
            // suppression list and unfinished erasures by `erasure`.
            Some(
                &registry_kind::CALLS
                | &registry_kind::VOLUME_TIER
                | &registry_kind::SUPPRESSED
                | &registry_kind::ERASING,
            ) => Ok(()),
            _ => Err(StoreError::Corrupt(format!("unknown registry key {key:?}"))),
        };
        if let Err(error) = result {
            failure.get_or_insert(error);
        }
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    for scope in scopes.iter().filter(|s| s.portfolio.is_some()) {
        registry.restore_portfolio(
            scope.portfolio.expect("filtered"),
            scope.key,
            &scope.snapshot,
        );
    }
    for number in &numbers {
        let own = scopes
            .iter()
            .find(|s| s.portfolio.is_none() && s.key == number.index)
            .map(|s| &s.snapshot);
        registry.restore_number(number, own);
    }
    for template in templates {
        registry.restore_template(template.definition, &template.lifecycle);
    }
    Ok(())
}

/// Records handed to a shard's table at a time while restoring (see `Shard::restore_contacts`).
const RESTORE_BATCH: usize = 256;

/// Loads every shard's contacts in parallel (one key range each), then rebuilds the limits.
fn restore_contacts(store: &dyn Store, engine: &mut Engine) -> Result<usize, StoreError> {
    let now = engine.now();
    let scopes: MixHashMap<u32, Arc<wagate_rules::scope::LimitScope>> = engine
        .registry()
        .scopes()
        .into_iter()
        .map(|(_, scope)| (scope.key, scope))
        .collect();
    let estimate = store.estimate_keys(Family::Contacts).unwrap_or(0) as usize;
    let shards = engine.shards_mut();
    let count = shards.len();
    for shard in shards.iter_mut() {
        shard.reserve_contacts(estimate / count);
    }
    let loaded: Vec<Result<usize, StoreError>> = std::thread::scope(|threads| {
        let handles: Vec<_> = shards
            .iter_mut()
            .map(|shard| {
                let range = owned_registers(shard.index(), count);
                let scopes = &scopes;
                threads.spawn(move || {
                    let (start, end) = (
                        contact_range_start(range.start),
                        contact_range_start(range.end),
                    );
                    let mut loaded = 0;
                    let mut corrupt = None;
                    let mut batch = Vec::with_capacity(RESTORE_BATCH);
                    store.scan(Family::Contacts, &start, &end, &mut |key, value| match (
                        decode_contact_key(key),
                        decode_contact(value),
                    ) {
                        (Some((_, key)), Some(record)) => {
                            batch.push((key, record));
                            if batch.len() == RESTORE_BATCH {
                                shard.restore_contacts(&batch);
                                batch.clear();
                            }
                            loaded += 1;
                            true
                        }
                        _ => {
                            corrupt = Some(StoreError::Corrupt(format!("contact record {key:?}")));
                            false
                        }
                    })?;
                    if let Some(error) = corrupt {
                        return Err(error);
                    }
                    shard.restore_contacts(&batch);
                    shard.rebuild_limits(scopes, now);
                    Ok(loaded)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a restore thread panicked"))
            .collect()
    });
    loaded.into_iter().sum()
}

fn read_outbox(store: &dyn Store) -> Result<(Vec<StoredMessage>, Vec<StoredMessage>), StoreError> {
    let (mut pending, mut in_flight) = (Vec::new(), Vec::new());
    let mut corrupt = None;
    everything(
        store,
        Family::Outbox,
        |key, value| match StoredMessage::decode(value) {
            Some(message) if message.status == DispatchStatus::InFlight => in_flight.push(message),
            Some(message) => pending.push(message),
            None => {
                corrupt.get_or_insert(StoreError::Corrupt(format!("outbox message {key:?}")));
            }
        },
    )?;
    match corrupt {
        Some(error) => Err(error),
        None => Ok((pending, in_flight)),
    }
}

/// Everything in the store, back in an engine; the shards are not started yet.
pub(crate) fn restore(
    config: &EngineConfig,
    store: &dyn Store,
    clock: Arc<dyn Clock>,
    upstream: &dyn Upstream,
) -> Result<Restored, OpenError> {
    check_format(store)?;
    let now = clock.now();
    let mut engine = Engine::new(config.clone(), clock)?;
    restore_registry(store, engine.registry())?;
    restore_contacts(store, &mut engine)?;
    crate::ledger_rows::seed_month_counts(store, engine.registry(), now)?;
    crate::volume_tiers::restore(store, engine.registry(), now)?;
    let (mut backlog, in_flight) = read_outbox(store)?;
    let found_in_flight = in_flight.len();
    let cards = engine.registry().profile().rate_cards.clone();
    let (resend, failed) = reconcile(in_flight, upstream, store, &cards)?;
    if found_in_flight > 0 {
        tracing::warn!(
            found_in_flight,
            sent_again = resend.len(),
            "the previous run left sends in flight: the upstream was asked about each; those it could not account for stay in flight for an operator"
        );
    }
    backlog.extend(resend);
    // Deliveries Meta reported failed before the stop, parked then: their slots come back in
    // memory (their records say so again when they next change).
    for send in &failed {
        engine.send_failed(send);
    }
    for message in &backlog {
        if let Some(number) = engine.registry().number(message.number) {
            number.throughput.book_past(message.decision.send_at);
        }
    }
    let next_message_id = store
        .get(Family::Meta, NEXT_ID_BLOCK)?
        .and_then(|b| b.try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(1);
    Ok(Restored {
        engine,
        backlog,
        next_message_id,
        found_in_flight,
    })
}

/// Settles messages found in flight at start-up by asking the upstream; returns those to send
/// (again or for the first time), and those whose delivery, parked before the stop, failed for
/// good (written uncharged; their recipients' slots are the caller's to give back).
pub(crate) fn reconcile(
    in_flight: Vec<StoredMessage>,
    upstream: &dyn Upstream,
    store: &dyn Store,
    cards: &wagate_rules::rate_cards::RateCards,
) -> Result<
    (
        Vec<StoredMessage>,
        Vec<wagate_rules::contact_events::FailedSend>,
    ),
    wagate_store::StoreError,
> {
    let mut resend = Vec::new();
    let mut settled = Batch::default();
    let mut sent = Vec::new();
    for mut message in in_flight {
        match upstream.reconcile(&message) {
            Reconciled::Delivered(upstream_id) => {
                sent.push(upstream_id.clone());
                settle(message, DispatchStatus::Sent, upstream_id, &mut settled);
            }
            Reconciled::NotDelivered => {
                message.status = DispatchStatus::Pending;
                resend.push(message);
            }
            Reconciled::Unknown => {}
        }
    }
    store.write(&settled, true)?;
    // Statuses Meta sent for them before the stop were parked; nothing else applies statuses
    // yet (this runs before the engine starts).
    let failed = crate::early_status::apply_parked(store, cards, &sent)?;
    Ok((resend, failed))
}
