//! The operator console at `/console`: a page of its own (HTML, script and style embedded in
//! the binary: it works with no network), signed in with the admin token or the read-only
//! operator token (`admin.operator_token`) and kept in an HTTP-only, `SameSite=Strict` cookie.
//! Its figures come from the admin API, reached with that cookie (`cookie_auth`), and live
//! from `/console/live` (`live`). Nothing here runs on the send path: with nobody signed in it
//! costs a route table entry.

mod cookie_auth;
mod live;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::console_sessions::{Role, Session, SESSION_TTL};
pub(crate) use cookie_auth::cookie_auth;
use cookie_auth::{forged, same_origin, session_id, COOKIE};

use crate::state::App;
use crate::tenants::constant_time_eq;

const INDEX: &str = include_str!("../../console/index.html");
const SIGN_IN: &str = include_str!("../../console/sign-in.html");
const SCRIPT: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/app.css");

/// The most a sign-in or sign-out form may hold.
const MAX_FORM_BYTES: usize = 4_096;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/console", get(page))
        .route(
            "/console/app.js",
            get(|| async { asset("text/javascript", SCRIPT) }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset("text/css", STYLE) }),
        )
        .route("/console/sign-in", post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/session", get(session))
        .route("/console/live", get(live::live))
}

/// What every console answer carries: no framing, no sniffing, nothing cached, and only this
/// server's own script, style and connections.
fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        // `same-origin`: a form or fetch of the console names its origin (with `no-referrer` the
        // browser sends `Origin: null`, which the CSRF check must refuse).
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    hardened(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

fn html(status: StatusCode, text: String) -> Response {
    hardened(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            text,
        )
            .into_response(),
    )
}

/// The signed-in session of the request, if any.
fn session_of(app: &App, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = session_id(headers)?;
    Some((id.to_string(), app.console.get(id)?))
}

/// `GET /console`: the console for a session, else the sign-in page.
async fn page(State(app): State<App>, headers: HeaderMap) -> Response {
    match session_of(&app, &headers) {
        Some(_) => html(StatusCode::OK, INDEX.to_string()),
        None => html(StatusCode::OK, SIGN_IN.replace("<!--error-->", "")),
    }
}

fn redirect_home(cookie: String) -> Response {
    let mut response = hardened(StatusCode::SEE_OTHER.into_response());
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/console"));
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

/// A form's fields (`application/x-www-form-urlencoded`), at most [`MAX_FORM_BYTES`].
async fn form(body: Body) -> Option<Vec<(String, String)>> {
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let decode = |s: &str| -> Option<String> {
        let s = s.replace('+', " ");
        let mut out = Vec::with_capacity(s.len());
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            } else {
                out.push(b);
            }
        }
        String::from_utf8(out).ok()
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(key)?, decode(value)?))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST /console/sign-in` (`token=`): a session for the admin or the operator token.
async fn sign_in(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    crate::metrics::bump(&app.metrics.requests);
    let refused = |why: &str| {
        crate::metrics::bump(&app.metrics.unauthorized);
        tracing::warn!(why, "a console sign-in was refused");
        html(
            StatusCode::UNAUTHORIZED,
            SIGN_IN.replace("<!--error-->", why),
        )
    };
    if !same_origin(&headers) {
        return refused("The sign-in came from another origin.");
    }
    let fields = form(body).await.unwrap_or_default();
    let token = field(&fields, "token").unwrap_or("").trim();
    let admin = &app.config.admin;
    let role = if !admin.token.is_empty() && constant_time_eq(token, &admin.token) {
        Role::Admin
    } else if !admin.operator_token.is_empty() && constant_time_eq(token, &admin.operator_token) {
        Role::Operator
    } else {
        return refused("That token is neither the admin nor the operator token.");
    };
    let Ok((id, _)) = app.console.sessions.open(role) else {
        return refused("No session could be opened (no randomness).");
    };
    tracing::info!(role = role.name(), "signed in to the console");
    redirect_home(format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    ))
}

/// `POST /console/sign-out` (`csrf=`): the session ends.
async fn sign_out(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    crate::metrics::bump(&app.metrics.requests);
    let Some((id, session)) = session_of(&app, &headers) else {
        return redirect_home(format!(
            "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        ));
    };
    let fields = form(body).await.unwrap_or_default();
    // Signing out is a change the operator may make too: only the CSRF token and origin count.
    if let Some(why) = forged(&session, &headers, field(&fields, "csrf")) {
        crate::metrics::bump(&app.metrics.unauthorized);
        return hardened((StatusCode::FORBIDDEN, why).into_response());
    }
    app.console.sessions.close(&id);
    tracing::info!(role = session.role.name(), "signed out of the console");
    redirect_home(format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    ))
}

/// `GET /console/session`: the session's role and CSRF token, for the page's script.
async fn session(State(app): State<App>, headers: HeaderMap) -> Response {
    match session_of(&app, &headers) {
        Some((_, session)) => hardened(crate::reply::ok(
            &json!({ "role": session.role.name(), "csrf": session.csrf }),
        )),
        None => hardened(
            crate::reply::ApiErrorResponse::from(crate::reply::unauthorized(
                "sign in to the console first",
            ))
            .into_response(),
        ),
    }
}
