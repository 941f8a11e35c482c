//! A bulk body whose lines name numbers of several partitions: cut into one body per
//! partition (its lines in their order), each sent to its owner, and the owners' answers put
//! back together in the caller's line order, each result line carrying the caller's line
//! number. A partition whose owner refused the whole request (or stopped reading it part way,
//! `"unread"`) answers each of its lines with that reason, so the caller resends exactly those.

use bytes::Bytes;
use hyper::http::{HeaderValue, StatusCode};
use serde_json::Value;

use super::wire::Answer;

/// The body's lines as the bulk endpoint counts them (blank lines are not lines).
pub fn lines(body: &[u8]) -> Vec<&[u8]> {
    body.split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .collect()
}

/// The body of the lines at `indices`.
pub fn body_of(lines: &[&[u8]], indices: &[usize]) -> Bytes {
    let mut body = Vec::new();
    for &i in indices {
        body.extend_from_slice(lines[i]);
        body.push(b'\n');
    }
    Bytes::from(body)
}

fn result_line(line: usize, status: u64, body: &Value, unread: bool) -> Value {
    let mut result = serde_json::json!({ "line": line, "status": status, "body": body });
    if unread {
        result["unread"] = Value::Bool(true);
    }
    result
}

/// The caller's answer from each partition's (its lines' indices, its owner's answer).
pub fn merge(total: usize, answers: Vec<(Vec<usize>, Answer)>) -> Answer {
    let mut results: Vec<Option<Value>> = vec![None; total];
    for (indices, answer) in answers {
        if answer.status != StatusCode::OK {
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            for &i in &indices {
                results[i] = Some(result_line(
                    i,
                    u64::from(answer.status.as_u16()),
                    &body,
                    false,
                ));
            }
            continue;
        }
        for line in lines(&answer.body) {
            let Ok(result) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let Some(at) = result["line"].as_u64().map(|l| l as usize) else {
                continue;
            };
            let status = result["status"].as_u64().unwrap_or(503);
            if result["unread"] == true {
                for &i in indices.iter().skip(at) {
                    results[i] = Some(result_line(i, status, &result["body"], true));
                }
            } else if let Some(&i) = indices.get(at) {
                let mut result = result;
                result["line"] = Value::from(i);
                results[i] = Some(result);
            }
        }
    }
    let unanswered = serde_json::json!({ "error": {
        "message": "the partition's owner did not answer this line: send it again",
        "type": "OAuthException", "code": 2, "fbtrace_id": "wagate-cluster" } });
    let mut out = String::new();
    for (i, result) in results.into_iter().enumerate() {
        let result = result.unwrap_or_else(|| result_line(i, 503, &unanswered, true));
        out.push_str(&result.to_string());
        out.push('\n');
    }
    let mut headers = hyper::HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-ndjson"),
    );
    Answer {
        status: StatusCode::OK,
        headers,
        body: Bytes::from(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: StatusCode, body: &str) -> Answer {
        Answer {
            status,
            headers: Default::default(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn the_owners_answers_come_back_in_the_caller_s_line_order() {
        let body = b"{\"n\":0}\n\n{\"n\":1}\n{\"n\":2}\n  \n{\"n\":3}\n";
        let all = lines(body);
        assert_eq!(all.len(), 4);
        assert_eq!(
            body_of(&all, &[1, 3]),
            Bytes::from_static(b"{\"n\":1}\n{\"n\":3}\n")
        );
        let merged = merge(
            5,
            vec![
                (
                    vec![0, 2],
                    answer(
                        StatusCode::OK,
                        "{\"line\":0,\"status\":200,\"body\":{\"id\":\"x\"}}\n{\"line\":1,\"status\":400,\"body\":{}}\n",
                    ),
                ),
                (
                    vec![1, 3],
                    answer(
                        StatusCode::OK,
                        "{\"line\":0,\"status\":200,\"body\":{\"id\":\"y\"}}\n{\"line\":1,\"status\":503,\"body\":{},\"unread\":true}\n",
                    ),
                ),
                (vec![4], answer(StatusCode::UNAUTHORIZED, "{\"error\":{}}")),
            ],
        );
        assert_eq!(merged.status, StatusCode::OK);
        let out: Vec<Value> = lines(&merged.body)
            .iter()
            .map(|l| serde_json::from_slice(l).expect("json"))
            .collect();
        let seen: Vec<(u64, u64)> = out
            .iter()
            .map(|v| {
                (
                    v["line"].as_u64().unwrap_or(99),
                    v["status"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(seen, vec![(0, 200), (1, 200), (2, 400), (3, 503), (4, 401)]);
        assert_eq!(out[0]["body"]["id"], "x");
        assert_eq!(out[1]["body"]["id"], "y");
        assert_eq!(out[3]["unread"], true);
        // A partition that answered nothing at all: its lines say so.
        let merged = merge(2, vec![(vec![0], answer(StatusCode::OK, ""))]);
        let out: Vec<Value> = lines(&merged.body)
            .iter()
            .map(|l| serde_json::from_slice(l).expect("json"))
            .collect();
        assert_eq!(out[0]["status"], 503);
        assert_eq!(out[1]["status"], 503);
    }
}
