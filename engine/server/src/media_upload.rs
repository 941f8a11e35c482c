//! `POST /{version}/{phone_number_id}/media`: a file uploaded to Meta through wagate, streamed.
//! The form (multipart/form-data: `file`, `type`, `messaging_product`) is parsed as it arrives;
//! the file's type is checked against what Meta takes before any of its bytes leave, and its
//! size against its kind's limit as they pass (platform doc, section 4.6). What passes goes to
//! Meta at once with the tenant's Meta token, in the form the caller wrote (its own boundary,
//! which its content never contains); a file that breaks a rule midway cuts the upload off, so
//! Meta never gets a whole file wagate refused. At most a few chunks are held at any time.
//! Meta's media id is remembered as the number's (`media_owner`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::graph::{graph_object, relay, GraphCall, MetaAnswer};
use super::http_client::BoxError;
use super::reply::{no_such_object, unknown_endpoint};
use super::send::counted;
use super::state::App;
use wagate_cloud_api::error::ApiError;
use wagate_cloud_api::media::{file_kind, FileKind, MAX_MEDIA_BYTES};
use wagate_rules::ids::PhoneNumberId;

/// Room for the form's other fields and part headers, beyond the largest file.
const FORM_ROOM: u64 = 64 << 10;

/// The most a field other than the file may hold, and how many of them a form may have.
const SMALL_FIELD: usize = 1 << 10;
const SMALL_FIELDS: usize = 8;

/// Chunks on their way to Meta at once: what an upload holds in memory, with multer's buffer.
const CHUNKS_IN_FLIGHT: usize = 8;

/// The whole upload, from its first byte to Meta's answer: a 100 MB document over a slow link
/// takes minutes; a stalled caller is cut off sooner, by `http.body_read_timeout_ms` between
/// two of its chunks.
const UPLOAD_DEADLINE: Duration = Duration::from_secs(600);

/// Meta's answer to an upload (`{"id": ...}`) read up to this much.
const MAX_ANSWER: usize = 64 << 10;

type Sender = mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

pub(crate) async fn upload(
    State(app): State<App>,
    Path((version, number)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match upload_checked(&app, &version, &number, &headers, body).await {
        Ok(response) => response,
        Err(error) => counted(&app, error).into_response(),
    }
}

async fn upload_checked(
    app: &App,
    version: &str,
    number_text: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let path = format!("/{version}/{number_text}/media");
    if graph_object(&path).is_none() {
        return Err(unknown_endpoint());
    }
    let tenant = app.tenants.tenant(headers)?;
    let number = number_text
        .parse::<u64>()
        .ok()
        .map(PhoneNumberId)
        .filter(|&number| tenant.owns(number))
        .ok_or_else(|| no_such_object(number_text))?;
    tracing::Span::current().record("number", number.0);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::new(
            415,
            100,
            "Invalid parameter",
            format!("a media upload is multipart/form-data with a boundary, not '{content_type}'"),
            "unsupported_content_type",
        )
    })?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_MEDIA_BYTES + FORM_ROOM) {
        return Err(too_large(MAX_MEDIA_BYTES, "any kind"));
    }
    let idle = app.config.http.body_read_timeout();
    let mut form = multer::Multipart::new(body.into_data_stream(), boundary.clone());
    let mut fields = SmallFields::default();
    let file = loop {
        let field = timed(idle, form.next_field())
            .await?
            .ok_or_else(|| invalid("the form has no `file` field"))?;
        if field.name() == Some("file") {
            break field;
        }
        fields.take(field, idle).await?;
    };
    let declared_type = file
        .content_type()
        .map(|mime| mime.essence_str().to_string());
    let mime = fields
        .value("type")
        .map(str::to_string)
        .or(declared_type)
        .ok_or_else(|| invalid("the form names no `type` for the file"))?;
    let kind = takeable(&mime)?;
    let mut prefix = Vec::new();
    for (name, value) in &fields.seen {
        prefix.extend_from_slice(part_head(&boundary, name, None, None).as_bytes());
        prefix.extend_from_slice(value.as_bytes());
        prefix.extend_from_slice(b"\r\n");
    }
    let file_head = part_head(
        &boundary,
        "file",
        Some(file.file_name().unwrap_or("file")),
        Some(&mime),
    );
    prefix.extend_from_slice(file_head.as_bytes());
    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    // The receiver is the request's body: nothing is sent before the first frame is queued.
    let _ = sender.send(Ok(Frame::data(Bytes::from(prefix)))).await;
    let pump = tokio::spawn(pump(Pump {
        file: Some(file),
        form,
        sender,
        boundary: boundary.clone(),
        kind,
        mime,
        fields,
        idle,
    }));
    let body = StreamBody::new(futures_util::stream::unfold(
        receiver,
        |mut receiver| async { receiver.recv().await.map(|frame| (frame, receiver)) },
    ))
    .boxed_unsync();
    let answer = app
        .graph
        .open(
            &app.metrics,
            GraphCall::MediaUpload,
            &tenant,
            Method::POST,
            &path,
            Some(&format!("multipart/form-data; boundary={boundary}")),
            body,
            UPLOAD_DEADLINE,
        )
        .await;
    // The form's verdict first: a file cut off is refused whatever Meta made of the rest.
    let pumped = pump
        .await
        .map_err(|e| invalid(&format!("the upload stopped: {e}")))?;
    let pumped = pumped.inspect_err(|error| {
        tracing::info!(tenant = %tenant.name, number = number.0, reason = %error.reason, "media upload refused");
    })?;
    let (head, body) = answer?.into_parts();
    let body = tokio::time::timeout(
        app.graph.deadline(),
        Limited::new(body, MAX_ANSWER).collect(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|collected| collected.to_bytes())
    .unwrap_or_default();
    let answer = MetaAnswer::of(&head, body);
    if answer.status.is_success() {
        if let Some(id) = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|json| json["id"].as_str().map(str::to_string))
        {
            app.media_owners.remember(&id, number);
        }
    }
    tracing::info!(
        target: "wagate::audit",
        tenant = %tenant.name,
        number = number.0,
        bytes = pumped,
        meta_status = answer.status.as_u16(),
        "media uploaded to Meta"
    );
    Ok(relay(answer))
}

/// The form's fields other than the file: few and small.
#[derive(Default)]
struct SmallFields {
    seen: Vec<(String, String)>,
}

impl SmallFields {
    async fn take(
        &mut self,
        mut field: multer::Field<'static>,
        idle: Duration,
    ) -> Result<(), ApiError> {
        let name = field.name().unwrap_or("").to_string();
        if self.seen.len() >= SMALL_FIELDS {
            return Err(invalid("the form has too many fields"));
        }
        let mut value = Vec::new();
        while let Some(chunk) = timed(idle, field.chunk()).await? {
            if value.len() + chunk.len() > SMALL_FIELD {
                return Err(invalid(&format!("the form's field `{name}` is too long")));
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value)
            .map_err(|_| invalid(&format!("the form's field `{name}` is not text")))?;
        self.seen.push((name, value));
        Ok(())
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.seen
            .iter()
            .find(|(seen, _)| seen == name)
            .map(|(_, value)| value.as_str())
    }

    /// What Meta asks of every upload's form.
    fn check(&self) -> Result<(), ApiError> {
        match self.value("messaging_product") {
            Some("whatsapp") => Ok(()),
            Some(other) => Err(invalid(&format!(
                "messaging_product must be 'whatsapp', not '{other}'"
            ))),
            None => Err(invalid("the form names no messaging_product")),
        }
    }
}

/// The rest of an upload, moved from the caller to Meta as it comes.
struct Pump {
    /// Taken when the pump starts.
    file: Option<multer::Field<'static>>,
    form: multer::Multipart<'static>,
    sender: Sender,
    boundary: String,
    kind: FileKind,
    mime: String,
    fields: SmallFields,
    idle: Duration,
}

/// Moves the file and the fields after it to Meta; any rule broken cuts the upload off (an
/// error in its body: Meta gets no complete form). The file's size, when it all went.
async fn pump(pump: Pump) -> Result<u64, ApiError> {
    let sender = pump.sender.clone();
    let pumped = moved(pump).await;
    if let Err(error) = &pumped {
        let _ = sender.send(Err(error.to_string().into())).await;
    }
    pumped
}

async fn moved(mut pump: Pump) -> Result<u64, ApiError> {
    let mut size = 0u64;
    let Some(mut file) = pump.file.take() else {
        return Err(invalid("the form has no `file` field"));
    };
    while let Some(chunk) = timed(pump.idle, file.chunk()).await? {
        size += chunk.len() as u64;
        if size > pump.kind.max_bytes() {
            return Err(too_large(pump.kind.max_bytes(), &pump.mime));
        }
        if pump.sender.send(Ok(Frame::data(chunk))).await.is_err() {
            // Meta answered before the end (a refusal of its own): its answer is relayed.
            return Ok(size);
        }
    }
    // multer reads the next field only once this one is gone.
    drop(file);
    let mut rest = b"\r\n".to_vec();
    while let Some(field) = timed(pump.idle, pump.form.next_field()).await? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            return Err(invalid("the form has more than one file"));
        }
        pump.fields.take(field, pump.idle).await?;
        let value = pump.fields.value(&name).unwrap_or("").to_string();
        if name == "type" {
            let kind = takeable(&value)?;
            if size > kind.max_bytes() {
                return Err(too_large(kind.max_bytes(), &value));
            }
        }
        rest.extend_from_slice(part_head(&pump.boundary, &name, None, None).as_bytes());
        rest.extend_from_slice(value.as_bytes());
        rest.extend_from_slice(b"\r\n");
    }
    pump.fields.check()?;
    rest.extend_from_slice(format!("--{}--\r\n", pump.boundary).as_bytes());
    let _ = pump.sender.send(Ok(Frame::data(Bytes::from(rest)))).await;
    Ok(size)
}

/// The head of a part: its boundary line, its name (and file name), its type.
fn part_head(boundary: &str, name: &str, file_name: Option<&str>, mime: Option<&str>) -> String {
    let quoted = |text: &str| text.replace(['"', '\r', '\n'], "_");
    let mut head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"",
        quoted(name)
    );
    if let Some(file_name) = file_name {
        head.push_str(&format!("; filename=\"{}\"", quoted(file_name)));
    }
    if let Some(mime) = mime {
        head.push_str(&format!("\r\nContent-Type: {}", quoted(mime)));
    }
    head.push_str("\r\n\r\n");
    head
}

/// The kind of a type Meta takes, or Meta's refusal of the upload.
fn takeable(mime: &str) -> Result<FileKind, ApiError> {
    file_kind(mime).ok_or_else(|| {
        ApiError::new(
            400,
            131_053,
            "Media upload error",
            format!(
                "Meta does not take files of type '{mime}' (images: image/jpeg, image/png; \
                 video: video/mp4, video/3gpp; audio: aac, amr, mpeg, mp4, ogg; documents: \
                 text, PDF, Office; stickers: image/webp)"
            ),
            "media_type_unsupported",
        )
    })
}

fn too_large(max: u64, what: &str) -> ApiError {
    ApiError::new(
        400,
        131_053,
        "Media upload error",
        format!("the file is larger than the {max} bytes Meta takes for {what}"),
        "media_too_large",
    )
}

fn invalid(details: &str) -> ApiError {
    ApiError::new(400, 100, "Invalid parameter", details, "invalid_media_form")
}

/// One read of the caller's form, within `idle`, in Meta's error shape.
async fn timed<T>(
    idle: Duration,
    read: impl std::future::Future<Output = Result<T, multer::Error>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(idle, read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(invalid(&format!("the form cannot be read: {error}"))),
        Err(_) => Err(ApiError::new(
            408,
            100,
            "Invalid parameter",
            format!("the upload sent nothing for {idle:?}"),
            "body_timeout",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_heads_are_meta_s_form_with_nothing_that_breaks_a_line() {
        assert_eq!(
            part_head("b", "file", Some("a\"b\r\n.jpg"), Some("image/jpeg")),
            "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a_b__.jpg\"\r\n\
             Content-Type: image/jpeg\r\n\r\n"
        );
    }
}
