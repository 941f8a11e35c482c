//! `GET /console/live`: server-sent events for a signed-in session, a `usage` event each second
//! with every number's usage (as `GET /wagate/admin/numbers` answers it, read from memory off
//! the async threads) and how many queued sends were released so far. At most [`MAX_STREAMS`]
//! at once (more are answered 503), each ended when the server shuts down: the console's cost
//! is bounded, and nothing at all with nobody watching.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use crate::reply::ApiErrorResponse;
use crate::state::App;
use wagate_cloud_api::error::ApiError;

/// Live streams served at once.
pub(crate) const MAX_STREAMS: usize = 8;
/// How often a stream tells the figures.
const EVERY: Duration = Duration::from_secs(1);

/// Holds a stream's place among the [`MAX_STREAMS`] until the stream is dropped.
struct Place(App);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.console.live_streams.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) async fn live(State(app): State<App>, headers: HeaderMap) -> Response {
    if super::session_of(&app, &headers).is_none() {
        return ApiErrorResponse::from(crate::reply::unauthorized("sign in to the console first"))
            .into_response();
    }
    let open = app.console.live_streams.fetch_add(1, Ordering::AcqRel);
    let place = Place(app.clone());
    if open >= MAX_STREAMS {
        return ApiErrorResponse(
            ApiError::new(
                503,
                2,
                "Service temporarily unavailable",
                format!("at most {MAX_STREAMS} live console streams at once"),
                "console_busy",
            ),
            Some(5),
        )
        .into_response();
    }
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let closing = app.closing.clone();
    let events = stream::unfold(
        (place, ticks, closing),
        |(place, mut ticks, mut closing)| async move {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = closing.wait_for(|closed| *closed) => return None,
            }
            let app = place.0.clone();
            let usage =
                tokio::task::spawn_blocking(move || crate::admin_lists::numbers_usage(&app))
                    .await
                    .ok()?;
            // The numbers' usage, and the queued sends released so far (the page turns the
            // count into a rate).
            let released = place.0.metrics.released.get();
            let event = match usage {
                Ok(numbers) => Event::default().event("usage").data(
                    serde_json::json!({ "numbers": numbers, "released": released }).to_string(),
                ),
                Err(_) => Event::default().event("unavailable").data("{}"),
            };
            Some((Ok::<_, Infallible>(event), (place, ticks, closing)))
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
