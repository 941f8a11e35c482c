//! Reading request bodies: each route's limit, the server's deadline for a body, and the
//! body's claim on `http.max_body_bytes_held`, with the errors in Meta's shape.
//!
//! [`BodyFrames`] yields a body's bytes as they arrive under its limit and deadline (the bulk
//! endpoint takes it part by part); [`read_request_body`] reads a whole body that way, claimed
//! as its bytes arrive.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::body_budget::Claim;
use super::metrics::{bump, Metrics};
use super::state::App;
use wagate_cloud_api::error::ApiError;

/// Past the limit, how much more of a body is read (and dropped) so that the client, still
/// sending, gets the 413 rather than a reset connection.
const DRAIN_BEYOND_LIMIT: usize = 16 << 20;

/// Room made for a body's bytes at once, at least.
const ROOM_STEP: usize = 16 << 10;

/// A body's bytes as they arrive, refused in Meta's shape past `limit` or its deadline.
pub(crate) struct BodyFrames<'a> {
    body: Body,
    limit: usize,
    timeout: Duration,
    deadline: Instant,
    seen: usize,
    metrics: &'a Metrics,
}

impl<'a> BodyFrames<'a> {
    pub(crate) fn new(body: Body, limit: usize, timeout: Duration, metrics: &'a Metrics) -> Self {
        BodyFrames {
            body,
            limit,
            timeout,
            deadline: Instant::now() + timeout,
            seen: 0,
            metrics,
        }
    }

    /// Refuses (413, after reading past what the client sends) a body whose announced length
    /// is past the limit, before any of it is kept.
    pub(crate) async fn refuse_if_announced_past_limit(&mut self) -> Result<(), ApiError> {
        let announced = hyper::body::Body::size_hint(&self.body).exact();
        if announced.is_some_and(|announced| announced > self.limit as u64) {
            self.drain().await;
            return Err(self.too_large());
        }
        Ok(())
    }

    /// The next bytes, `None` at the end. Past the limit, the rest is read and dropped (up to
    /// a bound) and the body refused with 413.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, ApiError> {
        loop {
            // A body trickled in byte by byte must not hold its connection (and memory)
            // forever.
            let Ok(frame) = tokio::time::timeout_at(self.deadline, self.body.frame()).await else {
                bump(&self.metrics.invalid);
                return Err(ApiError::new(
                    408,
                    100,
                    "Invalid parameter",
                    format!(
                        "the body did not arrive within {} ms",
                        self.timeout.as_millis()
                    ),
                    "body_timeout",
                ));
            };
            let Some(frame) = frame else {
                return Ok(None);
            };
            let frame = frame.map_err(|e| {
                ApiError::invalid_parameter(format!("the body could not be read: {e}"))
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            self.seen += data.len();
            if self.seen > self.limit {
                self.drain().await;
                return Err(self.too_large());
            }
            return Ok(Some(data));
        }
    }

    /// Reads the rest and drops it, up to `DRAIN_BEYOND_LIMIT` past the limit and within the
    /// deadline, so that a client still sending gets the answer rather than a reset.
    pub(crate) async fn drain(&mut self) {
        while self.seen <= self.limit + DRAIN_BEYOND_LIMIT {
            match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.seen += data.len();
                    }
                }
                _ => return,
            }
        }
    }

    /// The answer to a body larger than its limit, counted.
    pub(crate) fn too_large(&self) -> ApiError {
        bump(&self.metrics.invalid);
        ApiError::new(
            413,
            100,
            "Invalid parameter",
            format!("the body is larger than {} bytes", self.limit),
            "body_too_large",
        )
    }
}

/// A body cut into parts of whole lines as it arrives (NDJSON, CSV), so that it is never held
/// whole: each part about `part_bytes` (or the rest, at the end), its bytes claimed from
/// `http.max_body_bytes_held` as they arrive, until the caller releases them.
pub(crate) struct LineParts<'a> {
    frames: BodyFrames<'a>,
    pending: bytes::BytesMut,
    /// Where the last whole line in `pending` ends.
    line_end: Option<usize>,
    part_bytes: usize,
    ended: bool,
}

impl<'a> LineParts<'a> {
    pub(crate) fn new(frames: BodyFrames<'a>, part_bytes: usize) -> Self {
        LineParts {
            frames,
            pending: bytes::BytesMut::new(),
            line_end: None,
            part_bytes,
            ended: false,
        }
    }

    /// The next part of whole lines, `None` after the last. Its bytes stay in `claim` until
    /// the caller releases them.
    pub(crate) async fn next(&mut self, claim: &mut Claim) -> Result<Option<Bytes>, ApiError> {
        if self.ended {
            return Ok(None);
        }
        loop {
            let Some(data) = self.frames.next().await? else {
                self.ended = true;
                let rest = self.pending.split().freeze();
                return Ok((!rest.is_empty()).then_some(rest));
            };
            if !claim.grow(data.len()) {
                self.frames.drain().await;
                return Err(bodies_full(self.frames.metrics));
            }
            // Only the bytes just come are looked at: a long line is not searched again for
            // every frame of it.
            if let Some(at) = data.iter().rposition(|&b| b == b'\n') {
                self.line_end = Some(self.pending.len() + at + 1);
            }
            self.pending.extend_from_slice(&data);
            if self.pending.len() < self.part_bytes {
                continue;
            }
            if let Some(end) = self.line_end.take() {
                return Ok(Some(self.pending.split_to(end).freeze()));
            }
        }
    }
}

/// The whole body, refused in Meta's shape when larger than `limit`, late, or past
/// `http.max_body_bytes_held` with the other requests' bodies (`claim` holds its bytes).
pub(crate) async fn read_body(
    body: Body,
    limit: usize,
    timeout: Duration,
    metrics: &Metrics,
    claim: &mut Claim,
) -> Result<Bytes, ApiError> {
    let mut frames = BodyFrames::new(body, limit, timeout, metrics);
    frames.refuse_if_announced_past_limit().await?;
    // Room is made as bytes arrive, at most a step ahead of them, and claimed as it is made
    // (the front's reader does the same): an announced length is not memory until its bytes
    // come (a stalled upload announcing 64 MiB held 64 MiB).
    let mut kept = bytes::BytesMut::new();
    while let Some(data) = frames.next().await? {
        if kept.capacity() - kept.len() < data.len() {
            kept.reserve(data.len().max(ROOM_STEP));
            let beyond = kept.capacity().saturating_sub(claim.bytes());
            if beyond > 0 && !claim.grow(beyond) {
                // Read on and dropped, like a body past its limit, so that the client gets
                // the answer rather than a reset connection.
                drop(kept);
                frames.drain().await;
                return Err(bodies_full(metrics));
            }
        }
        kept.extend_from_slice(&data);
    }
    Ok(kept.freeze())
}

/// [`read_body`] with the server's own deadline for bodies.
pub(crate) async fn read_request_body(
    app: &App,
    body: Body,
    limit: usize,
) -> Result<ReadBody, ApiError> {
    let mut claim = app.bodies.claim();
    let bytes = read_body(
        body,
        limit,
        app.config.http.body_read_timeout(),
        &app.metrics,
        &mut claim,
    )
    .await?;
    Ok(ReadBody {
        bytes,
        _claim: claim,
    })
}

/// A request's body, read whole, with its claim on `http.max_body_bytes_held` (given back
/// when the body is dropped, once the request is done with it).
pub(crate) struct ReadBody {
    pub bytes: Bytes,
    _claim: Claim,
}

impl ReadBody {
    /// The bytes, and the claim to keep for as long as anything made from them is held.
    pub(crate) fn into_parts(self) -> (Bytes, Claim) {
        (self.bytes, self._claim)
    }
}

impl std::ops::Deref for ReadBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Refuses a body when all the unfinished requests' bodies together hold
/// `http.max_body_bytes_held`: retry shortly (Meta's shape for a service briefly unavailable).
pub(crate) fn bodies_full(metrics: &Metrics) -> ApiError {
    bump(&metrics.bodies_refused);
    ApiError::new(
        503,
        2,
        "Service temporarily unavailable",
        "the request bodies being read hold http.max_body_bytes_held; retry shortly",
        "bodies_full",
    )
}

/// A JSON request body read under `http.max_body_bytes` into `T`: refused in Meta's shape (and
/// counted as invalid) when it is not `application/json` or does not fit `T`.
pub(crate) async fn read_json_body<T: serde::de::DeserializeOwned>(
    app: &App,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> Result<T, super::reply::ApiErrorResponse> {
    super::state::require_content_type(headers, "application/json")?;
    let bytes = read_request_body(app, body, app.config.http.max_body_bytes).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        bump(&app.metrics.invalid);
        ApiError::invalid_parameter(format!("the body does not fit this endpoint: {e}")).into()
    })
}
