//! An HTTP request or answer as a NATS message, for requests forwarded to a partition's owner
//! (routing, invariant C5): the body is the payload, the HTTP headers are NATS headers as they
//! came, and the method and target (or the status) ride in headers of wagate's own. The
//! owner's answer comes back whole: same status, headers and body.

use async_nats::HeaderMap;
use bytes::Bytes;
use hyper::http::{HeaderName, HeaderValue, Method, StatusCode};

const METHOD: &str = "Wagate-Forward-Method";
const TARGET: &str = "Wagate-Forward-Target";
const STATUS: &str = "Wagate-Forward-Status";
/// On wagate's own answer that a partition is changing hands (nothing was taken).
const MOVING: &str = "wagate-partition-moving";

/// A request as the front read it: method, path with query, headers, whole body.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub method: Method,
    pub target: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// An answer, whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

fn copy_out(from: &hyper::HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        // A value NATS cannot carry (not UTF-8) is dropped; Meta's and wagate's own never are.
        if let Ok(value) = value.to_str() {
            to.append(name.as_str(), value);
        }
    }
}

fn copy_in(from: Option<&HeaderMap>, skip: &[&str]) -> hyper::HeaderMap {
    let mut to = hyper::HeaderMap::new();
    for (name, values) in from.into_iter().flat_map(|h| h.iter()) {
        if skip
            .iter()
            .any(|s| s.eq_ignore_ascii_case(AsRef::<str>::as_ref(name)))
        {
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(AsRef::<str>::as_ref(name).as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value.as_str()) {
                to.append(name.clone(), value);
            }
        }
    }
    to
}

impl Forwarded {
    pub fn to_nats(&self) -> (HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        copy_out(&self.headers, &mut headers);
        headers.insert(METHOD, self.method.as_str());
        headers.insert(TARGET, self.target.as_str());
        (headers, self.body.clone())
    }

    /// The request in a NATS message; `None` when it lacks wagate's own headers.
    pub fn from_nats(headers: Option<&HeaderMap>, body: Bytes) -> Option<Forwarded> {
        let method = headers?.get(METHOD)?.as_str().parse().ok()?;
        let target = headers?.get(TARGET)?.as_str().to_string();
        Some(Forwarded {
            method,
            target,
            headers: copy_in(headers, &[METHOD, TARGET]),
            body,
        })
    }
}

impl Answer {
    pub fn to_nats(&self) -> (HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        copy_out(&self.headers, &mut headers);
        headers.insert(STATUS, self.status.as_str());
        (headers, self.body.clone())
    }

    /// The answer in a NATS message; `None` when it lacks the status.
    pub fn from_nats(headers: Option<&HeaderMap>, body: Bytes) -> Option<Answer> {
        let status = headers?.get(STATUS)?.as_str().parse().ok()?;
        Some(Answer {
            status,
            headers: copy_in(headers, &[STATUS]),
            body,
        })
    }

    /// The partition is changing hands and the request was not taken: a front asks again.
    pub fn moving(message: &str) -> Answer {
        let mut answer = Answer::unavailable(message);
        answer.headers.insert(MOVING, HeaderValue::from_static("1"));
        answer
    }

    pub fn is_moving(&self) -> bool {
        self.headers.contains_key(MOVING)
    }

    /// wagate's own refusal in Meta's error shape: the partition has no reachable owner now.
    pub fn unavailable(message: &str) -> Answer {
        let mut answer = Answer::error(StatusCode::SERVICE_UNAVAILABLE, 2, message, "unavailable");
        answer
            .headers
            .insert("retry-after", HeaderValue::from_static("1"));
        answer
    }

    /// The node's own refusal of a request, in Meta's error shape with wagate's `reason`.
    pub fn error(status: StatusCode, code: u32, message: &str, reason: &str) -> Answer {
        let body = serde_json::json!({
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_subcode": 2_494_010,
                "fbtrace_id": "wagate-cluster",
                "wagate_reason": reason,
            }
        });
        let mut headers = hyper::HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Answer {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_its_answer_cross_nats_as_they_were() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("idempotency-key", HeaderValue::from_static("k-1"));
        let request = Forwarded {
            method: Method::POST,
            target: "/v21.0/1/messages?x=1".into(),
            headers,
            body: Bytes::from_static(b"{}"),
        };
        let (nats, body) = request.to_nats();
        let back = Forwarded::from_nats(Some(&nats), body).expect("a request");
        assert_eq!(back.method, Method::POST);
        assert_eq!(back.target, request.target);
        assert_eq!(back.headers, request.headers);
        assert_eq!(back.body, request.body);
        assert!(Forwarded::from_nats(None, Bytes::new()).is_none());

        let answer = Answer::unavailable("moving");
        let (nats, body) = answer.to_nats();
        let back = Answer::from_nats(Some(&nats), body).expect("an answer");
        assert_eq!(back.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(back.headers, answer.headers);
        assert_eq!(back.body, answer.body);
    }
}
