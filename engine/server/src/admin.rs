//! The admin API (admin token only): numbers, templates, consent, the ledger, the manual
//! clock. Every change is persisted before it is answered.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::admin_access::{admin_error, admin_only, parse_number};
use super::reply::{self, ApiErrorResponse};
use super::state::{blocking, store_error, App};
use super::usage_view::usage_view;
use wagate_cloud_api::error::ApiError;
use wagate_rules::clock::Timestamp;
use wagate_rules::ids::{AccountId, Msisdn, PhoneNumberId, PortfolioId};
use wagate_rules::price::LedgerTotals;
use wagate_rules::quality::Quality;
use wagate_rules::registry::NumberRegistration;
use wagate_rules::template::model::{Category, TemplateDefinition};
use wagate_rules::template::status::TemplateStatus;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/wagate/admin/numbers", post(register_number))
        .route("/wagate/admin/numbers/{id}/usage", get(usage))
        .route("/wagate/admin/numbers/{id}/quality", post(number_quality))
        .route("/wagate/admin/templates", post(create_template))
        .route("/wagate/admin/templates/status", post(template_status))
        .route(
            "/wagate/admin/contacts/consent",
            post(super::consent_api::consent),
        )
        .route(
            "/wagate/admin/contacts/{number}/{to}",
            get(contact).delete(super::erasure_api::erase),
        )
        .route("/wagate/admin/audit", get(super::erasure_api::audit))
        .route("/wagate/admin/ledger", get(ledger))
        .route("/wagate/admin/messages/in_flight", get(in_flight))
        .route("/wagate/admin/messages/{id}/settle", post(settle))
        .route("/wagate/admin/clock", get(clock).post(move_clock))
        .route("/wagate/admin/sync", post(sync_from_meta))
}

/// Syncs from Meta now: every tenant's businesses' templates and numbers, as Meta's word.
async fn sync_from_meta(State(app): State<App>, headers: HeaderMap) -> Answer {
    admin_only(&app, &headers)?;
    Ok(reply::ok(&super::meta_sync::sync(&app).await))
}

type Answer = Result<Response, ApiErrorResponse>;

/// Checks the admin token and reads a JSON body of type `T`.
async fn admin_json<T: DeserializeOwned>(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiErrorResponse> {
    admin_only(app, headers)?;
    super::body_read::read_json_body(app, headers, body).await
}

fn parse_quality(text: &str) -> Result<Quality, ApiErrorResponse> {
    Quality::parse_meta(text).ok_or_else(|| {
        ApiError::invalid_parameter("quality must be GREEN, YELLOW, RED or UNKNOWN").into()
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberBody {
    id: u64,
    account: u64,
    portfolio: u64,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    throughput_mps: Option<u32>,
    #[serde(default)]
    display_phone_number: Option<String>,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN` (the default).
    #[serde(default)]
    quality: Option<String>,
}

async fn register_number(State(app): State<App>, headers: HeaderMap, body: Body) -> Answer {
    let body: NumberBody = admin_json(&app, &headers, body).await?;
    let display = body
        .display_phone_number
        .as_deref()
        .map(Msisdn::parse)
        .transpose()
        .map_err(|e| {
            ApiErrorResponse::from(ApiError::invalid_parameter(format!(
                "display_phone_number: {e}"
            )))
        })?;
    let quality = body.quality.as_deref().map(parse_quality).transpose()?;
    let registration = NumberRegistration {
        id: PhoneNumberId(body.id),
        account: AccountId(body.account),
        portfolio: PortfolioId(body.portfolio),
        tier: body.tier,
        throughput_mps: body.throughput_mps,
        display_phone_number: display,
    };
    let worker = app.clone();
    let usage = blocking(move || {
        let number = worker
            .wagate
            .register_number(registration)
            .map_err(admin_error)?;
        if let Some(quality) = quality {
            worker
                .wagate
                .set_number_quality(number.id, quality)
                .map_err(admin_error)?;
        }
        worker
            .upstream
            .set_throughput(number.id.0, number.throughput.messages_per_second());
        worker.wagate.usage(number.id).map_err(admin_error)
    })
    .await?;
    Ok(reply::ok(&usage_view(body.id, &usage)))
}

async fn usage(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    admin_only(&app, &headers)?;
    let number = parse_number(&id)?;
    // Waits for every shard and reads the store: off the async threads.
    let usage = blocking(move || app.wagate.usage(number).map_err(admin_error)).await?;
    Ok(reply::ok(&usage_view(number.0, &usage)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QualityBody {
    quality: String,
}

async fn number_quality(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let body: QualityBody = admin_json(&app, &headers, body).await?;
    let number = parse_number(&id)?;
    let quality = parse_quality(&body.quality)?;
    let usage = blocking(move || {
        app.wagate
            .set_number_quality(number, quality)
            .map_err(admin_error)?;
        app.wagate.usage(number).map_err(admin_error)
    })
    .await?;
    Ok(reply::ok(&usage_view(number.0, &usage)))
}

async fn create_template(State(app): State<App>, headers: HeaderMap, body: Body) -> Answer {
    let definition: TemplateDefinition = admin_json(&app, &headers, body).await?;
    let (account, name, language) = (
        definition.account,
        definition.name.clone(),
        definition.language.clone(),
    );
    let worker = app.clone();
    let findings = blocking(move || {
        worker
            .wagate
            .submit_template(definition)
            .map_err(admin_error)
    })
    .await?;
    /// A template as submitted, with what the lint found.
    #[derive(serde::Serialize)]
    struct Submitted<'a> {
        account: u64,
        name: String,
        language: String,
        lint: Vec<super::admin_lists::FindingView<'a>>,
    }
    Ok(reply::ok(&Submitted {
        account: account.0,
        name,
        language,
        lint: super::admin_lists::findings_view(&findings),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateStatusBody {
    account: u64,
    name: String,
    language: String,
    status: String,
}

async fn template_status(State(app): State<App>, headers: HeaderMap, body: Body) -> Answer {
    let body: TemplateStatusBody = admin_json(&app, &headers, body).await?;
    let status = TemplateStatus::parse(&body.status).ok_or_else(|| {
        ApiErrorResponse::from(ApiError::invalid_parameter(format!(
            "unknown template status '{}'",
            body.status
        )))
    })?;
    let worker = app.clone();
    let now = blocking(move || {
        worker
            .wagate
            .set_template_status(AccountId(body.account), &body.name, &body.language, status)
            .map_err(admin_error)
    })
    .await?;
    Ok(reply::ok(&json!({ "status": now.name() })))
}

async fn contact(
    State(app): State<App>,
    Path((number, to)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    admin_only(&app, &headers)?;
    let id = parse_number(&number)?;
    if app.wagate.registry().number(id).is_none() {
        return Err(super::reply::no_such_object(&number).into());
    }
    let person = Msisdn::parse(&to)
        .map_err(|e| ApiErrorResponse::from(ApiError::invalid_parameter(format!("to: {e}"))))?;
    let worker = app.clone();
    let (view, history) = blocking(move || {
        let view = worker
            .wagate
            .contact(id, person)
            .map_err(|e| ApiErrorResponse::from(ApiError::from(&e)))?;
        let history = worker
            .wagate
            .consent_history(id, person)
            .map_err(admin_error)?;
        Ok((view, history))
    })
    .await?;
    let names = app.wagate.registry().topic_names();
    let own = app
        .wagate
        .registry()
        .consent_is_per_number(id)
        .then_some(id);
    // Never seen: no consent, no window.
    let view = view.unwrap_or_default();
    let time = |t: Option<Timestamp>| t.map(Timestamp::unix_secs);
    /// A person as one number of the business sees them (times in Unix seconds).
    #[derive(serde::Serialize)]
    struct ContactAnswer<'a> {
        phone_number_id: String,
        to: String,
        opted_in: bool,
        opted_out: bool,
        marketing_opted_out: bool,
        meta_marketing_stopped: bool,
        unreachable: bool,
        blocked: bool,
        /// Every topic withdrawn, marketing included.
        withdrawn_topics: Vec<&'a str>,
        consent_source: &'static str,
        consent_at: Option<u64>,
        window_open: bool,
        window_until: Option<u64>,
        last_business_initiated: Option<u64>,
        /// For `all` and each topic, the consent event that last set it (from the history).
        set_by: std::collections::BTreeMap<&'a str, super::consent_history_api::Event<'a>>,
    }
    Ok(reply::ok(&ContactAnswer {
        phone_number_id: number,
        to: person.digits().to_string(),
        opted_in: view.opted_in,
        opted_out: view.opted_out,
        marketing_opted_out: view.marketing_opted_out,
        meta_marketing_stopped: view.meta_marketing_stopped,
        unreachable: view.unreachable,
        blocked: view.blocked,
        withdrawn_topics: names.names(view.withdrawn_topics),
        consent_source: view.consent_source.name(),
        consent_at: time(view.consent_changed_at),
        window_open: view.window_open_until.is_some(),
        window_until: time(view.window_open_until),
        last_business_initiated: time(view.last_business_initiated),
        set_by: super::consent_history_api::set_by(&history, names, own),
    }))
}

/// Messages handed to Meta before a crash whose outcome nobody knows: for an operator.
async fn in_flight(State(app): State<App>, headers: HeaderMap) -> Answer {
    admin_only(&app, &headers)?;
    let worker = app.clone();
    let messages = blocking(move || worker.wagate.in_flight().map_err(store_error)).await?;
    #[derive(serde::Serialize)]
    struct InFlight {
        messages: Vec<super::send::MessageView>,
    }
    let messages = messages.iter().map(super::send::message_view).collect();
    Ok(reply::ok(&InFlight { messages }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettleBody {
    /// Meta has the message, under this wamid (found in Meta's records or a status webhook).
    #[serde(default)]
    upstream_id: Option<String>,
    /// Send it again (it may then reach the person twice).
    #[serde(default)]
    resend: bool,
}

async fn settle(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let body: SettleBody = admin_json(&app, &headers, body).await?;
    let message_id = wagate_durable::message::parse_message_id(&id)
        .ok_or_else(|| ApiErrorResponse::from(super::reply::no_such_object(&id)))?;
    let settlement = match (body.upstream_id, body.resend) {
        (Some(upstream_id), false) if !upstream_id.is_empty() => {
            wagate_durable::Settlement::Sent { upstream_id }
        }
        (None, true) => wagate_durable::Settlement::Resend,
        _ => {
            return Err(ApiError::invalid_parameter(
                "give exactly one of upstream_id and resend: true",
            )
            .into())
        }
    };
    let worker = app.clone();
    let settled = blocking(move || {
        worker
            .wagate
            .settle_in_flight(message_id, settlement)
            .map_err(store_error)
    })
    .await?;
    let (reason, why) = match settled {
        wagate_durable::SettleOutcome::Settled => {
            return Ok(reply::ok(&json!({ "settled": true })))
        }
        wagate_durable::SettleOutcome::NotInFlight => ("not_in_flight", "is not in flight"),
        wagate_durable::SettleOutcome::Live => (
            "in_flight_now",
            "is being sent by this run now: its outcome will be recorded; nothing to settle",
        ),
    };
    Err(ApiError::new(
        409,
        100,
        "Invalid parameter",
        format!("message {id} {why}"),
        reason,
    )
    .into())
}

async fn ledger(State(app): State<App>, headers: HeaderMap) -> Answer {
    admin_only(&app, &headers)?;
    let worker = app.clone();
    let (estimated, reconciled) = blocking(move || {
        let estimated = worker.wagate.ledger().map_err(store_error)?;
        let reconciled = worker.wagate.reconciled_ledger().map_err(store_error)?;
        Ok((estimated, reconciled))
    })
    .await?;
    /// One number's messages and spend for one day, category and market: wagate's estimate
    /// at acceptance, and what Meta's pricing in its status webhooks says it charged.
    #[derive(serde::Serialize)]
    struct Row<'a> {
        phone_number_id: String,
        day: u32,
        category: &'static str,
        /// The recipients' market on the rate card (`""` under a flat card).
        market: &'a str,
        messages: u64,
        price_micros: u64,
        reconciled_messages: u64,
        reconciled_micros: u64,
    }
    #[derive(serde::Serialize)]
    struct Ledger<'a> {
        rows: Vec<Row<'a>>,
    }
    let mut joined: std::collections::BTreeMap<_, (LedgerTotals, LedgerTotals)> =
        std::collections::BTreeMap::new();
    for (key, totals) in estimated.rows() {
        joined
            .entry((key.number, key.day, key.category as u8, key.market))
            .or_default()
            .0 = totals;
    }
    for (key, totals) in reconciled.rows() {
        joined
            .entry((key.number, key.day, key.category as u8, key.market))
            .or_default()
            .1 = totals;
    }
    let rows = joined
        .into_iter()
        .map(
            |((number, day, category, market), (estimate, charged))| Row {
                phone_number_id: number.0.to_string(),
                day,
                category: Category::ALL[usize::from(category).min(3)].name(),
                market: app.wagate.market_name(market),
                messages: estimate.messages,
                price_micros: estimate.micros,
                reconciled_messages: charged.messages,
                reconciled_micros: charged.micros,
            },
        )
        .collect();
    Ok(reply::ok(&Ledger { rows }))
}

async fn clock(State(app): State<App>, headers: HeaderMap) -> Answer {
    admin_only(&app, &headers)?;
    Ok(reply::ok(&json!({
        "now_unix_secs": app.wagate.now().unix_secs(),
        "manual": app.manual_clock.is_some(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    #[serde(default)]
    advance_secs: Option<u64>,
    #[serde(default)]
    set_unix_secs: Option<u64>,
}

async fn move_clock(State(app): State<App>, headers: HeaderMap, body: Body) -> Answer {
    let body: ClockBody = admin_json(&app, &headers, body).await?;
    let Some(clock) = &app.manual_clock else {
        return Err(ApiError::new(
            409,
            100,
            "Invalid parameter",
            "the clock is the system clock; set clock.mode = \"manual\" to move it",
            "system_clock",
        )
        .into());
    };
    match (body.advance_secs, body.set_unix_secs) {
        (Some(secs), None) => clock
            .try_advance_secs(secs)
            .map(|_| ())
            .map_err(|e| ApiErrorResponse::from(ApiError::invalid_parameter(e.to_string())))?,
        (None, Some(at)) => Timestamp::checked_from_unix_secs(at)
            .ok_or(wagate_rules::clock::ClockMoveRefused::PastTheEnd)
            .and_then(|to| clock.set(to))
            .map_err(|e| ApiErrorResponse::from(ApiError::invalid_parameter(e.to_string())))?,
        _ => {
            return Err(ApiError::invalid_parameter(
                "give exactly one of advance_secs and set_unix_secs",
            )
            .into())
        }
    }
    // Time moved at once, not second by second: every shard applies what that made due
    // before the answer, as it would have along the way, so the next send is judged on it.
    let worker = app.clone();
    blocking(move || {
        worker.wagate.catch_up();
        Ok(())
    })
    .await?;
    Ok(reply::ok(
        &json!({ "now_unix_secs": app.wagate.now().unix_secs() }),
    ))
}
