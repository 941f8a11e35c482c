//! Media by id, through wagate's base URL: reading a media id's URL (`GET /{version}/{media_id}`),
//! deleting it (`DELETE`), and downloading its file. Each only for the tenant whose number the
//! media belongs to (`media_owner`). Meta's media URL takes Meta's token, which the sender's code
//! does not hold, so the URL wagate answers is its own (`/wagate/v1/media/{id}/content`): there
//! wagate fetches the file from Meta's fresh URL with the tenant's Meta token and streams it
//! to the caller as it comes, never holding it whole. Uploads are `media_upload`'s.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};

use super::graph::{relay, GraphCall, MetaAnswer};
use super::media_owner::{owner, Owner};
use super::reply::ApiErrorResponse;
use super::send::counted;
use super::state::App;
use super::tenants::Tenant;
use wagate_cloud_api::error::ApiError;

/// A download whose next bytes do not come from Meta within this is cut off.
const DOWNLOAD_IDLE: Duration = Duration::from_secs(30);

/// Meta's answer to a failed download is read up to this much and relayed.
const MAX_ERROR_ANSWER: usize = 64 << 10;

/// The value of `phone_number_id` in a query, if the caller named one.
fn named_number(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("phone_number_id="))
}

/// `GET` or `DELETE /{version}/{media_id}` for an id that is no number or business of the
/// tenant's: the pass-through's media branch.
pub(crate) async fn by_id(
    app: &App,
    tenant: &Tenant,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    media_id: &str,
) -> Response {
    let owner = match owner(app, tenant, media_id, named_number(uri.query())).await {
        Ok(owner) => owner,
        Err(error) => return counted(app, error).into_response(),
    };
    let answered = if method == Method::GET {
        Ok(owner.read.clone())
    } else {
        meta_media_call(app, tenant, Method::DELETE, uri.path(), &owner).await
    };
    tracing::info!(
        target: "wagate::audit",
        tenant = %tenant.name,
        %method,
        path = uri.path(),
        number = owner.number.0,
        meta_status = answered.as_ref().map_or(0, |a| a.status.as_u16()),
        "media call passed through to Meta"
    );
    let answer = match answered {
        Ok(answer) => answer,
        Err(error) => return ApiErrorResponse(error, Some(1)).into_response(),
    };
    if !answer.status.is_success() {
        return relay(answer);
    }
    if method == Method::DELETE {
        app.media_owners.forget(media_id);
        return relay(answer);
    }
    relay(MetaAnswer {
        body: with_wagate_url(&answer.body, &download_url(app, headers, media_id)),
        ..answer
    })
}

/// A call on a media id, naming its number so that Meta checks the media is that number's.
async fn meta_media_call(
    app: &App,
    tenant: &Tenant,
    method: Method,
    path: &str,
    owner: &Owner,
) -> Result<MetaAnswer, ApiError> {
    let path = format!("{path}?phone_number_id={}", owner.number.0);
    app.graph
        .call(
            &app.metrics,
            GraphCall::Media,
            tenant,
            method,
            &path,
            None,
            Bytes::new(),
        )
        .await
}

/// Where the caller downloads the file through wagate.
fn download_url(app: &App, headers: &HeaderMap, media_id: &str) -> String {
    let base = if app.config.http.public_url.is_empty() {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| app.config.http.listen.to_string(), str::to_string);
        format!("http://{host}")
    } else {
        app.config.http.public_url.trim_end_matches('/').to_string()
    };
    format!("{base}/wagate/v1/media/{media_id}/content")
}

/// Meta's answer with its `url` (Meta's, which takes Meta's token) replaced by wagate's.
fn with_wagate_url(body: &Bytes, url: &str) -> Bytes {
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.clone();
    };
    match json.get_mut("url") {
        Some(slot) => *slot = serde_json::Value::from(url),
        None => return body.clone(),
    }
    Bytes::from(json.to_string())
}

/// `GET /wagate/v1/media/{media_id}/content`: the file, streamed from Meta's current URL.
pub(crate) async fn content(
    State(app): State<App>,
    Path(media_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let tenant = match app.tenants.tenant(&headers) {
        Ok(tenant) => tenant,
        Err(error) => return counted(&app, error).into_response(),
    };
    match download(&app, &tenant, &media_id, named_number(uri.query())).await {
        Ok(response) => response,
        Err(error) => counted(&app, error).into_response(),
    }
}

async fn download(
    app: &App,
    tenant: &Tenant,
    media_id: &str,
    named: Option<&str>,
) -> Result<Response, ApiError> {
    let read = owner(app, tenant, media_id, named).await?.read;
    let url = serde_json::from_slice::<serde_json::Value>(&read.body)
        .ok()
        .and_then(|json| json["url"].as_str().map(str::to_string))
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
        .ok_or_else(|| {
            ApiError::new(
                502,
                131_052,
                "Media download error",
                format!("Meta's answer for media {media_id} names no URL to download it from"),
                "media_url_missing",
            )
        })?;
    let empty = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let answer = app
        .graph
        .open(
            &app.metrics,
            GraphCall::MediaDownload,
            tenant,
            Method::GET,
            &url,
            None,
            empty,
            app.graph.deadline(),
        )
        .await?;
    let (head, body) = answer.into_parts();
    if !head.status.is_success() {
        let text = Limited::new(body, MAX_ERROR_ANSWER)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        return Ok(relay(MetaAnswer::of(&head, text)));
    }
    let mut response = Response::new(idle_limited(Body::new(body), DOWNLOAD_IDLE));
    *response.status_mut() = StatusCode::OK;
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_DISPOSITION,
    ] {
        if let Some(value) = head.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(response)
}

/// A body that ends in an error when its next bytes take longer than `idle`.
fn idle_limited(body: Body, idle: Duration) -> Body {
    let frames =
        futures_util::stream::unfold(Some(body.into_data_stream()), move |data| async move {
            let mut data = data?;
            match tokio::time::timeout(idle, data.next()).await {
                Ok(Some(chunk)) => Some((chunk.map_err(std::io::Error::other), Some(data))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no bytes from Meta in {idle:?}"),
                    )),
                    None,
                )),
            }
        });
    Body::from_stream(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_meta_gives_is_replaced_and_the_rest_kept() {
        let meta = Bytes::from_static(
            br#"{"url":"https://lookaside.fbsbx.com/x?mid=1","mime_type":"image/jpeg","id":"9"}"#,
        );
        let ours = with_wagate_url(&meta, "http://w/wagate/v1/media/9/content");
        let json: serde_json::Value = serde_json::from_slice(&ours).expect("json");
        assert_eq!(json["url"], "http://w/wagate/v1/media/9/content");
        assert_eq!(json["mime_type"], "image/jpeg");
        assert_eq!(json["id"], "9");
        assert_eq!(named_number(Some("a=1&phone_number_id=77")), Some("77"));
        assert_eq!(named_number(Some("a=1")), None);
    }
}
