//! A gRPC call as a forwarded request (`wire`), so it crosses to a partition's owner like any
//! HTTP request: the gRPC path is the target, the call's metadata the headers (with
//! `content-type: application/grpc`, which marks it), the encoded message the body (a stream's
//! messages packed, each after its length). The owner makes the call on its partition
//! engine's gRPC port with the bytes as they came ([`RawCodec`]); the answer carries
//! `grpc-status`, `grpc-message` and the metadata as headers and the encoded answer(s) as body.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper::http::{HeaderValue, Method, StatusCode};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::wire::{Answer, Forwarded};

const GRPC: &str = "application/grpc";
const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
/// The one method whose messages are many (packed) each way.
pub const SEND_STREAM: &str = "/wagate.v1.Messaging/SendStream";
pub const SEND: &str = "/wagate.v1.Messaging/Send";

/// Messages as bytes both ways: the engine decodes what the caller encoded.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A call of `path` with the caller's `metadata` and its encoded message(s).
pub fn call(path: &str, metadata: &MetadataMap, body: Bytes) -> Forwarded {
    let mut headers = metadata.clone().into_headers();
    headers.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static(GRPC));
    Forwarded {
        method: Method::POST,
        target: path.to_string(),
        headers,
        body,
    }
}

/// Whether `request` is a gRPC call.
pub fn is_call(request: &Forwarded) -> bool {
    request
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == GRPC.as_bytes())
}

/// Many messages in one body, each after its length (a varint).
pub fn pack(messages: impl IntoIterator<Item = Bytes>) -> Bytes {
    let mut out = BytesMut::new();
    for message in messages {
        prost::encoding::encode_varint(message.len() as u64, &mut out);
        out.put(message);
    }
    out.freeze()
}

/// The messages of a packed body; `None` when it is cut off.
pub fn unpack(mut body: Bytes) -> Option<Vec<Bytes>> {
    let mut messages = Vec::new();
    while body.has_remaining() {
        let length = usize::try_from(prost::encoding::decode_varint(&mut body).ok()?).ok()?;
        if length > body.remaining() {
            return None;
        }
        messages.push(body.split_to(length));
    }
    Some(messages)
}

/// gRPC's escaping of `grpc-message`: printable ASCII but `%` as it is, the rest `%XX`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `%XX` escapes (gRPC's `grpc-message`, a URL's path segment) undone.
pub fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The engine's answer (its metadata, `code` and `message`) as a forwarded answer.
fn answer(metadata: MetadataMap, code: Code, message: &str, body: Bytes) -> Answer {
    let mut headers = metadata.into_headers();
    headers.insert(GRPC_STATUS, HeaderValue::from(code as i32));
    if let Ok(message) = HeaderValue::from_str(&escape(message)) {
        headers.insert(GRPC_MESSAGE, message);
    }
    Answer {
        status: StatusCode::OK,
        headers,
        body,
    }
}

fn of_status(status: Status) -> Answer {
    let (code, message) = (status.code(), status.message().to_string());
    answer(status.metadata().clone(), code, &message, Bytes::new())
}

/// The owner's side: `request` called on the partition engine's gRPC port (`channel`).
pub async fn ask_engine(channel: Channel, request: Forwarded) -> Answer {
    let mut grpc = tonic::client::Grpc::new(channel);
    if grpc.ready().await.is_err() {
        // Never reached the engine (it stopped: the partition is moving).
        return Answer::moving("the partition's engine stopped");
    }
    let Ok(path) = request.target.parse::<hyper::http::uri::PathAndQuery>() else {
        return of_status(Status::unimplemented("not a gRPC method"));
    };
    let mut headers = request.headers;
    headers.remove(hyper::header::CONTENT_TYPE);
    let metadata = MetadataMap::from_headers(headers);
    if path.path() == SEND_STREAM {
        let Some(messages) = unpack(request.body) else {
            return of_status(Status::invalid_argument("a cut-off stream of requests"));
        };
        let mut call = tonic::Request::new(tokio_stream::iter(messages));
        *call.metadata_mut() = metadata;
        let response = match grpc.streaming(call, path, RawCodec).await {
            Ok(response) => response,
            Err(status) => return refused(status),
        };
        let (metadata, mut results, _) = response.into_parts();
        let mut answers = Vec::new();
        loop {
            match results.message().await {
                Ok(Some(result)) => answers.push(result),
                Ok(None) => break,
                Err(status) => return refused(status),
            }
        }
        return answer(metadata, Code::Ok, "", pack(answers));
    }
    let mut call = tonic::Request::new(request.body);
    *call.metadata_mut() = metadata;
    match grpc.unary(call, path, RawCodec).await {
        Ok(response) => {
            let (metadata, body, _) = response.into_parts();
            answer(metadata, Code::Ok, "", body)
        }
        Err(status) => refused(status),
    }
}

/// The engine's refusal; UNAVAILABLE (its connection refused, or the stream refused as the
/// engine stops: the engine answers nothing it took with it) tells the front to ask the
/// partition's next owner.
fn refused(status: Status) -> Answer {
    if status.code() == Code::Unavailable {
        return Answer::moving("the partition's engine stopped");
    }
    of_status(status)
}

/// The front's side: the metadata and encoded answer, or the call's status.
pub fn reply(answer: Answer) -> Result<(MetadataMap, Bytes), Status> {
    let Some(code) = answer
        .headers
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        // The node's own answer: no owner could take the call now.
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("the partition has no reachable owner now");
        let mut status = Status::unavailable(message);
        status
            .metadata_mut()
            .insert("retry-after", tonic::metadata::MetadataValue::from(1u64));
        return Err(status);
    };
    let message = answer
        .headers
        .get(GRPC_MESSAGE)
        .and_then(|v| v.to_str().ok())
        .map(unescape)
        .unwrap_or_default();
    let mut headers = answer.headers;
    for kept_apart in [GRPC_STATUS, GRPC_MESSAGE, "content-type"] {
        headers.remove(kept_apart);
    }
    let metadata = MetadataMap::from_headers(headers);
    match Code::from_i32(code) {
        Code::Ok => Ok((metadata, answer.body)),
        code => Err(Status::with_metadata(code, message, metadata)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_messages_come_back_as_they_went_and_a_cut_off_body_is_refused() {
        let messages = vec![
            Bytes::from_static(b"one"),
            Bytes::new(),
            Bytes::from(vec![7u8; 300]),
        ];
        let packed = pack(messages.clone());
        assert_eq!(unpack(packed.clone()), Some(messages));
        for cut in 1..packed.len() {
            let unpacked = unpack(packed.slice(..cut));
            assert!(
                unpacked.is_none() || unpacked.as_ref().is_some_and(|m| m.len() < 3),
                "cut at {cut}: {unpacked:?}"
            );
        }
        assert_eq!(unpack(Bytes::from_static(&[5, b'a'])), None);
    }

    #[test]
    fn a_refusal_crosses_with_its_code_message_and_metadata() {
        let mut status = Status::resource_exhausted("full: 100% of 2 \u{e9}");
        status
            .metadata_mut()
            .insert("retry-after", tonic::metadata::MetadataValue::from(3u64));
        let back = reply(of_status(status)).expect_err("a refusal");
        assert_eq!(back.code(), Code::ResourceExhausted);
        assert_eq!(back.message(), "full: 100% of 2 \u{e9}");
        assert_eq!(back.metadata().get("retry-after").unwrap(), "3");

        let (metadata, body) = reply(answer(
            MetadataMap::new(),
            Code::Ok,
            "",
            Bytes::from_static(b"x"),
        ))
        .expect("an answer");
        assert_eq!(body, Bytes::from_static(b"x"));
        assert!(metadata.get(GRPC_STATUS).is_none());

        let unavailable = reply(Answer::unavailable("no owner")).expect_err("the node's own");
        assert_eq!(unavailable.code(), Code::Unavailable);
        assert_eq!(unavailable.message(), "no owner");
        assert!(reply(Answer::moving("moving")).is_err());
    }
}
