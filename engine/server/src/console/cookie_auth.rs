//! The console's way into the admin API: a request with the session cookie and no
//! `Authorization` is let through as the admin for what its session may do. Reads (`GET`,
//! `HEAD`) for either role; anything else only for an admin session, with the session's CSRF
//! token in `X-CSRF-Token` and, when the browser names one, an `Origin` of this host. A
//! request with a bearer token is left as it came; one with no live session is left to the
//! handler's own 401.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::console_sessions::{Role, Session};
use crate::reply::ApiErrorResponse;
use crate::state::App;
use crate::tenants::constant_time_eq;
use wagate_cloud_api::error::ApiError;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "wagate_console";

/// The session id in the request's cookies.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn forbidden(why: &str) -> Response {
    ApiErrorResponse::from(ApiError::new(
        403,
        200,
        "Permissions error",
        why,
        "forbidden",
    ))
    .into_response()
}

/// Whether the browser's `Origin`, when it names one, is this server (its `Host`).
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split("://").nth(1);
    host.is_some() && origin_host == host
}

/// Why a session may not make a change, if it may not.
pub(crate) fn refusal(
    session: &Session,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Option<&'static str> {
    if session.role != Role::Admin {
        return Some("the operator token reads only");
    }
    forged(session, headers, csrf)
}

/// Why a request is not the session's own page asking (its CSRF token, its origin), if not.
pub(crate) fn forged(
    session: &Session,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Option<&'static str> {
    if !csrf.is_some_and(|token| constant_time_eq(token, &session.csrf)) {
        return Some("the console's CSRF token is missing or wrong");
    }
    if !same_origin(headers) {
        return Some("the request comes from another origin");
    }
    None
}

pub(crate) async fn cookie_auth(
    State(app): State<App>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if headers.contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let Some(session) = session_id(headers).and_then(|id| app.console.get(id)) else {
        return next.run(request).await;
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let csrf = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        if let Some(why) = refusal(&session, headers, csrf) {
            crate::metrics::bump(&app.metrics.unauthorized);
            tracing::warn!(
                role = session.role.name(),
                why,
                "a console change was refused"
            );
            return forbidden(why);
        }
    }
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {}", app.config.admin.token)) else {
        return forbidden("the admin API is off");
    };
    request.headers_mut().insert(header::AUTHORIZATION, bearer);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; wagate_console=abc; b=2"),
        );
        assert_eq!(session_id(&headers), Some("abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("wagate_consolex=abc"),
        );
        assert_eq!(session_id(&headers), None);
    }

    #[test]
    fn another_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers));
    }
}
