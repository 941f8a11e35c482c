//! Crash safety, for real: the engine runs as a child process (`crash_target`) on a RocksDB data
//! directory under continuous load, is killed with SIGKILL at random moments, and is started
//! again on the same directory, again and again. This process keeps its own record of every
//! acknowledgement and is the upstream the engine dispatches to, over loopback TCP.
//!
//! At the end: no acknowledged message is lost (each reached the upstream), none reached it
//! twice, a retried key always got the same message id, and each number's 24 h unique count is
//! exactly the distinct recipients acknowledged.

// Test code: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const KILLS: usize = 100;
/// How long the upstream takes to answer a send: a slow Meta. With `crash_target`'s 8 sends
/// under way per lane it takes about 800 a second, half the load: a backlog forms, as when
/// Meta slows down, and a kill finds batches waiting for the upstream.
const UPSTREAM_DELAY_MS: std::ops::Range<u64> = 30..50;
/// Keys sent every 10 ms.
const LOAD_PER_ROUND: usize = 16;
/// What may be in flight at a kill: every hand-over lane's sends under way
/// (`wagate::durable::hand_over::LANES` lanes, `crash_target`'s 8 each), and a group
/// marked while they answer.
const IN_FLIGHT_BOUND: usize = 2 * wagate::durable::hand_over::LANES * 8;
const DRAIN_DEADLINE: Duration = Duration::from_secs(150);
const NUMBERS: u64 = 4;
const PEOPLE: u64 = 4_800;

/// The upstream: counts every message id handed over. After it answers "not delivered" about
/// an attempt it refuses that attempt and earlier ones for good, as the `Upstream` contract
/// requires; a later attempt (the engine's resend) is taken.
#[derive(Default)]
struct UpstreamRecord {
    delivered: HashMap<u64, u32>,
    /// Per message id: the highest attempt promised never to be delivered.
    denied: HashMap<u64, u32>,
}

fn run_upstream(listener: TcpListener, record: Arc<Mutex<UpstreamRecord>>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let record = record.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut writer = stream;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let words: Vec<&str> = line.split_whitespace().collect();
                let id: u64 = words.get(1).and_then(|w| w.parse().ok()).expect("an id");
                let attempt: u32 = words
                    .get(2)
                    .and_then(|w| w.parse().ok())
                    .expect("an attempt");
                if line.starts_with("SEND") {
                    // Spread over the range by the message id, the same on every run.
                    let spread = UPSTREAM_DELAY_MS.end - UPSTREAM_DELAY_MS.start;
                    let delay = UPSTREAM_DELAY_MS.start + id.wrapping_mul(7) % spread;
                    std::thread::sleep(Duration::from_millis(delay));
                }
                let reply = {
                    let mut record = record.lock().unwrap();
                    let fenced = record
                        .denied
                        .get(&id)
                        .is_some_and(|denied| attempt <= *denied);
                    match words[0] {
                        "SEND" if fenced => "LATE".to_string(),
                        "SEND" => {
                            *record.delivered.entry(id).or_default() += 1;
                            format!("OK wamid.{id}")
                        }
                        "ASK" if record.delivered.contains_key(&id) => format!("YES wamid.{id}"),
                        _ => {
                            let denied = record.denied.entry(id).or_default();
                            *denied = (*denied).max(attempt);
                            "NO".to_string()
                        }
                    }
                };
                if writer.write_all(format!("{reply}\n").as_bytes()).is_err() {
                    return;
                }
                line.clear();
            }
        });
    }
}

/// What this process saw the engine acknowledge.
#[derive(Default)]
struct Acks {
    /// Every key sent, with its recipient.
    issued: HashMap<String, u64>,
    /// Keys answered: accepted with an id and whether it was a new unique, or otherwise.
    accepted: HashMap<String, u64>,
    answered: HashSet<String>,
    violations: Vec<String>,
    errors: Vec<String>,
}

/// Starts the engine; returns it, its port, and how many messages the previous run left in
/// flight.
fn start_child(data_dir: &str, upstream: &str) -> (Child, u16, usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_target"))
        .args([data_dir, upstream])
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(format!("{data_dir}.stderr"))
                .expect("a log file"),
        )
        .spawn()
        .expect("start crash_target");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("read the port");
    let words: Vec<&str> = line.split_whitespace().collect();
    let ["LISTENING", port, "IN_FLIGHT", in_flight] = words.as_slice() else {
        panic!("crash_target said {line:?}");
    };
    (
        child,
        port.parse().expect("a port"),
        in_flight.parse().expect("a count"),
    )
}

fn read_answers(stream: TcpStream, acks: Arc<Mutex<Acks>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            let mut acks = acks.lock().unwrap();
            match words.first().map(String::as_str) {
                Some("ACK") => {
                    let id: u64 = words[2].parse().expect("an id");
                    if let Some(earlier) = acks.accepted.insert(words[1].clone(), id) {
                        if earlier != id {
                            acks.violations.push(format!(
                                "key {} acknowledged as {earlier} and {id}",
                                words[1]
                            ));
                        }
                    }
                    acks.answered.insert(words[1].clone());
                }
                Some("DEFER") | Some("REFUSE") => {
                    acks.answered.insert(words[1].clone());
                }
                // Not answered: retried after the next start.
                Some("ERR") => acks.errors.push(line.trim().to_string()),
                Some("USAGE") => {}
                _ => acks.violations.push(format!("unexpected answer {line:?}")),
            }
            line.clear();
        }
    })
}

/// Sends the unanswered keys again, then new ones, until `stop`.
fn load(
    mut stream: TcpStream,
    acks: Arc<Mutex<Acks>>,
    stop: Arc<AtomicBool>,
    rng: &mut SmallRng,
    next_key: &mut u64,
) {
    let retries: Vec<(String, u64)> = {
        let acks = acks.lock().unwrap();
        acks.issued
            .iter()
            .filter(|(key, _)| !acks.answered.contains(*key))
            .map(|(key, who)| (key.clone(), *who))
            .collect()
    };
    let retry_lines: String = retries
        .iter()
        .map(|(key, who)| format!("SUBMIT {key} {who}\n"))
        .collect();
    if stream.write_all(retry_lines.as_bytes()).is_err() {
        return;
    }
    let mut lines = String::new();
    while !stop.load(Ordering::SeqCst) {
        for _ in 0..LOAD_PER_ROUND {
            let key = format!("k{next_key}");
            *next_key += 1;
            let who = rng.random_range(0..PEOPLE);
            acks.lock().unwrap().issued.insert(key.clone(), who);
            lines.push_str(&format!("SUBMIT {key} {who}\n"));
        }
        if stream.write_all(lines.as_bytes()).is_err() {
            return;
        }
        lines.clear();
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged_and_duplicates_nothing() {
    let data_dir = std::env::temp_dir().join(format!("wagate-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let data_dir = data_dir.to_string_lossy().to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    let record = Arc::new(Mutex::new(UpstreamRecord::default()));
    {
        let record = record.clone();
        std::thread::spawn(move || run_upstream(listener, record));
    }
    let acks = Arc::new(Mutex::new(Acks::default()));
    let mut rng = SmallRng::seed_from_u64(20_261_121);
    let mut next_key = 0;
    // Per kill: the messages it left in flight, as the next start found them.
    let mut left_in_flight = Vec::new();
    for kill in 0..KILLS {
        let (mut child, port, found) = start_child(&data_dir, &upstream);
        if kill > 0 {
            left_in_flight.push(found);
        }
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let reader = read_answers(stream.try_clone().unwrap(), acks.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let kill_after = Duration::from_millis(rng.random_range(40..500));
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(kill_after);
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                stop.store(true, Ordering::SeqCst);
            })
        };
        load(stream, acks.clone(), stop, &mut rng, &mut next_key);
        stopper.join().unwrap();
        reader.join().unwrap();
    }

    // A last start: every unanswered key gets its answer, and the backlog drains.
    let (mut child, port, found) = start_child(&data_dir, &upstream);
    left_in_flight.push(found);
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let reader = read_answers(stream.try_clone().unwrap(), acks.clone());
    let stop = Arc::new(AtomicBool::new(true));
    load(
        stream.try_clone().unwrap(),
        acks.clone(),
        stop,
        &mut rng,
        &mut next_key,
    );
    let deadline = Instant::now() + DRAIN_DEADLINE;
    loop {
        let (answered, issued, expected): (usize, usize, HashSet<u64>) = {
            let acks = acks.lock().unwrap();
            (
                acks.answered.len(),
                acks.issued.len(),
                acks.accepted.values().copied().collect(),
            )
        };
        let delivered: HashSet<u64> = record.lock().unwrap().delivered.keys().copied().collect();
        if answered == issued && expected.is_subset(&delivered) {
            break;
        }
        if Instant::now() >= deadline {
            let errors = acks.lock().unwrap().errors.clone();
            let missing: Vec<u64> = expected.difference(&delivered).take(5).copied().collect();
            let mut states = Vec::new();
            {
                let mut reader = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
                let mut writer = reader.get_ref().try_clone().unwrap();
                for id in &missing {
                    writer
                        .write_all(format!("MESSAGE {id}\n").as_bytes())
                        .unwrap();
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let upstream = {
                        let record = record.lock().unwrap();
                        format!("denied up to {:?}", record.denied.get(id))
                    };
                    states.push(format!("{} ({upstream})", line.trim()));
                }
            }
            let log = std::fs::read_to_string(format!("{data_dir}.stderr")).unwrap_or_default();
            panic!(
                "{answered}/{issued} answered, {} of {} delivered; undelivered: {states:?}; errors {:?}; engine said: {}",
                delivered.len(),
                expected.len(),
                &errors[errors.len().saturating_sub(5)..],
                &log[log.len().saturating_sub(2_000)..]
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut usage_stream = stream.try_clone().unwrap();
    let mut used = Vec::new();
    {
        let mut usage_reader = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
        let mut writer = usage_reader.get_ref().try_clone().unwrap();
        for n in 0..NUMBERS {
            writer.write_all(format!("USAGE {n}\n").as_bytes()).unwrap();
            let mut line = String::new();
            usage_reader.read_line(&mut line).unwrap();
            used.push(
                line.trim()
                    .strip_prefix("USAGE ")
                    .unwrap()
                    .parse::<usize>()
                    .unwrap(),
            );
        }
    }
    let _ = usage_stream.flush();
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();

    let acks = acks.lock().unwrap();
    let record = record.lock().unwrap();
    assert!(
        acks.violations.is_empty(),
        "{:?}",
        &acks.violations[..acks.violations.len().min(5)]
    );
    let duplicates: Vec<_> = record.delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "dispatched twice: {duplicates:?}");
    let acknowledged: HashSet<u64> = acks.accepted.values().copied().collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !record.delivered.contains_key(id))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but never dispatched: {lost:?}"
    );
    let unknown: Vec<_> = record
        .delivered
        .keys()
        .filter(|id| !acknowledged.contains(id))
        .collect();
    assert!(
        unknown.is_empty(),
        "dispatched but never acknowledged: {unknown:?}"
    );
    for n in 0..NUMBERS {
        let distinct: HashSet<u64> = acks
            .accepted
            .keys()
            .map(|key| acks.issued[key])
            .filter(|who| who % NUMBERS == n)
            .collect();
        assert_eq!(
            used[n as usize],
            distinct.len(),
            "24 h unique count of number {n}"
        );
        assert!(distinct.len() <= 1_000, "the tier limit held");
    }
    assert!(
        acknowledged.len() > 1_000,
        "the load was real: {} acknowledged",
        acknowledged.len()
    );
    let mut sorted = left_in_flight.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    eprintln!(
        "{KILLS} kills, {} acknowledged, 0 lost, 0 duplicated; left in flight per kill: median {median}, max {}, total {}; each: {left_in_flight:?}",
        acknowledged.len(),
        sorted[sorted.len() - 1],
        sorted.iter().sum::<usize>(),
    );
    assert!(
        median <= IN_FLIGHT_BOUND,
        "a kill left {median} messages in flight (median), more than were under way"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
