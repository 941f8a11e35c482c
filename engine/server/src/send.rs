//! The send endpoints: Meta's `POST /{version}/{phone_number_id}/messages`, the status of a
//! message by id, and the checks and answers the bulk endpoint (`bulk`) and gRPC share.

use std::fmt::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::body_read::read_request_body;
use super::config::OnLimit;
use super::headers::Headers;
use super::ingest::Rejected;
use super::metrics::bump;
use super::reply::{self, no_such_object, overloaded, ApiErrorResponse};
use super::send_options::{send_options, AskedOptions};
use super::state::{blocking, require_content_type, store_error, App};
use super::tenants::{Caller, Tenant};
use prometheus_client::metrics::counter::Counter;
use wagate_cloud_api::error::{deferral_error, ApiError};
use wagate_cloud_api::request::{parse_messages, MessagesRequest};
use wagate_cloud_api::response::Success;
use wagate_durable::message::{message_id_text, parse_message_id};
use wagate_durable::submission::{ReadSend, Submission};
use wagate_durable::{SubmitError, SubmitResult};
use wagate_rules::decision::Message;
use wagate_rules::decision::SendOptions;
use wagate_rules::ids::{Msisdn, PhoneNumberId};

/// Header with which a request overrides its tenant's choice for sends that must wait.
pub(crate) const ON_LIMIT_HEADER: &str = "x-wagate-on-limit";

/// One send's answer, as an HTTP response, a bulk result line or a gRPC result.
pub(crate) struct Outcome {
    pub status: u16,
    pub body: AnswerBody,
    pub retry_after: Option<u64>,
}

/// An answer's body: Meta's success as its fields (written as text where it is answered, a
/// bulk request's thousands without building JSON values), any other answer as JSON.
pub(crate) enum AnswerBody {
    Success(Success),
    Json(Value),
}

impl AnswerBody {
    pub(crate) fn write_json(&self, out: &mut String) {
        match self {
            AnswerBody::Success(success) => success.write_json(out),
            AnswerBody::Json(value) => {
                let _ = write!(out, "{value}");
            }
        }
    }

    pub(crate) fn to_json(&self) -> String {
        // A success answer is about 150 bytes: written without growing.
        let mut out = String::with_capacity(192);
        self.write_json(&mut out);
        out
    }
}

impl Outcome {
    pub(crate) fn error(error: &ApiError, retry_after: Option<u64>) -> Outcome {
        Outcome {
            status: error.http_status,
            body: AnswerBody::Json(error.to_json(&reply::trace_id())),
            retry_after,
        }
    }

    fn into_response(self) -> Response {
        let mut response = reply::json_text(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            self.body.to_json(),
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.max(1).into());
        }
        response
    }

    /// Appends the bulk endpoint's result line for the `line`th request.
    pub(crate) fn write_bulk_line(&self, line: usize, out: &mut String) {
        self.write_line(line, "", out);
    }

    /// Appends the bulk endpoint's last line when it stopped reading: why the `line`th request
    /// and those after it were not read.
    pub(crate) fn write_unread_line(&self, line: usize, out: &mut String) {
        self.write_line(line, r#","unread":true"#, out);
    }

    fn write_line(&self, line: usize, tail: &str, out: &mut String) {
        let _ = write!(out, r#"{{"line":{line},"status":{},"body":"#, self.status);
        self.body.write_json(out);
        if let Some(secs) = self.retry_after {
            let _ = write!(out, r#","retry_after":{secs}"#);
        }
        out.push_str(tail);
        out.push_str("}\n");
    }
}

/// The caller's choice for sends that must wait; the tenant's when it made none.
pub(crate) fn on_limit(tenant: &Tenant, asked: Option<&str>) -> Result<OnLimit, ApiError> {
    match asked {
        None | Some("") => Ok(tenant.on_limit),
        Some(v) if v.eq_ignore_ascii_case("queue") => Ok(OnLimit::Queue),
        Some(v) if v.eq_ignore_ascii_case("refuse") => Ok(OnLimit::Refuse),
        Some(v) => Err(ApiError::invalid_parameter(format!(
            "on_limit ({ON_LIMIT_HEADER}) must be 'queue' or 'refuse', not '{v}'"
        ))),
    }
}

pub(crate) fn on_limit_header<H: Headers + ?Sized>(
    tenant: &Tenant,
    headers: &H,
) -> Result<OnLimit, ApiError> {
    let asked = headers.text(ON_LIMIT_HEADER).map(|v| v.unwrap_or("?"));
    on_limit(tenant, asked)
}

fn idempotency_key<H: Headers + ?Sized>(headers: &H) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.text("idempotency-key") else {
        return Ok(None);
    };
    match value {
        Some(key) if !key.is_empty() && key.len() <= 256 => Ok(Some(key.to_string())),
        _ => Err(ApiError::invalid_parameter(
            "Idempotency-Key must be 1 to 256 visible ASCII characters",
        )),
    }
}

/// The sender a tenant names: one of its numbers, or `pool:<name>` (the pool's first number
/// and the pool, whose number is picked on the person's shard).
pub(crate) fn usable_sender(
    app: &App,
    tenant: &Tenant,
    text: &str,
) -> Result<(PhoneNumberId, Option<u16>), ApiError> {
    match text.strip_prefix("pool:") {
        Some(name) => tenant
            .pools
            .get(name)
            .map(|(pool, first)| (*first, Some(*pool)))
            .ok_or_else(|| no_such_object(text)),
        None => usable_number(app, tenant, text).map(|number| (number, None)),
    }
}

/// The number a tenant names, if it may use it and wagate knows it.
pub(crate) fn usable_number(
    app: &App,
    tenant: &Tenant,
    text: &str,
) -> Result<PhoneNumberId, ApiError> {
    text.parse::<u64>()
        .ok()
        .map(PhoneNumberId)
        .filter(|&n| tenant.owns(n) && app.wagate.registry().number(n).is_some())
        .ok_or_else(|| no_such_object(text))
}

/// Like [`usable_number`] for a caller that may be the admin (any registered number).
pub(crate) fn readable_number(
    app: &App,
    caller: &Caller,
    text: &str,
) -> Result<PhoneNumberId, ApiError> {
    match caller {
        Caller::Tenant(tenant) => usable_number(app, tenant, text),
        Caller::Admin => text
            .parse::<u64>()
            .ok()
            .map(PhoneNumberId)
            .filter(|&n| app.wagate.registry().number(n).is_some())
            .ok_or_else(|| no_such_object(text)),
    }
}

/// What an answer needs of the request: the recipient as written and whether it is a template.
struct Addressee {
    number: PhoneNumberId,
    input: String,
    to: Msisdn,
    template: bool,
}

struct Checked {
    addressee: Addressee,
    submission: Submission,
}

fn check(
    number: PhoneNumberId,
    body: Vec<u8>,
    key: Option<String>,
    queue: bool,
) -> Result<Checked, ApiError> {
    Ok(checked(
        Submission::from_send_body(number, body, key, queue)?,
        number,
    ))
}

fn checked(read: ReadSend, number: PhoneNumberId) -> Checked {
    let ReadSend { submission, input } = read;
    let addressee = Addressee {
        number,
        input,
        to: submission.request.to,
        template: matches!(submission.request.message, Message::Template(_)),
    };
    Checked {
        addressee,
        submission,
    }
}

/// The answer for one send; `parsed` is the send's own, its recipient as written moved into the
/// answer.
fn outcome(app: &App, result: Result<SubmitResult, SubmitError>, parsed: Addressee) -> Outcome {
    let metrics = &app.metrics;
    // Counted once as what it was, or as a replay of an earlier answer.
    let counted = |replayed: bool, counter: &Counter, outcome: &'static str| {
        let (counter, outcome) = if replayed {
            (&metrics.replayed, "replayed")
        } else {
            (counter, outcome)
        };
        bump(counter);
        if let Some(tenant) = app.tenants.owner(parsed.number) {
            metrics.decided(&tenant.label, parsed.number.0, outcome);
        }
    };
    let (template, to) = (parsed.template, parsed.to.digits());
    let success = |id: u64, status: Option<&'static str>| {
        let mut success = Success::accepted(parsed.input, to, id, template);
        success.message_status = status.or(success.message_status);
        Outcome {
            status: 200,
            body: AnswerBody::Success(success),
            retry_after: None,
        }
    };
    match result {
        Ok(SubmitResult::Accepted {
            message_id,
            replayed,
            ..
        }) => {
            counted(replayed, &metrics.accepted, "accepted");
            success(message_id, None)
        }
        Ok(SubmitResult::Queued {
            message_id,
            replayed,
            ..
        }) => {
            counted(replayed, &metrics.queued, "queued");
            success(message_id, Some("queued"))
        }
        Ok(SubmitResult::Deferred { until, reason }) => {
            counted(false, &metrics.deferred, "deferred");
            let now = app.wagate.now();
            let secs = until.0.saturating_sub(now.0).div_ceil(1_000_000);
            Outcome::error(&deferral_error(reason, secs), Some(secs))
        }
        Ok(SubmitResult::Refused {
            code,
            name,
            reason,
            replayed,
        }) => {
            counted(replayed, &metrics.refused, "refused");
            if !replayed {
                metrics.refused_for(&name);
            }
            Outcome::error(&ApiError::refused(code, &name, &reason), None)
        }
        Err(error) => {
            let retry = matches!(error, SubmitError::KeyInFlight(_)).then_some(1);
            Outcome::error(&ApiError::from(&error), retry)
        }
    }
}

pub(crate) fn rejected(app: &App, why: Rejected) -> ApiErrorResponse {
    bump(&app.metrics.overloaded);
    match why {
        Rejected::TooLarge => ApiErrorResponse(
            ApiError::new(
                413,
                100,
                "Invalid parameter",
                format!(
                    "more messages in one request than http.max_pending_messages ({})",
                    app.config.http.max_pending_messages
                ),
                "too_many_messages",
            ),
            None,
        ),
        Rejected::Full => overloaded(),
        Rejected::Closed => ApiErrorResponse(
            ApiError::new(
                503,
                131_016,
                "Service unavailable",
                "wagate is shutting down",
                "shutting_down",
            ),
            Some(1),
        ),
    }
}

/// `POST /{version}/{phone_number_id}/messages`: Meta's send API, for requests the HTTP/1.1
/// front hands to axum (see `front`); both ways run `single_head` and `single_decide`.
pub(crate) async fn single(
    State(app): State<App>,
    Path((_version, number)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = match single_head(&app, &number, &headers) {
        Err(error) => error.into(),
        Ok(asked) => match read_request_body(&app, body, app.config.http.max_body_bytes).await {
            Err(error) => Outcome::error(&error, None),
            Ok(body) => {
                let (bytes, _claim) = body.into_parts();
                single_decide(&app, asked, Vec::from(bytes)).await
            }
        },
    };
    outcome.into_response()
}

/// Counts a request refused for what it asked (its token, its number, its body).
fn count_refused(app: &App, error: &ApiError) {
    bump(if error.http_status == 401 {
        &app.metrics.unauthorized
    } else {
        &app.metrics.invalid
    });
    app.metrics.refused_for(&error.reason);
}

pub(crate) fn counted(app: &App, error: ApiError) -> ApiErrorResponse {
    count_refused(app, &error);
    error.into()
}

/// The single send endpoint's route, as the router and the metrics name it.
pub(crate) const SEND_ENDPOINT: &str = "/{version}/{number}/messages";

/// What the single endpoint reads from a request's head.
pub(crate) struct SingleAsked {
    tenant: Arc<Tenant>,
    number: PhoneNumberId,
    key: Option<String>,
    queue: bool,
    options: SendOptions,
}

/// Counts a single-endpoint request and checks its head: the caller's token, the number,
/// the content type, the on-limit choice, the idempotency key. The body is read after this.
pub(crate) fn single_head<H: Headers + ?Sized>(
    app: &App,
    number: &str,
    headers: &H,
) -> Result<SingleAsked, ApiErrorResponse> {
    bump(&app.metrics.requests);
    let tenant = app.tenants.tenant(headers).map_err(|e| counted(app, e))?;
    let (number, pool) = usable_sender(app, &tenant, number).map_err(|e| counted(app, e))?;
    tracing::Span::current().record("number", number.0);
    require_content_type(headers, "application/json").map_err(|e| counted(app, e))?;
    let queue = on_limit_header(&tenant, headers).map_err(|e| counted(app, e))? == OnLimit::Queue;
    let key = idempotency_key(headers).map_err(|e| counted(app, e))?;
    let mut options = AskedOptions::of_headers(headers)
        .and_then(|asked| send_options(app, &asked, app.wagate.now()))
        .map_err(|e| counted(app, e))?;
    options.pool = pool;
    Ok(SingleAsked {
        tenant,
        number,
        key,
        queue,
        options,
    })
}

/// Decides one send whose head passed [`single_head`]: its answer. A read mark on the same
/// endpoint goes to Meta now instead, judged by no rule and behind no send.
pub(crate) async fn single_decide(app: &App, asked: SingleAsked, body: Vec<u8>) -> Outcome {
    let SingleAsked {
        tenant,
        number,
        key,
        queue,
        options,
    } = asked;
    let parsed = match parse_messages(&body) {
        Ok(MessagesRequest::Send(parsed)) => parsed,
        Ok(MessagesRequest::ReadMark(mark)) => {
            // Meta takes no read mark for a message written in a group.
            if app
                .wagate
                .groups()
                .is_group_message(&mark.message_id)
                .unwrap_or(false)
            {
                let refused =
                    super::groups_api::refused(wagate_rules::groups::GroupRefusal::ReadMark);
                return Outcome::error(&counted(app, refused).0, None);
            }
            return read_mark(app, &tenant, number, body).await;
        }
        Err(error) => return refused_before_deciding(app, &error),
    };
    let mut checked = checked(
        Submission::from_parsed(number, body, parsed, key, queue),
        number,
    );
    checked.submission.request.options = options;
    match app.ingest.submit(vec![checked.submission]).await {
        Ok(mut answers) => {
            let result = answers.pop().expect("one answer per send");
            outcome(app, result, checked.addressee)
        }
        Err(why) => rejected(app, why).into(),
    }
}

/// A read mark (checked by `parse_messages`) to Meta, now; Meta's answer as it came.
async fn read_mark(app: &App, tenant: &Tenant, number: PhoneNumberId, body: Vec<u8>) -> Outcome {
    let answer = match app
        .graph
        .read_mark(&app.metrics, tenant, number, body.into())
        .await
    {
        Ok(answer) => answer,
        Err(error) => return Outcome::error(&error, Some(1)),
    };
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(json) => Outcome {
            status: answer.status.as_u16(),
            body: AnswerBody::Json(json),
            retry_after: None,
        },
        Err(_) => Outcome::error(
            &ApiError::new(
                502,
                2,
                "Service temporarily unavailable",
                format!(
                    "Meta answered the read mark with {} and a body that is not JSON",
                    answer.status
                ),
                "meta_unreadable",
            ),
            Some(1),
        ),
    }
}

impl From<ApiErrorResponse> for Outcome {
    fn from(ApiErrorResponse(error, retry_after): ApiErrorResponse) -> Outcome {
        Outcome::error(&error, retry_after)
    }
}

/// The answer to a send refused by its own checks (parse, number), counted.
fn refused_before_deciding(app: &App, error: &ApiError) -> Outcome {
    count_refused(app, error);
    Outcome::error(error, None)
}

/// One send as a caller asked for it, its number one the tenant may use; not yet parsed.
pub(crate) struct Asked {
    pub number: PhoneNumberId,
    pub body: Vec<u8>,
    pub key: Option<String>,
    pub queue: bool,
    /// What the caller asked beyond Meta's body: its consent topic, when it may go and until
    /// when.
    pub options: SendOptions,
}

/// Checks and decides many sends together (one ingest job, shared group commits); an outcome
/// per send, in order. Sends already refused come in as errors.
pub(crate) async fn decide_many(
    app: &App,
    asked: Vec<Result<Asked, ApiError>>,
) -> Result<Vec<Outcome>, Rejected> {
    submit_prepared(app, prepare(app, asked)).await
}

/// Sends checked and ready to submit, with the outcomes of those refused already.
pub(crate) struct Prepared {
    outcomes: Vec<Option<Outcome>>,
    slots: Vec<usize>,
    addressees: Vec<Addressee>,
    submissions: Vec<Submission>,
}

/// [`decide_many`]'s first half, plain CPU work: each send's check.
pub(crate) fn prepare(app: &App, asked: Vec<Result<Asked, ApiError>>) -> Prepared {
    let mut prepared = Prepared {
        outcomes: Vec::with_capacity(asked.len()),
        slots: Vec::with_capacity(asked.len()),
        addressees: Vec::with_capacity(asked.len()),
        submissions: Vec::with_capacity(asked.len()),
    };
    for asked in asked {
        let checked = asked.and_then(|a| {
            let options = a.options;
            check(a.number, a.body, a.key, a.queue).map(|mut checked| {
                checked.submission.request.options = options;
                checked
            })
        });
        match checked {
            Ok(Checked {
                addressee,
                submission,
            }) => {
                prepared.slots.push(prepared.outcomes.len());
                prepared.addressees.push(addressee);
                prepared.submissions.push(submission);
                prepared.outcomes.push(None);
            }
            Err(error) => prepared
                .outcomes
                .push(Some(refused_before_deciding(app, &error))),
        }
    }
    prepared
}

/// [`decide_many`]'s second half: the checked sends through ingest, every outcome in order.
pub(crate) async fn submit_prepared(
    app: &App,
    prepared: Prepared,
) -> Result<Vec<Outcome>, Rejected> {
    let Prepared {
        mut outcomes,
        slots,
        addressees,
        submissions,
    } = prepared;
    if !submissions.is_empty() {
        let answers = app.ingest.submit(submissions).await?;
        for ((slot, result), addressee) in slots.into_iter().zip(answers).zip(addressees) {
            outcomes[slot] = Some(outcome(app, result, addressee));
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every send answered"))
        .collect())
}

/// `GET /wagate/v1/messages/{id}`: where a message is (queued, pending, sent, delivered...).
pub(crate) async fn status(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    bump(&app.metrics.requests);
    let caller = app.tenants.caller(&headers).map_err(|e| counted(&app, e))?;
    let may_read = |number: PhoneNumberId| match &caller {
        Caller::Admin => true,
        Caller::Tenant(tenant) => tenant.owns(number),
    };
    let Some(message_id) = parse_message_id(&id) else {
        return Err(counted(&app, no_such_object(&id)));
    };
    tracing::Span::current().record("message_id", id.as_str());
    let wagate = app.wagate.clone();
    let found = blocking(move || {
        Ok(match wagate.message(message_id).map_err(store_error)? {
            Some(message) => {
                let mut view = message_view(&message);
                view.consent_relied_on = consent_relied_on(&wagate, &message)?;
                if message.to.is_group() {
                    view.group = Some(group_view(&wagate, &message).map_err(store_error)?);
                }
                Some((message.number, StatusView::Message(view)))
            }
            None => wagate
                .queued(message_id)
                .map_err(store_error)?
                .map(|record| {
                    (
                        record.submission.request.number,
                        StatusView::Queued(QueuedView::of(&record)),
                    )
                }),
        })
    })
    .await?;
    match found {
        Some((number, view)) if may_read(number) => Ok(reply::ok(&view)),
        _ => Err(counted(&app, no_such_object(&id))),
    }
}

/// What the status endpoint shows: a message, or a send still queued.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum StatusView {
    Message(MessageView),
    Queued(QueuedView),
}

/// A send queued until its time or until the rules allow it.
#[derive(serde::Serialize)]
pub(crate) struct QueuedView {
    id: String,
    phone_number_id: String,
    to: String,
    status: &'static str,
    queued_until: u64,
    /// `scheduled` (its sender's time), or the rule it waits on.
    reason: &'static str,
    /// When it expires unsent (Unix seconds), if it has a validity.
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_at: Option<u64>,
}

impl QueuedView {
    pub(crate) fn of(record: &wagate_durable::deferred::DeferredRecord) -> QueuedView {
        let request = &record.submission.request;
        QueuedView {
            id: message_id_text(record.id),
            phone_number_id: request.number.0.to_string(),
            to: request.to.digits().to_string(),
            status: "queued",
            queued_until: record.due.unix_secs(),
            reason: record.reason.name(),
            expire_at: request.options.expire_at.map(|at| at.unix_secs()),
        }
    }
}

/// A message as the status endpoint and the admin API show it.
#[derive(serde::Serialize)]
pub(crate) struct MessageView {
    id: String,
    phone_number_id: String,
    to: String,
    status: &'static str,
    delivery: &'static str,
    attempts: u32,
    accepted_at: u64,
    send_at: u64,
    category: &'static str,
    price_micros: u64,
    /// Meta's message id, once sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_id: Option<String>,
    /// Why it is waiting or failed, as the upstream said.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Meta's code for a failed delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<u32>,
    /// The consent the decision read, as the history's events that set it then: for `all`
    /// (the whole consent) and each topic, the event (see the admin contact's `set_by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    consent_relied_on: Option<serde_json::Value>,
    /// A message to a group: the group, its pricing category and each participant's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<GroupMessageView>,
}

/// What a message to a group adds to its view.
#[derive(serde::Serialize)]
pub(crate) struct GroupMessageView {
    group_id: String,
    /// Meta's group pricing category (`group_marketing`, `group_utility`, `group_service`).
    pricing_category: String,
    /// Each participant's status (`recipient_participant_id`), as Meta's webhooks said.
    participants: Vec<ParticipantStatus>,
}

#[derive(serde::Serialize)]
struct ParticipantStatus {
    wa_id: String,
    status: String,
}

fn group_view(
    wagate: &wagate_durable::Wagate,
    message: &wagate_durable::message::StoredMessage,
) -> Result<GroupMessageView, wagate_store::StoreError> {
    let payload: Value = serde_json::from_slice(&message.payload).unwrap_or_default();
    let sent = message.status == wagate_durable::message::DispatchStatus::Sent;
    let participants = if sent {
        wagate.groups().participant_statuses(&message.upstream)?
    } else {
        Vec::new()
    };
    Ok(GroupMessageView {
        group_id: payload["to"].as_str().unwrap_or_default().to_string(),
        pricing_category: wagate
            .registry()
            .profile()
            .groups
            .pricing_category(message.decision.category)
            .to_string(),
        participants: participants
            .into_iter()
            .map(|(wa_id, status)| ParticipantStatus { wa_id, status })
            .collect(),
    })
}

/// What a message's consent rested on when it was decided: the person's history with the
/// business up to the second the consent it read last changed (`None`: it read none).
fn consent_relied_on(
    wagate: &wagate_durable::Wagate,
    message: &wagate_durable::message::StoredMessage,
) -> Result<Option<serde_json::Value>, ApiErrorResponse> {
    let consent_at = message.decision.consent_at;
    if consent_at == 0 {
        return Ok(None);
    }
    let mut records = wagate
        .consent_history(message.number, message.to)
        .map_err(super::admin_access::admin_error)?;
    records.retain(|record| record.at.secs() <= consent_at);
    let registry = wagate.registry();
    let own = registry
        .consent_is_per_number(message.number)
        .then_some(message.number);
    let set_by = super::consent_history_api::set_by(&records, registry.topic_names(), own);
    Ok(Some(serde_json::to_value(set_by).unwrap_or_default()))
}

pub(crate) fn message_view(message: &wagate_durable::message::StoredMessage) -> MessageView {
    let upstream = (!message.upstream.is_empty()).then(|| message.upstream.clone());
    let sent = message.status == wagate_durable::message::DispatchStatus::Sent;
    MessageView {
        id: message_id_text(message.id),
        phone_number_id: message.number.0.to_string(),
        to: message.to.digits().to_string(),
        status: message.status.name(),
        delivery: message.delivery.name(),
        attempts: message.attempts,
        accepted_at: message.accepted_at.unix_secs(),
        send_at: message.decision.send_at.unix_secs(),
        category: message.decision.category.name(),
        price_micros: message.decision.price_micros,
        upstream_id: upstream.clone().filter(|_| sent),
        error: upstream.filter(|_| !sent),
        error_code: (message.delivery_error != 0).then_some(message.delivery_error),
        consent_relied_on: None,
        group: None,
    }
}
