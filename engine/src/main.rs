//! The `wagate` command.
//! - `wagate serve [--config FILE] [--KEY VALUE]...`: the HTTP service (see the README).
//! - `wagate simulate [--profile NAME] [--recipients N]`: the embedded engine through a
//!   scripted day and a half of traffic on a manual clock, printing what each rule decided.
//! - `wagate recover --data-dir DIR`: opens a data directory whose write-ahead log is damaged,
//!   keeps every record that can be read, and reports what RocksDB dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wagate::{
    AccountId, Category, ConsentChange, ConsentSource, Decision, Engine, EngineConfig,
    InboundContent, InboundMessage, ManualClock, Message, Msisdn, NumberRegistration,
    PhoneNumberId, PortfolioId, Profile, SendRequest, TemplateDefinition, TemplateSend,
    TemplateStatus, TextParam,
};

/// A send's buffers are made on the async threads and freed on the shard and commit threads;
/// mimalloc frees across threads more cheaply than glibc's allocator (single requests 13 %
/// faster in alternated runs, `docs/benchmarks.md`), for about 270 MiB more resident memory at
/// 10 million contacts. Providers embedding the library choose their own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("recover") => recover(&args[1..]),
        // Which sources this binary was built from (the process tests check it).
        Some("--source-hash") => {
            println!("{}", env!("WAGATE_SOURCE_HASH"));
            Ok(())
        }
        None | Some("simulate") => simulate(&args[args.len().min(1)..]),
        Some("--help") | Some("-h") | Some("help") => {
            println!(
                "usage: wagate serve [--config FILE] [--SECTION.KEY VALUE]...\n       \
                 wagate simulate [--profile whatsapp-2021|whatsapp-2025] [--recipients N]\n       \
                 wagate recover --data-dir DIR   (a damaged write-ahead log: keep what is intact)\n\
                 --log-format json is short for --log.format json.\n\
                 Every config key can also be set as WAGATE__SECTION__KEY in the environment."
            );
            Ok(())
        }
        Some(other) => bail!("unknown command '{other}'; try 'wagate help'"),
    }
}

/// `wagate recover --data-dir DIR`: salvages a store whose write-ahead log is damaged (wagate
/// refuses to start over one) and says what was kept and what RocksDB dropped.
fn recover(args: &[String]) -> Result<()> {
    let dir = match args {
        [flag, dir] if flag == "--data-dir" => std::path::PathBuf::from(dir),
        _ => bail!("usage: wagate recover --data-dir DIR"),
    };
    if !dir.join("CURRENT").exists() {
        bail!(
            "{} holds no wagate data (no RocksDB CURRENT file)",
            dir.display()
        );
    }
    let report = wagate::store::RocksStore::salvage(&dir)
        .with_context(|| format!("salvaging {}", dir.display()))?;
    println!("write-ahead logs found:");
    for (file, bytes) in &report.logs {
        println!("  {file} ({bytes} bytes)");
    }
    if report.dropped.is_empty() {
        println!("RocksDB dropped nothing it could name: every record was readable");
    } else {
        println!(
            "RocksDB dropped what these lines say (the sends, idempotency records and contact \
             changes in them are lost; retries of lost keyed sends will be taken as new):"
        );
        for line in &report.dropped {
            println!("  {line}");
        }
    }
    println!("kept, per family:");
    for (family, records) in &report.kept {
        println!("  {family}: {records}");
    }
    println!("the store is whole again: `wagate serve` opens it");
    Ok(())
}

/// What `wagate serve` was given: a config file, then key-by-key overrides.
struct ServeArgs {
    config: Option<String>,
    overrides: Vec<(String, String)>,
}

/// `--config FILE` and `--section.key value` (or `--section.key=value`) overrides.
fn serve_args(args: &[String]) -> Result<ServeArgs> {
    let mut config = None;
    let mut overrides = Vec::new();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let Some(name) = flag.strip_prefix("--") else {
            bail!("unexpected argument '{flag}'");
        };
        let (key, value) = match name.split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => (
                name.to_string(),
                rest.next()
                    .with_context(|| format!("{flag} needs a value"))?
                    .clone(),
            ),
        };
        if key == "config" {
            config = Some(value);
        } else if key == "log-format" {
            overrides.push(("log.format".into(), value));
        } else {
            overrides.push((key, value));
        }
    }
    Ok(ServeArgs { config, overrides })
}

/// Logs to standard error, as `[log]` says; the level from `RUST_LOG` when it is set.
fn start_logging(log: &wagate_server::config::LogConfig) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => EnvFilter::try_new(&log.level)
            .with_context(|| format!("log.level {:?} is not a level or filter", log.level))?,
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        wagate_server::config::LogFormat::Text => logs.init(),
        wagate_server::config::LogFormat::Json => logs.json().init(),
    }
    Ok(())
}

fn serve(args: &[String]) -> Result<()> {
    use std::io::Write;
    use wagate_server::config::ServerConfig;

    let ServeArgs {
        config: path,
        overrides: cli,
    } = serve_args(args)?;
    let text = match &path {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => String::new(),
    };
    // The environment first, then the command line: the more specific choice wins.
    let mut overrides = ServerConfig::env_overrides(std::env::vars());
    overrides.extend(cli);
    let config = ServerConfig::load(&text, &overrides)?;
    start_logging(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wagate-io")
        .build()
        .context("starting the async runtime")?;
    let stopped = runtime.block_on(async move {
        if let Some(cluster) = config.cluster.clone() {
            // One node of a cluster: its fronts take HTTP and gRPC for every partition.
            return wagate_server::cluster::node::run(
                config,
                |at| {
                    print_listening(at);
                    println!("wagate cluster node {}", cluster.node_id);
                    let _ = std::io::stdout().flush();
                },
                stop_signal()?,
            )
            .await
            .map_err(anyhow::Error::from);
        }
        wagate_server::serve(
            config,
            |at| {
                print_listening(at);
                let _ = std::io::stdout().flush();
            },
            stop_signal()?,
        )
        .await
        .map_err(anyhow::Error::from)
    });
    // Dropping a runtime waits for its blocking tasks (an engine shutdown past the grace among
    // them): the stop has had its time, so nothing is waited for now.
    runtime.shutdown_background();
    let stopped = stopped?;
    // Said as it went: a supervisor reads the exit code, an operator this line.
    match stopped {
        wagate_server::Stopped::Cleanly => {
            tracing::info!("wagate stopped cleanly");
            Ok(())
        }
        wagate_server::Stopped::GraceRanOut => bail!(
            "wagate stopped when http.shutdown_grace_secs ran out, before its engine shut down: \
             accepted work is on disk; messages being sent stay in flight (see \
             /wagate/admin/messages/in_flight after the restart), later ones stay pending"
        ),
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled, so a signal right after start-up is never the default kill.
/// The lines a supervisor or a test reads to find the ports.
fn print_listening(at: wagate_server::Listening) {
    println!("wagate listening on http://{}", at.http);
    println!("wagate grpc listening on http://{}", at.grpc);
}

fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

fn simulate(args: &[String]) -> Result<()> {
    let mut profile_name = "whatsapp-2021".to_string();
    let mut recipients: u64 = 1_500;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--profile" => profile_name = value.clone(),
            "--recipients" => recipients = value.parse().context("--recipients takes a number")?,
            other => bail!("unknown option '{other}'"),
        }
    }
    let profile = Profile::embedded(&profile_name)?;
    let clock = ManualClock::at_2026();
    let mut engine = Engine::new(EngineConfig::new(profile), Arc::new(clock.clone()))?;
    let number = PhoneNumberId(106_540_352_242_922);
    let account = AccountId(1);
    let registry = engine.registry();
    registry.register_number(NumberRegistration {
        id: number,
        account,
        portfolio: PortfolioId(1),
        tier: None,
        throughput_mps: Some(1_000),
        display_phone_number: None,
    })?;
    let (_, findings) = registry.submit_template(
        TemplateDefinition::new(
            account,
            "order_update",
            "en_US",
            Category::Utility,
            "Hello {{1}}, your order has shipped.",
        ),
        engine.now().secs(),
    )?;
    println!(
        "profile {profile_name}: template submitted, lint findings: {}",
        findings.len()
    );
    for status in [TemplateStatus::InReview, TemplateStatus::Approved] {
        // whatsapp-2025 reviews straight from submitted; skip steps its profile does not have.
        let _ = engine.registry().set_template_status(
            account,
            "order_update",
            "en_US",
            status,
            engine.now().secs(),
        );
    }

    let person = |i: u64| Msisdn::from_digits(4_915_100_000_000 + i).expect("valid E.164");
    for i in 0..recipients {
        engine.consent(number, person(i), ConsentChange::OptIn, ConsentSource::Api)?;
    }
    let template = |name: &str| SendRequest {
        number,
        to: person(0),
        message: Message::Template(TemplateSend::new(
            name,
            "en_US",
            vec![TextParam::positional(name)],
        )),
        options: Default::default(),
    };
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let mut deferred = Vec::new();
    for i in 0..recipients {
        let mut request = template("order_update");
        request.to = person(i);
        let decision = engine.decide(&request);
        if matches!(decision, Decision::Deferred { .. }) {
            deferred.push(request);
        }
        *tally.entry(label(&decision)).or_default() += 1;
        clock.advance_micros(10_000);
    }
    report("day 1: one template to each opted-in recipient", &tally);

    let reply = engine.inbound(&InboundMessage {
        number,
        from: person(0),
        content: InboundContent::Text("where is my order?".into()),
        referral: false,
    })?;
    let answer = engine.decide(&SendRequest {
        number,
        to: person(0),
        message: Message::text("It arrives tomorrow."),
        options: Default::default(),
    });
    println!(
        "inbound opens the window until {}; free-form reply: {}",
        reply.window_until,
        label(&answer)
    );
    engine.inbound(&InboundMessage {
        number,
        from: person(1),
        content: InboundContent::Text("STOP".into()),
        referral: false,
    })?;
    clock.advance_secs(25 * 3_600);
    let mut stopped = template("order_update");
    stopped.to = person(1);
    println!(
        "after STOP, a template outside the window: {}",
        label(&engine.decide(&stopped))
    );

    let mut tally = BTreeMap::new();
    for request in &deferred {
        *tally.entry(label(&engine.decide(request))).or_default() += 1;
    }
    report("day 2: the deferred recipients again", &tally);
    let usage = engine.usage(number)?;
    println!(
        "usage: tier {} limit {:?}, used {} (24 h), ~{} unique in 7 days, next tier {:?} at {:?}",
        usage.tier,
        usage.limit,
        usage.used_24h,
        usage.unique_7d_estimate,
        usage.next_tier,
        usage.upgrade_threshold
    );
    let spent = engine.ledger().sum(Some(number), None, None);
    println!(
        "ledger: {} messages, ${:.2}",
        spent.messages,
        spent.micros as f64 / 1e6
    );
    Ok(())
}

fn label(decision: &Decision) -> String {
    match decision {
        Decision::Accepted(accepted) if accepted.business_initiated => {
            "accepted (business-initiated)".into()
        }
        Decision::Accepted(_) => "accepted (in window)".into(),
        Decision::Deferred { reason, .. } => format!("deferred: {}", reason.name()),
        Decision::Refused(refusal) => format!(
            "refused: {} ({})",
            refusal.name(),
            refusal
                .meta_code()
                .map_or("no Meta code".into(), |c| c.to_string())
        ),
    }
}

fn report(title: &str, tally: &BTreeMap<String, u64>) {
    println!("{title}:");
    for (outcome, count) in tally {
        println!("  {count:>7}  {outcome}");
    }
}
