//! Sync from Meta: wagate asks Meta itself for each business's templates and phone numbers
//! (with the token of the tenant whose numbers they are) and applies the answers as Meta's word,
//! exactly as when a sender's own read passes through (`template_reads`, `number_reads`): at
//! start and every `meta.sync_interval_secs` when that is set, and on demand
//! (`POST /wagate/admin/sync`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::Method;
use bytes::Bytes;
use serde::Serialize;

use super::graph::GraphCall;
use super::state::App;
use super::tenants::Tenant;
use super::{number_reads, template_reads};
use wagate_rules::ids::PhoneNumberId;

/// Pages of one list read at most in one sync (1,000 items a page).
const MAX_PAGES: usize = 50;

/// What one sync asked and what answered.
#[derive(Debug, Default, Serialize)]
pub(crate) struct SyncReport {
    /// Calls made to Meta.
    pub(crate) asked: u32,
    /// Of those, the ones Meta answered with success (and whose answers were applied).
    pub(crate) answered: u32,
}

/// Each tenant with the businesses (accounts) of its numbers, in the config's order.
fn tenants_and_accounts(app: &App) -> Vec<(Arc<Tenant>, BTreeSet<u64>)> {
    let registry = app.wagate.registry();
    app.config
        .tenants
        .iter()
        .filter_map(|config| {
            let tenant = app
                .tenants
                .owner(PhoneNumberId(*config.numbers.first()?))?
                .clone();
            let accounts = config
                .numbers
                .iter()
                .filter_map(|n| registry.number(PhoneNumberId(*n)))
                .map(|number| number.account.0)
                .collect();
            Some((tenant, accounts))
        })
        .collect()
}

/// Asks Meta for every business's templates and numbers, and applies what it says.
pub(crate) async fn sync(app: &App) -> SyncReport {
    let mut report = SyncReport::default();
    let version = app.config.meta.api_version.clone();
    for (tenant, accounts) in tenants_and_accounts(app) {
        for account in accounts {
            for edge in ["message_templates", "phone_numbers"] {
                let path = format!("/{version}/{account}/{edge}");
                let mut page = format!("{path}?limit=1000");
                for _ in 0..MAX_PAGES {
                    report.asked += 1;
                    let answer = app
                        .graph
                        .call(
                            &app.metrics,
                            GraphCall::Sync,
                            &tenant,
                            Method::GET,
                            &page,
                            None,
                            Bytes::new(),
                        )
                        .await;
                    let answer = match answer {
                        Ok(answer) if answer.status.is_success() => answer,
                        Ok(answer) => {
                            tracing::warn!(
                                tenant = %tenant.name,
                                account,
                                edge,
                                status = answer.status.as_u16(),
                                "sync from Meta: Meta refused the read"
                            );
                            break;
                        }
                        // The call logged why already.
                        Err(_) => break,
                    };
                    report.answered += 1;
                    template_reads::apply(app, &Method::GET, &path, None, &answer.body).await;
                    number_reads::apply(app, &tenant, &path, &answer.body).await;
                    match app.graph.next_page(&answer.body) {
                        Some(next) => page = next,
                        None => break,
                    }
                }
            }
        }
    }
    tracing::info!(
        asked = report.asked,
        answered = report.answered,
        "synced from Meta"
    );
    report
}

/// Syncs at start, then every `interval` until the server closes.
pub(crate) async fn run(app: App, interval: std::time::Duration) {
    let mut closing = app.closing.clone();
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                sync(&app).await;
            }
            _ = closing.changed() => return,
        }
    }
}
