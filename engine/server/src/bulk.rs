//! `POST /wagate/v1/bulk`: many sends in one NDJSON request, taken part by part as the body
//! arrives.
//!
//! A bulk body is never held whole: whole lines are cut into parts of about [`PART_BYTES`] as
//! they arrive, and each part is checked, decided and durably accepted before the next is
//! read, so a bulk request holds one part and the answers so far (both claimed from
//! `http.max_body_bytes_held`), and its first sends are accepted while the rest is uploading.
//! When the body cannot be read on (too large, too late, past the bound on held bodies, the
//! server full or stopping) after some lines were taken, the answer still lists every line
//! taken, then one line saying why the rest was not (`"unread": true`), so that the caller
//! resends exactly the lines from there on.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::value::RawValue;

use super::body_read::{BodyFrames, LineParts};
use super::metrics::bump;
use super::reply::ApiErrorResponse;
use super::send::{counted, on_limit_header, prepare, rejected, submit_prepared, usable_sender};
use super::send::{Asked, Outcome};
use super::send_options::{send_options, AskedOptions, Field};
use super::state::{blocking, require_content_type, App};
use super::tenants::Tenant;
use crate::config::OnLimit;
use std::borrow::Cow;
use wagate_cloud_api::error::ApiError;

/// About how many bytes of whole lines are taken together: one check on the blocking pool and
/// one ingest job (whose sends share group commits) per part.
const PART_BYTES: usize = 256 << 10;

/// One line of a bulk request. `request` is kept as the sender wrote it: it is parsed once,
/// by the send's own check, and goes to Meta as written, like the single endpoint's body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkLine<'a> {
    /// Borrowed from the line (a number's digits hold no escape): one allocation fewer a line.
    #[serde(borrow)]
    phone_number_id: Cow<'a, str>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(borrow)]
    request: &'a RawValue,
    /// A consent topic this send belongs to (beside its template's own).
    #[serde(default, borrow)]
    topic: Option<Cow<'a, str>>,
    /// When it may go, and until when (see `send_options`).
    #[serde(default, borrow)]
    send_at: Option<Field<'a>>,
    #[serde(default, borrow)]
    remind_before: Option<Field<'a>>,
    #[serde(default, borrow)]
    event_at: Option<Field<'a>>,
    #[serde(default, borrow)]
    expire_at: Option<Field<'a>>,
    #[serde(default, borrow)]
    valid_for: Option<Field<'a>>,
    /// The person's own UTC offset, for quiet hours.
    #[serde(default, borrow)]
    time_zone: Option<Cow<'a, str>>,
}

impl<'a> BulkLine<'a> {
    fn options(&mut self) -> AskedOptions<'a> {
        AskedOptions {
            topic: self.topic.take(),
            send_at: Field::text(self.send_at.take()),
            remind_before: Field::text(self.remind_before.take()),
            event_at: Field::text(self.event_at.take()),
            expire_at: Field::text(self.expire_at.take()),
            valid_for: Field::text(self.valid_for.take()),
            time_zone: self.time_zone.take(),
        }
    }
}

/// NDJSON in (`{"phone_number_id", "idempotency_key"?, "topic"?, "request"}` per line, `request` being
/// Meta's send request), one result line per input line out, in order: `{"line", "status",
/// "body"}` with the body the single endpoint would answer.
pub(super) async fn bulk(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    bump(&app.metrics.requests);
    match bulk_inner(&app, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// What a bulk request asked, for each of its parts.
struct Asking {
    app: App,
    tenant: Arc<Tenant>,
    queue: bool,
}

async fn bulk_inner(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiErrorResponse> {
    let tenant = app.tenants.tenant(headers).map_err(|e| counted(app, e))?;
    require_content_type(headers, "application/x-ndjson").map_err(|e| counted(app, e))?;
    let queue = on_limit_header(&tenant, headers).map_err(|e| counted(app, e))? == OnLimit::Queue;
    let asking = Arc::new(Asking {
        app: app.clone(),
        tenant,
        queue,
    });
    let limit = app.config.http.max_bulk_bytes;
    let mut frames = BodyFrames::new(
        body,
        limit,
        app.config.http.body_read_timeout(),
        &app.metrics,
    );
    frames.refuse_if_announced_past_limit().await?;
    let mut parts = LineParts::new(frames, PART_BYTES);
    // The part being read and the answers so far, under `http.max_body_bytes_held`.
    let mut claim = app.bodies.claim();
    let mut answer = Answer::default();
    let stopped = loop {
        let part = match parts.next(&mut claim).await {
            Ok(Some(part)) => part,
            Ok(None) => break None,
            Err(error) => break Some(error.into()),
        };
        let taken = part.len();
        let written = answer.out.len();
        if let Err(why) = answer.take(&asking, part).await {
            break Some(why);
        }
        claim.release(taken);
        claim.hold(answer.out.len() - written);
    };
    match stopped {
        // Nothing taken: the request's own error, as before any line was read.
        Some(why) if answer.lines == 0 => Err(why),
        Some(ApiErrorResponse(error, retry_after)) => {
            answer.unread(&Outcome::error(&error, retry_after));
            Ok(answer.into_response())
        }
        None => Ok(answer.into_response()),
    }
}

/// The result lines written so far.
#[derive(Default)]
struct Answer {
    out: String,
    /// Lines taken (blank lines are not lines).
    lines: usize,
}

impl Answer {
    /// Checks, decides and accepts a part's lines, and writes their result lines; a part the
    /// server could not take at all (full, stopping) is the request's stop.
    async fn take(&mut self, asking: &Arc<Asking>, part: Bytes) -> Result<(), ApiErrorResponse> {
        if part.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        // Parsing and checking thousands of lines is CPU work: off the async threads, so that
        // other requests (and `/healthz`) never wait behind a bulk upload.
        let parsing = asking.clone();
        let prepared = blocking(move || {
            let Asking { app, tenant, queue } = &*parsing;
            let now = app.wagate.now();
            let lines = part
                .split(|&b| b == b'\n')
                .filter(|line| !line.iter().all(u8::is_ascii_whitespace));
            // Sized before it is filled: a part's thousand sends, grown by doubling, were
            // copied ten times over.
            let mut asked = Vec::with_capacity(lines.clone().count());
            asked.extend(lines.map(|line| {
                let mut line = serde_json::from_slice::<BulkLine>(line)
                    .map_err(|e| ApiError::invalid_parameter(format!("not a bulk line: {e}")))?;
                let (number, pool) = usable_sender(app, tenant, &line.phone_number_id)?;
                let mut options = send_options(app, &line.options(), now)?;
                options.pool = pool;
                Ok(Asked {
                    number,
                    body: line.request.get().as_bytes().to_vec(),
                    key: line.idempotency_key,
                    queue: *queue,
                    options,
                })
            }));
            Ok(prepare(app, asked))
        })
        .await?;
        let app = &asking.app;
        let outcomes = submit_prepared(app, prepared)
            .await
            .map_err(|why| rejected(app, why))?;
        let (first, count) = (self.lines, outcomes.len());
        let lines = blocking(move || {
            let mut out = String::with_capacity(count * 200);
            for (line, outcome) in outcomes.iter().enumerate() {
                outcome.write_bulk_line(first + line, &mut out);
            }
            Ok(out)
        })
        .await?;
        self.out.push_str(&lines);
        self.lines += count;
        Ok(())
    }

    /// The last line: why the lines from here on were not read.
    fn unread(&mut self, why: &Outcome) {
        why.write_unread_line(self.lines, &mut self.out);
    }

    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            self.out,
        )
            .into_response()
    }
}
