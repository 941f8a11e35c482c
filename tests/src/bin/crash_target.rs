//! The engine under test in `tests/cross_crate/crash.rs`: a durable wagate on a data directory, taking
//! sends over a loopback line protocol and dispatching to an upstream over TCP. The crash test
//! kills it with SIGKILL at random moments and starts it again on the same directory.
//!
//! `crash_target DATA_DIR UPSTREAM_ADDR` prints `LISTENING <port> IN_FLIGHT <messages the
//! previous run left in flight>`, then serves:
//! `SUBMIT <key> <person>` -> `ACK <key> <message id> <new unique 0|1>` | `DEFER <key>` |
//! `REFUSE <key> <reason>` | `ERR <key> <error>`; `USAGE <number>` -> `USAGE <used 24 h>`;
//! `MESSAGE <id>` -> `MESSAGE <id> <where it is>` (for a failure's report).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use wagate::durable::dispatch::{Reconciled, Upstream, UpstreamError};
use wagate::durable::message::StoredMessage;
use wagate::durable::submission::Submission;
use wagate::durable::{SubmitResult, Wagate, WagateConfig};
use wagate::{
    AccountId, ConsentChange, ConsentSource, EngineConfig, Message, Msisdn, PhoneNumberId, Profile,
    SendRequest, SystemClock, TemplateSend, TemplateStatus, TextParam,
};
use wagate_test_support::{order_update, registration, TO_APPROVED};

pub const NUMBERS: u64 = 4;
pub const PEOPLE: u64 = 4_800;
const ACCOUNT: AccountId = AccountId(1);

fn number(i: u64) -> PhoneNumberId {
    PhoneNumberId(1_000 + i)
}

fn person(i: u64) -> Msisdn {
    Msisdn::from_digits(4_915_100_000_000 + i).expect("valid E.164")
}

/// Sends under way at once per hand-over, each on its own connection.
pub const UPSTREAM_CONCURRENCY: usize = 8;

/// The upstream over TCP: a pool of connections, one per send under way; one that failed is
/// dropped and a new one made.
struct TcpUpstream {
    address: String,
    idle: Mutex<Vec<(BufReader<TcpStream>, TcpStream)>>,
}

impl TcpUpstream {
    fn call(&self, line: &str) -> std::io::Result<String> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let (mut reader, mut writer) = match taken {
            Some(connection) => connection,
            None => {
                let stream = TcpStream::connect(&self.address)?;
                (BufReader::new(stream.try_clone()?), stream)
            }
        };
        writer.write_all(line.as_bytes())?;
        let mut answer = String::new();
        reader.read_line(&mut answer)?;
        if answer.is_empty() {
            return Err(std::io::Error::other("upstream closed the connection"));
        }
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((reader, writer));
        Ok(answer.trim().to_string())
    }
}

impl Upstream for TcpUpstream {
    fn send(&self, message: &StoredMessage) -> Result<String, UpstreamError> {
        match self.call(&format!("SEND {} {}\n", message.id, message.attempts)) {
            Ok(answer) => match answer.strip_prefix("OK ") {
                Some(id) => Ok(id.to_string()),
                None => Err(UpstreamError::Permanent(answer)),
            },
            Err(error) => Err(UpstreamError::Retryable(error.to_string())),
        }
    }

    fn concurrency(&self) -> usize {
        UPSTREAM_CONCURRENCY
    }

    fn reconcile(&self, message: &StoredMessage) -> Reconciled {
        match self
            .call(&format!("ASK {} {}\n", message.id, message.attempts))
            .as_deref()
        {
            Ok("NO") => Reconciled::NotDelivered,
            Ok(answer) => match answer.strip_prefix("YES ") {
                Some(id) => Reconciled::Delivered(id.to_string()),
                None => Reconciled::Unknown,
            },
            Err(_) => Reconciled::Unknown,
        }
    }
}

/// Numbers, the template and consent; safe to run again after a kill at any point.
fn set_up(wagate: &Wagate) -> Result<()> {
    for i in 0..NUMBERS {
        if wagate.registry().number(number(i)).is_none() {
            wagate.register_number(registration(number(i), ACCOUNT, Some("TIER_1K")))?;
        }
    }
    let template = wagate.registry().template(ACCOUNT, "order_update", "en_US");
    if template.is_none() {
        wagate.submit_template(order_update(ACCOUNT))?;
    }
    for status in TO_APPROVED {
        let now = wagate.now().secs();
        let current = wagate
            .registry()
            .template(ACCOUNT, "order_update", "en_US")
            .context("template registered above")?
            .status(&wagate.registry().profile().templates, now);
        if current != TemplateStatus::Approved {
            wagate.set_template_status(ACCOUNT, "order_update", "en_US", status)?;
        }
    }
    let changes = (0..PEOPLE)
        .map(|p| {
            (
                number(p % NUMBERS),
                person(p),
                ConsentChange::OptIn,
                ConsentSource::Api,
            )
        })
        .collect();
    wagate.consent_many(changes)?;
    Ok(())
}

fn answer(key: &str, result: Result<SubmitResult, wagate::durable::SubmitError>) -> String {
    match result {
        Ok(SubmitResult::Accepted {
            message_id,
            accepted,
            ..
        }) => {
            format!(
                "ACK {key} {message_id} {}\n",
                u8::from(accepted.new_unique_recipient)
            )
        }
        // The crash target never asks to queue.
        Ok(SubmitResult::Deferred { .. }) | Ok(SubmitResult::Queued { .. }) => {
            format!("DEFER {key}\n")
        }
        Ok(SubmitResult::Refused { name, .. }) => format!("REFUSE {key} {name}\n"),
        Err(error) => format!("ERR {key} {}\n", error.to_string().replace('\n', " ")),
    }
}

fn serve(wagate: Arc<Wagate>, stream: TcpStream) -> Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut lines = Vec::new();
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        lines.push(std::mem::take(&mut line));
        while !reader.buffer().is_empty() && lines.len() < 512 {
            reader.read_line(&mut line)?;
            lines.push(std::mem::take(&mut line));
        }
        let mut keys = Vec::new();
        let mut submissions = Vec::new();
        let mut out = String::new();
        for line in &lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["SUBMIT", key, who] => {
                    let who: u64 = who.parse()?;
                    keys.push(key.to_string());
                    submissions.push(Submission {
                        request: SendRequest {
                            number: number(who % NUMBERS),
                            to: person(who),
                            message: Message::Template(TemplateSend::new(
                                "order_update",
                                "en_US",
                                vec![TextParam::positional("Ana")],
                            )),
                            options: Default::default(),
                        },
                        payload: format!("{key} to {who}").into_bytes(),
                        idempotency_key: Some(key.to_string()),
                        queue_when_deferred: false,
                    });
                }
                ["MESSAGE", id] => {
                    let found = wagate.message(id.parse()?)?;
                    out.push_str(&match found {
                        Some(m) => format!(
                            "MESSAGE {id} {:?} attempts {} send_at {} now {} upstream {:?}\n",
                            m.status,
                            m.attempts,
                            m.decision.send_at.0,
                            wagate.now().0,
                            m.upstream
                        ),
                        None => format!("MESSAGE {id} none\n"),
                    });
                }
                ["USAGE", n] => {
                    let usage = wagate.usage(number(n.parse()?))?;
                    out.push_str(&format!("USAGE {}\n", usage.used_24h));
                }
                _ => anyhow::bail!("unknown request {line:?}"),
            }
        }
        for (key, result) in keys.iter().zip(wagate.submit_many(submissions)) {
            out.push_str(&answer(key, result));
        }
        writer.write_all(out.as_bytes())?;
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let data_dir = args
        .next()
        .context("usage: crash_target DATA_DIR UPSTREAM_ADDR")?;
    let upstream_address = args
        .next()
        .context("usage: crash_target DATA_DIR UPSTREAM_ADDR")?;
    let config = WagateConfig {
        engine: EngineConfig {
            shards: 2,
            ..EngineConfig::new(Profile::whatsapp_2021())
        },
        data_dir: data_dir.into(),
        ..WagateConfig::default()
    };
    let upstream = Arc::new(TcpUpstream {
        address: upstream_address,
        idle: Mutex::new(Vec::new()),
    });
    let wagate = Arc::new(Wagate::open(config, Arc::new(SystemClock), upstream)?);
    set_up(&wagate)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!(
        "LISTENING {} IN_FLIGHT {}",
        listener.local_addr()?.port(),
        wagate.found_in_flight_at_start()
    );
    std::io::stdout().flush()?;
    for stream in listener.incoming() {
        let wagate = wagate.clone();
        let stream = stream?;
        std::thread::spawn(move || {
            if let Err(error) = serve(wagate, stream) {
                eprintln!("connection ended: {error:#}");
            }
        });
    }
    Ok(())
}
