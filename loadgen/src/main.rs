//! `loadgen`: drives wagate, or stands in for Meta.
//! - `loadgen http --target URL --token T --number N [--numbers K] [--template NAME]
//!   [--recipients R] [--concurrency C] [--messages M] [--max-secs S] [--batch B] [--rate R]
//!   [--burst-every S --burst-secs B --burst-factor X] [--transport http|http2|grpc|grpc-stream|redis]
//!   [--connections K] [--mps N --tier-limit N] [--zipf S] [--repliers N --reply-share F --mock URL]
//!   [--cold-share F] [--retry-share F] [--seed N]`: closed loop with C requests in flight, or
//!   open loop at R requests/s (at most C in flight; the first B seconds of every S at X times
//!   the rate when bursting). B messages per request (HTTP: 1 is the single endpoint, more the
//!   bulk one; gRPC stream and Redis: B per exchange on each of C connections; `http2`: the C
//!   workers share K HTTP/2 connections, a stream per request). The traffic
//!   model (`traffic.rs`): Zipf popularity, replies to people who wrote through mock-meta first,
//!   free-form sends to people who did not, idempotent retries. `redis` drives the peer
//!   baseline (one Lua check per message, against the number's --mps and --tier-limit) instead
//!   of wagate. Prints a summary line, a table (latency percentiles, each second's throughput
//!   and p99) and a JSON summary; `--plot FILE.svg` also draws the seconds.
//! - `loadgen mock-meta [--listen ADDR] [--webhook-url URL] [--app-secret S]
//!   [--template NAME:LANG]... [--mps N] [--tier-limit N] [--number ID:MPS:TIER]...
//!   [--error-share F] [--drop-share F] [--slow-share F --slow-ms MS] [--failed-share F]
//!   [--read-share F] [--max-secs S]`: the Cloud API stand-in, until the time is up.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wagate_loadgen::driver::{run, Burst, DriverConfig, Transport};
use wagate_loadgen::mock_meta::{start, Faults, MockMetaConfig};
use wagate_loadgen::oracle::{NumberLimits, OracleConfig};
use wagate_loadgen::report;
use wagate_loadgen::traffic::TrafficModel;

const USAGE: &str = "usage:
  loadgen http --target URL --token T --number N [--numbers K] [--template NAME]
      [--recipients R] [--concurrency C] [--messages M] [--max-secs S] [--batch B] [--rate R]
      [--burst-every S --burst-secs B --burst-factor X]
      [--transport http|http2|grpc|grpc-stream|redis] [--connections K] [--mps N --tier-limit N]
      [--zipf S] [--repliers N --reply-share F --mock URL] [--cold-share F] [--retry-share F]
      [--seed N] [--plot FILE.svg]
  loadgen mock-meta [--listen ADDR] [--webhook-url URL] [--app-secret S]
      [--template NAME:LANG]... [--mps N] [--tier-limit N] [--number ID:MPS:TIER]...
      [--error-share F] [--drop-share F] [--slow-share F --slow-ms MS] [--failed-share F]
      [--read-share F] [--max-secs S]";

const HTTP_OPTIONS: &[&str] = &[
    "target",
    "token",
    "number",
    "numbers",
    "template",
    "recipients",
    "concurrency",
    "messages",
    "max-secs",
    "batch",
    "rate",
    "burst-every",
    "burst-secs",
    "burst-factor",
    "transport",
    "connections",
    "mps",
    "tier-limit",
    "zipf",
    "repliers",
    "reply-share",
    "mock",
    "cold-share",
    "retry-share",
    "seed",
    "plot",
];

const MOCK_META_OPTIONS: &[&str] = &[
    "listen",
    "webhook-url",
    "app-secret",
    "template",
    "mps",
    "tier-limit",
    "number",
    "error-share",
    "drop-share",
    "slow-share",
    "slow-ms",
    "failed-share",
    "read-share",
    "max-secs",
];

/// `--key value` pairs, each key one of `known`; repeated keys keep every value.
fn options(args: &[String], known: &[&str]) -> Result<HashMap<String, Vec<String>>> {
    let mut options: HashMap<String, Vec<String>> = HashMap::new();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let key = flag
            .strip_prefix("--")
            .with_context(|| format!("unexpected argument {flag}\n{USAGE}"))?;
        if !known.contains(&key) {
            bail!("unknown option {flag}\n{USAGE}");
        }
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        options
            .entry(key.to_string())
            .or_default()
            .push(value.clone());
    }
    Ok(options)
}

/// The last value given for `--key`, parsed, if any was given.
fn maybe<T: std::str::FromStr>(
    options: &HashMap<String, Vec<String>>,
    key: &str,
) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    options
        .get(key)
        .and_then(|v| v.last())
        .map(|text| {
            text.parse()
                .map_err(|e| anyhow::anyhow!("--{key} {text}: {e}"))
        })
        .transpose()
}

/// The value of `--key`, or `default`; required when there is no default.
fn one<T: std::str::FromStr>(
    options: &HashMap<String, Vec<String>>,
    key: &str,
    default: Option<T>,
) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match maybe(options, key)? {
        Some(value) => Ok(value),
        None => default.with_context(|| format!("--{key} is required")),
    }
}

/// Meta's limits for mock-meta: `--mps N` and `--tier-limit N` for every number, and
/// `--number ID:MPS:TIER` for upgraded ones.
fn rules(options: &HashMap<String, Vec<String>>) -> Result<OracleConfig> {
    let defaults = OracleConfig::default();
    let mut rules = OracleConfig {
        messages_per_second: one(options, "mps", Some(defaults.messages_per_second))?,
        tier_limit: one(options, "tier-limit", Some(defaults.tier_limit))?,
        ..defaults
    };
    for number in options.get("number").into_iter().flatten() {
        let parts: Vec<&str> = number.split(':').collect();
        let [id, mps, tier] = parts[..] else {
            bail!("--number {number}: expected ID:MPS:TIER");
        };
        let limits = NumberLimits {
            messages_per_second: mps.parse().with_context(|| format!("--number {number}"))?,
            tier_limit: tier.parse().with_context(|| format!("--number {number}"))?,
        };
        rules.numbers.insert(id.to_string(), limits);
    }
    Ok(rules)
}

/// mock-meta and the drivers allocate per request on several threads, like the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "--help" | "-h" | "help"))
    {
        println!("{USAGE}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("http") => {
            let o = options(&args[1..], HTTP_OPTIONS)?;
            let config = DriverConfig {
                target: one(&o, "target", None)?,
                token: one(&o, "token", None)?,
                model: TrafficModel {
                    zipf: one(&o, "zipf", Some(0.0))?,
                    repliers: one(&o, "repliers", Some(0))?,
                    reply_share: one(&o, "reply-share", Some(0.0))?,
                    cold_share: one(&o, "cold-share", Some(0.0))?,
                    retry_share: one(&o, "retry-share", Some(0.0))?,
                    seed: one(&o, "seed", Some(1))?,
                    ..TrafficModel::plain(
                        one(&o, "number", None)?,
                        one(&o, "numbers", Some(1))?,
                        one(&o, "recipients", Some(50_000))?,
                        &one(&o, "template", Some("order_update".to_string()))?,
                    )
                },
                mock: maybe(&o, "mock")?,
                concurrency: one(&o, "concurrency", Some(64))?,
                messages: one(&o, "messages", Some(100_000))?,
                max_duration: Duration::from_secs(one(&o, "max-secs", Some(30))?),
                batch: one(&o, "batch", Some(1))?,
                rate: maybe::<f64>(&o, "rate")?.filter(|r| *r > 0.0),
                burst: match maybe(&o, "burst-every")? {
                    None => None,
                    Some(every_secs) => Some(Burst {
                        every_secs,
                        secs: one(&o, "burst-secs", Some(1.0))?,
                        factor: one(&o, "burst-factor", Some(2.0))?,
                    }),
                },
                transport: one(&o, "transport", Some(Transport::Http))?,
                connections: one(&o, "connections", Some(4))?,
                mps: one(&o, "mps", Some(1_000))?,
                tier_limit: one(&o, "tier-limit", Some(100_000))?,
            };
            let plot: Option<String> = maybe(&o, "plot")?;
            let summary = runtime.block_on(run(config))?;
            let json = summary.to_json();
            println!(
                "messages {}  accepted {}  other {}  {:.0} msg/s  latency p50 {} us  p99 {} us  max {} us",
                summary.messages,
                summary.accepted,
                summary.other,
                summary.messages_per_second(),
                json["latency_us"]["p50"],
                json["latency_us"]["p99"],
                json["latency_us"]["max"],
            );
            print!("{}", report::table(&summary));
            println!("{json}");
            if let Some(path) = plot {
                let title = format!(
                    "{} messages, {:.0} msg/s",
                    summary.messages,
                    summary.messages_per_second()
                );
                std::fs::write(&path, report::plot_svg(&summary, &title))
                    .with_context(|| format!("--plot {path}"))?;
            }
            Ok(())
        }
        Some("mock-meta") => {
            let o = options(&args[1..], MOCK_META_OPTIONS)?;
            let templates = o
                .get("template")
                .into_iter()
                .flatten()
                .map(|t| {
                    let (name, language) = t.split_once(':').unwrap_or((t.as_str(), "en_US"));
                    (name.to_string(), language.to_string())
                })
                .collect();
            let config = MockMetaConfig {
                listen: one(&o, "listen", Some("127.0.0.1:9090".parse()?))?,
                webhook_url: maybe(&o, "webhook-url")?,
                app_secret: one(&o, "app-secret", Some(String::new()))?,
                templates,
                rules: rules(&o)?,
                faults: Faults {
                    error_share: one(&o, "error-share", Some(0.0))?,
                    drop_share: one(&o, "drop-share", Some(0.0))?,
                    slow_share: one(&o, "slow-share", Some(0.0))?,
                    slow_ms: one(&o, "slow-ms", Some(0))?,
                    failed_share: one(&o, "failed-share", Some(0.0))?,
                    read_share: one(&o, "read-share", Some(0.0))?,
                },
                displays: Vec::new(),
                accounts: Vec::new(),
                group_limits: Default::default(),
            };
            let max = Duration::from_secs(one(&o, "max-secs", Some(3_600))?);
            runtime.block_on(async move {
                let mock = start(config).await?;
                println!("mock-meta listening on http://{}", mock.addr);
                tokio::time::sleep(max).await;
                Ok(())
            })
        }
        Some(other) => bail!("unknown command {other}\n{USAGE}"),
        None => bail!("{USAGE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn options_take_known_keys_and_refuse_the_rest() {
        let o = options(&args(&["--rate", "100", "--rate", "200"]), HTTP_OPTIONS).expect("known");
        assert_eq!(o["rate"], ["100", "200"], "repeated keys keep every value");
        let typo = options(&args(&["--concurency", "64"]), HTTP_OPTIONS).unwrap_err();
        assert!(
            typo.to_string().contains("unknown option --concurency"),
            "{typo}"
        );
        let missing = options(&args(&["--rate"]), HTTP_OPTIONS).unwrap_err();
        assert!(
            missing.to_string().contains("--rate needs a value"),
            "{missing}"
        );
        assert!(
            options(&args(&["--listen", "127.0.0.1:1"]), HTTP_OPTIONS).is_err(),
            "mock-meta's options are not the driver's"
        );
    }

    #[test]
    fn every_option_the_usage_shows_is_accepted() {
        let (driver, mock) = USAGE.split_once("loadgen mock-meta").expect("two commands");
        for (text, known) in [(driver, HTTP_OPTIONS), (mock, MOCK_META_OPTIONS)] {
            let shown: Vec<&str> = text
                .split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == '|')
                .filter_map(|word| word.strip_prefix("--"))
                .collect();
            assert!(shown.len() > 10, "{shown:?}");
            for option in shown {
                assert!(known.contains(&option), "--{option} is shown but refused");
            }
        }
    }
}
