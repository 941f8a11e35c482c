//! The HTTP port's own HTTP/1.1 reader for the send endpoint, against the real binary over
//! raw TCP: sends it reads itself and requests it hands to hyper share one connection, in
//! order, with bytes already read passed on; every refusal is the same either way.

use crate::support::fixture::*;
use crate::support::raw_http::{get, post, post_chunked, RawAnswer, RawConnection};
use anyhow::Result;

const SEND_PATH: &str = "/v23.0/1001/messages";

fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn metrics(f: &Fixture) -> Result<String> {
    Ok(f.web.get(&f.url("/metrics"), ADMIN).await?.text())
}

fn accepted_id(answer: &RawAnswer) -> String {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["messages"][0]["message_status"], "accepted", "{body}");
    sent_id(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_other_requests_share_a_connection_in_order_even_pipelined() -> Result<()> {
    let mut f = Fixture::start("front-pipelined", "").await?;
    let people: Vec<String> = (1..=4).map(person).collect();
    f.ready_to_send(&people).await?;
    let auth = format!("Bearer {ALPHA}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let send = |i: usize| template_send(&people[i], "order_update", &["Ada"]).to_string();

    // Two sends, a request for another route and a chunked send, in one write: the reader
    // answers the sends, then hyper gets the connection with the two requests it already read.
    let mut bytes = post(SEND_PATH, &headers, &send(0));
    bytes.extend(post(SEND_PATH, &headers, &send(1)));
    bytes.extend(get("/healthz", &[]));
    bytes.extend(post_chunked(SEND_PATH, &headers, &send(2), 50));
    let mut connection = RawConnection::open(&f.server().base).await?;
    connection.write(&bytes).await?;
    let first = connection.answer().await?;
    let second = connection.answer().await?;
    let health = connection.answer().await?;
    let third = connection.answer().await?;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let ids = [&first, &second, &third].map(accepted_id);
    assert_eq!(first.json()["contacts"][0]["input"], people[0].as_str());
    assert_eq!(second.json()["contacts"][0]["input"], people[1].as_str());
    assert_eq!(third.json()["contacts"][0]["input"], people[2].as_str());
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
    for answer in [&first, &second] {
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert!(answer.header("date").is_some(), "{answer:?}");
    }

    // The connection stays usable after the hand-over.
    connection
        .write(&post(SEND_PATH, &headers, &send(3)))
        .await?;
    accepted_id(&connection.answer().await?);

    // `Connection: close` is answered, then the server closes.
    let mut closing = RawConnection::open(&f.server().base).await?;
    let close_headers = [headers[0], headers[1], ("connection", "close")];
    closing
        .write(&post(SEND_PATH, &close_headers, &send(0)))
        .await?;
    let answer = closing.answer().await?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(closing.closed_by_server().await?);

    let metrics = metrics(&f).await?;
    assert_eq!(
        metric(&metrics, "wagate_messages_accepted_total"),
        5,
        "{metrics}"
    );
    f.stop()
}

/// What a case is, its path, its headers and its body.
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_the_same_from_the_reader_and_from_hyper_and_accepts_nothing() -> Result<()>
{
    let (mut f, to) =
        Fixture::ready_for("front-refusals", "[http]\nmax_body_bytes = 4096\n", 1).await?;
    let good = template_send(&to, "order_update", &["Ada"]).to_string();
    let auth = format!("Bearer {ALPHA}");
    let beta = format!("Bearer {BETA}");
    let json = ("content-type", "application/json");
    let cases: Vec<Case> = vec![
        ("no token", SEND_PATH.into(), vec![json], good.clone()),
        (
            "another tenant's token",
            SEND_PATH.into(),
            vec![("authorization", beta.as_str()), json],
            good.clone(),
        ),
        (
            "an unknown number",
            "/v23.0/999/messages".into(),
            vec![("authorization", auth.as_str()), json],
            good.clone(),
        ),
        (
            "not JSON's content type",
            SEND_PATH.into(),
            vec![
                ("authorization", auth.as_str()),
                ("content-type", "text/plain"),
            ],
            good.clone(),
        ),
        (
            "a body that is not JSON",
            SEND_PATH.into(),
            vec![("authorization", auth.as_str()), json],
            "{\"to\":".into(),
        ),
        (
            "an on-limit choice that does not exist",
            SEND_PATH.into(),
            vec![
                ("authorization", auth.as_str()),
                json,
                ("x-wagate-on-limit", "later"),
            ],
            good.clone(),
        ),
        (
            "a body over the limit",
            SEND_PATH.into(),
            vec![("authorization", auth.as_str()), json],
            format!("{}{}", good, " ".repeat(5000)),
        ),
    ];
    // The reader reads every refused body whole: one connection serves every case. hyper
    // closes a connection whose body a handler left unread: one each.
    let mut connection = RawConnection::open(&f.server().base).await?;
    for (what, path, headers, body) in &cases {
        connection.write(&post(path, headers, body)).await?;
        let read_here = connection.answer().await?;
        let mut chunked = RawConnection::open(&f.server().base).await?;
        chunked
            .write(&post_chunked(path, headers, body, 64))
            .await?;
        let by_hyper = chunked.answer().await?;
        let error = read_here.json()["error"].clone();
        assert!(read_here.status >= 400, "{what}: {}", read_here.body);
        assert!(
            error["code"].is_u64(),
            "{what}: Meta's shape: {}",
            read_here.body
        );
        assert!(
            error["fbtrace_id"].is_string(),
            "{what}: {}",
            read_here.body
        );
        assert_eq!(
            (
                by_hyper.status,
                &by_hyper.json()["error"]["code"],
                &by_hyper.json()["error"]["type"]
            ),
            (read_here.status, &error["code"], &error["type"]),
            "{what}: {} / {}",
            read_here.body,
            by_hyper.body
        );
    }
    // Bytes that are not HTTP are hyper's to refuse; the server goes on serving.
    let mut garbage = RawConnection::open(&f.server().base).await?;
    garbage.write(b"NOT HTTP AT ALL\r\n\r\n").await?;
    assert_eq!(garbage.answer().await?.status, 400);

    let metrics = metrics(&f).await?;
    assert_eq!(
        metric(&metrics, "wagate_messages_accepted_total"),
        0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "wagate_requests_unauthorized_total"),
        2,
        "one case, both ways: {metrics}"
    );
    let mut after = RawConnection::open(&f.server().base).await?;
    let headers = [("authorization", auth.as_str()), json];
    after.write(&post(SEND_PATH, &headers, &good)).await?;
    accepted_id(&after.answer().await?);
    f.stop()
}
