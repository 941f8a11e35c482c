//! What the server refuses or survives that it once took badly, through its public API and as
//! a process: a config that would destroy accepted messages, credentials Meta refuses, clock
//! moves that would wrap, templates Meta would never accept, an open `/metrics`, a client that
//! half-closes.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::fixture::*;
use crate::support::meta_stub::Scripted;
use crate::support::process::wagate_binary;
use anyhow::{Context, Result};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

/// Runs `wagate ARGS` to its end, or kills it after [`WAIT`] (a command that should have
/// refused to run, but serves, fails the test rather than hanging it).
async fn run_wagate(args: Vec<String>) -> Result<std::process::Output> {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(wagate_binary()?)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running wagate")?;
        let deadline = std::time::Instant::now() + WAIT;
        while child.try_wait()?.is_none() {
            if std::time::Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                anyhow::bail!("wagate {args:?} was still running after {WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(child.wait_with_output()?)
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_upstream_url_is_refused_at_start_with_its_key_named() -> Result<()> {
    let f = Fixture::start("hard-bad-url", "").await?;
    let config = f.dir.join("wagate.toml");
    let data = fresh_dir("hard-bad-url-own").join("data");
    // The running server's own config (its own data directory), with Meta's address mistyped.
    let output = run_wagate(
        [
            "serve",
            "--config",
            &config.display().to_string(),
            "--meta.base_url",
            "ht!tp://graph.facebook .com",
            "--storage.data_dir",
            &data.display().to_string(),
            "--http.listen",
            "127.0.0.1:0",
            "--grpc.listen",
            "127.0.0.1:0",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await?;
    assert!(!output.status.success(), "it started");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("meta.base_url"), "{said}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_meta_refuses_leave_the_message_waiting_not_failed() -> Result<()> {
    let (mut f, ana) = Fixture::ready_for("hard-credentials", "", 1).await?;
    // The token expired: Meta refuses wagate's credentials, not the message.
    f.meta.script([Scripted::meta_error(
        401,
        190,
        "Error validating access token",
    )]);
    let sent = f.send_update(&ana).await?;
    let id = sent.message_id();
    f.meta.wait_for(1, WAIT).await?;
    let waiting = f
        .wait_message(&id, WAIT, |v| {
            v["attempts"] == 1 && v["status"] == "pending"
        })
        .await?;
    assert!(
        waiting["error"].as_str().unwrap_or("").contains("190"),
        "{waiting}"
    );
    // Once the credentials work again (here: the next answer), it goes: at the token's probe,
    // a minute on (until then nothing is sent with a token Meta refused).
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 61 }))
        .await?;
    f.wait_message(&id, WAIT, |v| v["status"] == "sent").await?;
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manual_clock_refuses_a_move_that_would_wrap_or_leave_its_range() -> Result<()> {
    let mut f = Fixture::start("hard-clock", "").await?;
    let now = || async {
        Ok::<_, anyhow::Error>(
            f.web
                .get(&f.url("/wagate/admin/clock"), ADMIN)
                .await?
                .json()["now_unix_secs"]
                .as_u64()
                .unwrap(),
        )
    };
    let before = now().await?;
    for body in [
        json!({ "advance_secs": u64::MAX }),
        json!({ "advance_secs": u64::MAX / 1_000_000 }),
        json!({ "set_unix_secs": u64::MAX }),
        json!({ "set_unix_secs": 99_999_999_999_u64 }),
    ] {
        let refused = f.admin("/wagate/admin/clock", body.clone()).await?;
        assert_eq!(refused.status, 400, "{body}: {}", refused.text());
        assert_eq!(refused.code(), Some(100), "{}", refused.text());
        assert_eq!(now().await?, before, "{body} moved the clock");
    }
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_need_names_and_languages_meta_would_take() -> Result<()> {
    let mut f = Fixture::start("hard-template-names", "").await?;
    for (name, language) in [
        ("", "en_US"),
        ("order_update", ""),
        ("Order Update", "en_US"),
    ] {
        let refused = f
            .admin(
                "/wagate/admin/templates",
                json!({ "account": 1, "name": name, "language": language,
                        "category": "utility", "body": "Hello {{1}}." }),
            )
            .await?;
        assert_eq!(refused.status, 400, "{name}/{language}: {}", refused.text());
        assert_eq!(refused.json()["error"]["wagate_reason"], "registry_refused");
    }
    f.approved_template("order_update", "utility", ORDER_UPDATE)
        .await?;
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_ask_for_their_token_when_one_is_set() -> Result<()> {
    let token = "metrics-token-0123456789";
    let mut f = Fixture::start(
        "hard-metrics",
        &format!("[http]\nmetrics_token = \"{token}\"\n"),
    )
    .await?;
    let without = f.web.get(&f.url("/metrics"), "not-the-token").await?;
    assert_eq!(without.status, 401, "{}", without.text());
    assert_eq!(without.code(), Some(190));
    let with = f.web.get(&f.url("/metrics"), token).await?;
    assert_eq!(with.status, 200);
    assert!(with.text().contains("wagate_http_requests_total"));
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_still_gets_its_answer() -> Result<()> {
    let mut f = Fixture::start("hard-half-close", "").await?;
    let address = f.url("").trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: wagate\r\n\r\n")
        .await?;
    // The request is whole; the client says it will send nothing more.
    stream.shutdown().await?;
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    f.stop()
}

/// Waits (bounded) until the server closes `stream`; what it wrote meanwhile.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> Result<String> {
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut seen))
        .await
        .context("the server kept the connection open")??;
    Ok(String::from_utf8_lossy(&seen).into_owned())
}

async fn connect(f: &Fixture) -> Result<tokio::net::TcpStream> {
    let address = f.url("").trim_start_matches("http://").to_string();
    Ok(tokio::net::TcpStream::connect(address).await?)
}

async fn connect_grpc(f: &Fixture) -> Result<tokio::net::TcpStream> {
    let address = f.server().grpc.trim_start_matches("http://").to_string();
    Ok(tokio::net::TcpStream::connect(address).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_clients_are_disconnected_on_time() -> Result<()> {
    let mut f = Fixture::start(
        "hard-timeouts",
        "[http]\nheader_read_timeout_ms = 300\nbody_read_timeout_ms = 300\nidle_timeout_secs = 1\n",
    )
    .await?;
    // Connected, then silent.
    let mut silent = connect(&f).await?;
    // Half a head of a send.
    let mut half_head = connect(&f).await?;
    half_head
        .write_all(b"POST /v23.0/1001/messages HTTP/1.1\r\nHost: wagate\r\n")
        .await?;
    // A whole head announcing 100 bytes of body, and 10 of them.
    let mut short_body = connect(&f).await?;
    short_body
        .write_all(
            format!(
                "POST /v23.0/1001/messages HTTP/1.1\r\nHost: wagate\r\nAuthorization: Bearer \
                 {ALPHA}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"to\":\"1"
            )
            .as_bytes(),
        )
        .await?;
    // A request hyper answers, then nothing more on a kept-alive connection.
    let mut kept_alive = connect(&f).await?;
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: wagate\r\n\r\n")
        .await?;
    for (name, stream) in [
        ("silent", &mut silent),
        ("half a head", &mut half_head),
        ("short body", &mut short_body),
    ] {
        let said = closed_by_server(stream).await.context(name)?;
        assert!(said.is_empty(), "{name}: {said}");
    }
    let said = closed_by_server(&mut kept_alive).await?;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    // The gRPC port likewise: a connection that sends nothing is closed.
    let mut grpc_silent = connect_grpc(&f).await?;
    closed_by_server(&mut grpc_silent)
        .await
        .context("silent gRPC")?;
    assert!(metric(&f, "wagate_connections_timed_out_total").await? >= 4);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_at_once_and_the_server_recovers() -> Result<()> {
    let mut f = Fixture::start("hard-cap", "[http]\nmax_connections = 8\n").await?;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let mut stream = connect(&f).await?;
        let mut first = [0u8; 12];
        // A refused connection is answered at once; a held one says nothing.
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut first)).await {
            Ok(Ok(n)) if n > 0 => {
                assert_eq!(&first[..n], &b"HTTP/1.1 503"[..n]);
                refused += 1;
            }
            _ => held.push(stream),
        }
    }
    assert!(held.len() <= 8, "{} held", held.len());
    assert!(refused >= 12, "{refused} refused");
    // Room again once they go.
    drop(held);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let health = f.web.get(&f.url("/healthz"), ADMIN).await;
        if health.is_ok_and(|h| h.status == 200) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no room came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wagate_connections_refused_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_port_shares_the_connection_cap() -> Result<()> {
    let mut f = Fixture::start("hard-grpc-cap", "[http]\nmax_connections = 4\n").await?;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&f).await?);
    }
    // A fifth is refused: the four hold every place.
    let mut fifth = connect(&f).await?;
    let said = closed_by_server(&mut fifth).await?;
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    // Both ports are full: a gRPC connection is closed at once, without a byte.
    let mut refused = connect_grpc(&f).await?;
    let said = closed_by_server(&mut refused).await;
    assert!(said.as_ref().map_or(true, String::is_empty), "{said:?}");
    drop((held, fifth));
    // Room again: a gRPC call is served (and refused for its missing token), not cut off.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let call = async {
            f.grpc_client()
                .await?
                .send(wagate::server::grpc::proto::SendRequest::default())
                .await
                .err()
                .context("answered without a token")
        };
        match call.await {
            // Until the server has seen the held ones go, a connection may still be refused.
            Ok(status) if status.code() == tonic::Code::Unauthenticated => break,
            _ => {
                assert!(tokio::time::Instant::now() < deadline, "no room came back");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(metric(&f, "wagate_connections_refused_total").await? >= 2);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_stops_the_start_and_recover_keeps_what_is_intact() -> Result<()> {
    let mut f = Fixture::start("hard-wal", "").await?;
    let people: Vec<String> = (1..=300).map(person).collect();
    f.ready_to_send(&people).await?;
    let mut ids = Vec::new();
    for (i, to) in people.iter().enumerate() {
        let key = format!("order-{i}");
        let answer = f
            .send(
                ALPHA,
                NUMBER_A,
                &template_send(to, "order_update", &["Ada"]),
                &[("idempotency-key", key.as_str())],
            )
            .await?;
        ids.push(answer.message_id());
    }
    // Killed: what it acknowledged is in the write-ahead log, not yet in table files.
    f.wagate.take().expect("running").kill()?;
    let data = f.dir.join("data");
    let wal = std::fs::read_dir(&data)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max_by_key(|p| p.metadata().map_or(0, |m| m.len()))
        .context("a write-ahead log")?;
    let mut bytes = std::fs::read(&wal)?;
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0x5a;
    }
    std::fs::write(&wal, bytes)?;

    let run = run_wagate;
    let config = f.dir.join("wagate.toml").display().to_string();
    let refused = run(vec![
        "serve".into(),
        "--config".into(),
        config,
        "--http.listen".into(),
        "127.0.0.1:0".into(),
        "--grpc.listen".into(),
        "127.0.0.1:0".into(),
    ])
    .await?;
    assert!(!refused.status.success(), "it started over a damaged log");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("write-ahead log") && said.contains("wagate recover"),
        "{said}"
    );

    let recovered = run(vec![
        "recover".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ])
    .await?;
    let report = String::from_utf8_lossy(&recovered.stdout);
    assert!(
        recovered.status.success(),
        "{report} {}",
        String::from_utf8_lossy(&recovered.stderr)
    );
    assert!(
        report.contains("RocksDB dropped what these lines say"),
        "{report}"
    );

    // It opens again, with what came before the damage.
    f.restart()?;
    let first = f.message(ALPHA, &ids[0]).await?;
    assert_eq!(first.status, 200, "{}", first.text());
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_this_run_is_sending_is_neither_listed_nor_settled_by_an_operator() -> Result<()>
{
    // Meta holds the request: a lane of this run has the message in flight.
    let (mut f, id) = super::sent_while_meta_holds("hard-live", 17).await?;
    let listed = f
        .web
        .get(&f.url("/wagate/admin/messages/in_flight"), ADMIN)
        .await?
        .json();
    assert_eq!(listed["messages"], json!([]), "{listed}");
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert!(metrics.contains("wagate_upstream_in_flight 1"), "{metrics}");
    let refused = f
        .admin(
            &format!("/wagate/admin/messages/{id}/settle"),
            json!({ "resend": true }),
        )
        .await?;
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert_eq!(refused.json()["error"]["wagate_reason"], "in_flight_now");
    f.meta.release();
    f.wait_message(&id, WAIT, |v| v["status"] == "sent").await?;
    assert_eq!(f.meta.received().len(), 1, "sent once");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_writes_the_same_request_another_way_gets_the_first_answer() -> Result<()> {
    let (mut f, ana) = Fixture::ready_for("hard-canonical-key", "", 1).await?;
    let auth = format!("Bearer {ALPHA}");
    let post = |body: String| {
        let (f, auth) = (&f, auth.clone());
        async move {
            f.web
                .request(
                    hyper::Method::POST,
                    &f.url(&format!("/v23.0/{NUMBER_A}/messages")),
                    &[
                        ("authorization", auth.as_str()),
                        ("content-type", "application/json"),
                        ("idempotency-key", "order-77-shipped"),
                    ],
                    body,
                )
                .await
        }
    };
    let first = post(template_send(&ana, "order_update", &["Ada"]).to_string()).await?;
    assert_eq!(first.status, 200, "{}", first.text());
    // The client's retry builds the same request again: other key order, other spacing.
    let again = format!(
        "{{ \"template\": {{ \"components\": [ {{ \"parameters\": [ {{ \"text\": \"Ada\", \
         \"type\": \"text\" }} ], \"type\": \"body\" }} ], \"language\": {{ \"code\": \
         \"en_US\" }}, \"name\": \"order_update\" }},\n \"type\": \"template\", \"to\": \"{ana}\", \
         \"messaging_product\": \"whatsapp\" }}"
    );
    let retried = post(again).await?;
    assert_eq!(retried.status, 200, "{}", retried.text());
    assert_eq!(retried.message_id(), first.message_id());
    // Another request under the same key is still refused.
    let other = post(template_send(&ana, "order_update", &["Bo"]).to_string()).await?;
    assert_eq!(other.status, 422, "{}", other.text());
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_keeps_to_its_grace_leaves_what_was_being_sent_in_flight_and_says_so() -> Result<()>
{
    let (mut f, ana) =
        Fixture::ready_for("hard-stop", "[http]\nshutdown_grace_secs = 2\n", 18).await?;
    // Meta has the request and does not answer; a client sent half a head and waits.
    f.meta.hold();
    let sent = f.send_update(&ana).await?;
    let id = sent.message_id();
    f.meta.wait_for(1, WAIT).await?;
    let mut half = connect(&f).await?;
    half.write_all(b"POST /v23.0/1001/messages HTTP/1.1\r\nHost: wagate\r\n")
        .await?;

    let server = f.wagate.take().expect("running");
    let asked = std::time::Instant::now();
    server.terminate()?;
    // Within the 2 s grace (the margin is for process start-up and exit, not a second grace).
    let status = tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(6))).await??;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(6), "the stop took {took:?}");
    assert!(!status.success(), "it said it stopped cleanly: {status}");
    f.meta.release();

    // After the restart: Meta may have the message, so it waits in flight for an operator,
    // and nothing sends it again.
    f.restart()?;
    let listed = f
        .web
        .get(&f.url("/wagate/admin/messages/in_flight"), ADMIN)
        .await?
        .json();
    let ids: Vec<&str> = listed["messages"]
        .as_array()
        .map(|all| all.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, vec![id.as_str()], "{listed}");
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 60 }))
        .await?;
    assert_eq!(f.meta.received().len(), 1, "sent once");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_refused_on_its_head_has_its_body_read_past_and_the_connection_stays_in_step(
) -> Result<()> {
    let mut f = Fixture::start("hard-refused-body", "").await?;
    let mut stream = connect(&f).await?;
    let body = format!(
        "{{\"to\":\"{}\",\"pad\":\"{}\"}}",
        person(1),
        "x".repeat(5_000)
    );
    let head = format!(
        "POST /v23.0/{NUMBER_A}/messages HTTP/1.1\r\nHost: wagate\r\nAuthorization: Bearer \
         not-a-token-at-all-000\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    // The body comes in pieces, the next request right behind it.
    for piece in body.as_bytes().chunks(1_000) {
        stream.write_all(piece).await?;
    }
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: wagate\r\nConnection: close\r\n\r\n")
        .await?;
    let said = closed_by_server(&mut stream).await?;
    let first = said.find("HTTP/1.1 401").context(said.clone())?;
    let second = said.find("HTTP/1.1 200").context(said.clone())?;
    assert!(first < second, "{said}");
    f.stop()
}

/// A metric's value, read from `/metrics`.
async fn metric(f: &Fixture, name: &str) -> Result<u64> {
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {name} in {metrics}"))
}

/// Waits (bounded) until `name` satisfies `wanted`.
async fn metric_until(f: &Fixture, name: &str, wanted: impl Fn(u64) -> bool) -> Result<u64> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = metric(f, name).await?;
        if wanted(value) {
            return Ok(value);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed at {value}"
        );
        tokio::task::yield_now().await;
    }
}

/// One request on its own connection (closed after it); the answer as written.
async fn one_request(f: &Fixture, head: &str, body: &[u8]) -> Result<String> {
    let mut stream = connect(f).await?;
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    closed_by_server(&mut stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bodies_of_unfinished_requests_stay_under_their_bound_together() -> Result<()> {
    let mut f = Fixture::start(
        "hard-body-budget",
        "[http]\nmax_body_bytes = 65536\nmax_bulk_bytes = 262144\nmax_body_bytes_held = 262144\n",
    )
    .await?;
    f.ready_to_send(&[person(1)]).await?;
    // A bulk upload announcing 260,000 bytes sends most of them and stalls.
    let mut stalled = connect(&f).await?;
    stalled
        .write_all(
            format!(
                "POST /wagate/v1/bulk HTTP/1.1\r\nHost: wagate\r\nAuthorization: Bearer {ALPHA}\r\n\
                 Content-Type: application/x-ndjson\r\nContent-Length: 260000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    stalled.write_all(&[b'\n'; 250_000]).await?;
    metric_until(&f, "wagate_request_body_bytes_held", |held| held >= 250_000).await?;

    // A send (through wagate's own reader) and a webhook (through axum), 20,000 bytes each:
    // together with the stalled upload, beyond the bound.
    let send = format!(
        "{}{}",
        template_send(&person(1), "order_update", &["Ana"]),
        " ".repeat(20_000)
    );
    let send_head = format!(
        "POST /v23.0/{NUMBER_A}/messages HTTP/1.1\r\nHost: wagate\r\nAuthorization: Bearer \
         {ALPHA}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        send.len()
    );
    let hook = vec![b' '; 20_000];
    let hook_head = format!(
        "POST /webhooks/meta HTTP/1.1\r\nHost: wagate\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        hook.len()
    );
    let said = one_request(&f, &send_head, send.as_bytes()).await?;
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(
        said.contains("bodies_full") && said.contains("retry-after"),
        "{said}"
    );
    let said = one_request(&f, &hook_head, &hook).await?;
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    // Health needs no body: it answers meanwhile.
    let said = one_request(
        &f,
        "GET /healthz HTTP/1.1\r\nHost: wagate\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await?;
    assert!(
        said.starts_with("HTTP/1.1 200") && said.ends_with("ok"),
        "{said}"
    );
    assert!(metric(&f, "wagate_request_bodies_refused_total").await? >= 2);

    // The stalled upload goes away: its share comes back, and the same requests are read.
    drop(stalled);
    metric_until(&f, "wagate_request_body_bytes_held", |held| held == 0).await?;
    let said = one_request(&f, &send_head, send.as_bytes()).await?;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    let said = one_request(&f, &hook_head, &hook).await?;
    assert!(said.starts_with("HTTP/1.1 401"), "{said}");
    f.stop()
}

/// One bulk line sending the template to `to`, padded with `pad` spaces inside the line.
fn padded_bulk_line(to: &str, pad: usize) -> String {
    let line = json!({ "phone_number_id": NUMBER_A.to_string(),
                       "request": template_send(to, "order_update", &["Ana"]) })
    .to_string();
    format!("{}{}}}\n", &line[..line.len() - 1], " ".repeat(pad))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_upload_is_taken_part_by_part_as_it_arrives() -> Result<()> {
    let mut f = Fixture::start(
        "hard-bulk-parts",
        "[http]\nmax_bulk_bytes = 600000\nmax_body_bytes_held = 1048576\n",
    )
    .await?;
    let people = [person(1), person(2), person(3)];
    f.ready_to_send(&people).await?;
    let accepted = "wagate_messages_accepted_total";

    // A first line longer than a part, then the upload pauses: that line is accepted before
    // the body ends (the whole body was read first).
    let (first, second) = (
        padded_bulk_line(&people[0], 300_000),
        padded_bulk_line(&people[1], 0),
    );
    let mut upload = connect(&f).await?;
    upload
        .write_all(
            format!(
                "POST /wagate/v1/bulk HTTP/1.1\r\nHost: wagate\r\nAuthorization: Bearer {ALPHA}\r\n\
                 Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
                first.len() + second.len()
            )
            .as_bytes(),
        )
        .await?;
    metric_until(&f, accepted, |n| n == 1).await?;
    upload.write_all(second.as_bytes()).await?;
    let said = closed_by_server(&mut upload).await?;
    let lines: Vec<&str> = said
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .lines()
        .collect();
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    assert_eq!(lines.len(), 2, "{said}");
    assert!(
        lines.iter().all(|l| l.contains(r#""status":200"#)),
        "{said}"
    );
    assert_eq!(metric(&f, accepted).await?, 2);

    // An upload (chunked: no length announced) that grows past the limit after its first
    // part was taken: the answer lists that line, then says the rest was not read, and why.
    let third = padded_bulk_line(&people[2], 300_000);
    let mut upload = connect(&f).await?;
    upload
        .write_all(
            format!(
                "POST /wagate/v1/bulk HTTP/1.1\r\nHost: wagate\r\nAuthorization: Bearer {ALPHA}\r\n\
                 Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\
                 Connection: close\r\n\r\n{:x}\r\n{third}\r\n",
                third.len()
            )
            .as_bytes(),
        )
        .await?;
    metric_until(&f, accepted, |n| n == 3).await?;
    let beyond = " ".repeat(400_000);
    upload
        .write_all(format!("{:x}\r\n{beyond}\r\n0\r\n\r\n", beyond.len()).as_bytes())
        .await?;
    let said = closed_by_server(&mut upload).await?;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    let lines: Vec<serde_json::Value> = said
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 2, "{said}");
    assert_eq!(
        (lines[0]["line"].as_u64(), lines[0]["status"].as_u64()),
        (Some(0), Some(200))
    );
    assert_eq!(
        (
            lines[1]["line"].as_u64(),
            lines[1]["status"].as_u64(),
            lines[1]["unread"].as_bool()
        ),
        (Some(1), Some(413), Some(true)),
        "{said}"
    );
    assert_eq!(lines[1]["body"]["error"]["code"], 100);
    assert_eq!(metric(&f, accepted).await?, 3);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_import_is_applied_part_by_part_as_it_arrives() -> Result<()> {
    let mut f = Fixture::start(
        "hard-import-parts",
        "[http]\nmax_bulk_bytes = 4000000\nmax_body_bytes_held = 4000000\n",
    )
    .await?;
    // Rows of about 200 bytes: the first 6,000 are more than a part (1 MiB).
    let row = |i: u64| {
        json!({ "phone_number_id": NUMBER_A.to_string(), "to": format!("+1650{i:07}"),
                "change": "opt_in", "source": "paper",
                "evidence": { "document": format!("signed form {i:0>100}") } })
        .to_string()
            + "\n"
    };
    let first: String = (1..=6_000).map(row).collect();
    let last = row(6_001);
    let mut upload = connect(&f).await?;
    upload
        .write_all(
            format!(
                "POST /wagate/admin/consent/import HTTP/1.1\r\nHost: wagate\r\n\
                 Authorization: Bearer {ADMIN}\r\nContent-Type: application/x-ndjson\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{first}",
                first.len() + last.len()
            )
            .as_bytes(),
        )
        .await?;
    // The upload pauses: its first rows are applied before the body ends.
    let deadline = tokio::time::Instant::now() + WAIT;
    while f.contact(NUMBER_A, "+16500000001").await?["opted_in"] != true {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the first rows were not applied before the body ended");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        f.contact(NUMBER_A, "+16500006001").await?["opted_in"],
        false,
        "the last row has not arrived"
    );
    upload.write_all(last.as_bytes()).await?;
    let said = closed_by_server(&mut upload).await?;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    assert!(
        said.trim_end().ends_with(r#"{"applied":6001,"refused":0}"#),
        "{said}"
    );
    assert_eq!(f.contact(NUMBER_A, "+16500006001").await?["opted_in"], true);
    f.stop()
}
