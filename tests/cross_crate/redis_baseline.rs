//! The peer baseline checks what it claims to, against a real Redis 7 (from Debian's
//! packages, started here on a free port): idempotency, opt-outs, the pair rate with its
//! burst, the per-second throughput and exact unique recipients per number; and the load
//! generator drives it like it drives wagate.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use wagate_loadgen::driver::{run, DriverConfig, Transport};
use wagate_loadgen::redis_baseline::{load_script, queue_check, Check, Reply, Resp};
use wagate_loadgen::traffic::TrafficModel;

struct Redis {
    child: Child,
    address: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts redis-server on a free port. The port is found by binding and releasing it, so
/// another process may take it first: a server that exits is started again on a new port, and
/// a connection that fails (refused, or reset while Redis starts) is tried again.
async fn start_redis() -> Result<Redis> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    'start: loop {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .context("redis-server (tests/ensure-deps.sh installs it)")?;
        let mut redis = Redis {
            child,
            address: format!("127.0.0.1:{port}"),
        };
        loop {
            if let Ok(mut resp) = Resp::connect(&redis.address).await {
                if let Ok(Reply::Text(pong)) = resp.command(&[b"PING"]).await {
                    anyhow::ensure!(pong == "PONG", "PING answered {pong}");
                    return Ok(redis);
                }
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "Redis did not start"
            );
            if redis.child.try_wait()?.is_some() {
                continue 'start;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn check(resp: &mut Resp, script: &str, check: Check<'_>) -> Result<String> {
    queue_check(resp, script, &check);
    resp.flush().await?;
    match resp.read().await? {
        Reply::Text(answer) => Ok(answer),
        other => anyhow::bail!("the script answered {other:?}"),
    }
}

#[tokio::test]
async fn the_baseline_script_enforces_each_rule() -> Result<()> {
    let redis = start_redis().await?;
    let mut resp = Resp::connect(&redis.address).await?;
    let script = load_script(&mut resp).await?;
    let now_ms = 1_767_225_600_000;
    let at = |number, person, key, mps, tier_limit| Check {
        number,
        person,
        key,
        now_ms,
        mps,
        tier_limit,
    };
    assert_eq!(
        check(&mut resp, &script, at(1, "100", 1, 100, 100)).await?,
        "accepted"
    );
    assert_eq!(
        check(&mut resp, &script, at(1, "100", 1, 100, 100)).await?,
        "duplicate"
    );
    resp.command(&[b"SADD", b"optout:1", b"200"]).await?;
    assert_eq!(
        check(&mut resp, &script, at(1, "200", 2, 100, 100)).await?,
        "opted_out"
    );
    // The pair rate: a burst of 45 to one person, then it waits.
    for key in 3..47 {
        assert_eq!(
            check(&mut resp, &script, at(1, "100", key, 100, 100)).await?,
            "accepted"
        );
    }
    assert_eq!(
        check(&mut resp, &script, at(1, "100", 47, 100, 100)).await?,
        "pair_rate"
    );
    // Throughput: number 2 may send two a second. Unique recipients: number 3 may reach two
    // people; the third is refused, the first again costs nothing.
    for (number, person, key, mps, tier_limit, expected) in [
        (2, "1", 1, 2, 100, "accepted"),
        (2, "2", 2, 2, 100, "accepted"),
        (2, "3", 3, 2, 100, "throughput"),
        (3, "1", 1, 100, 2, "accepted"),
        (3, "2", 2, 100, 2, "accepted"),
        (3, "3", 3, 100, 2, "tier_limit"),
        (3, "1", 4, 100, 2, "accepted"),
    ] {
        let answer = check(&mut resp, &script, at(number, person, key, mps, tier_limit)).await?;
        assert_eq!(
            answer, expected,
            "number {number}, person {person}, key {key}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_drives_the_baseline_like_wagate() -> Result<()> {
    let redis = start_redis().await?;
    let summary = run(DriverConfig {
        target: format!("redis://{}", redis.address),
        token: String::new(),
        model: TrafficModel::plain(7, 1, 500, "order_update"),
        mock: None,
        concurrency: 4,
        messages: 1_000,
        max_duration: Duration::from_secs(20),
        batch: 50,
        rate: None,
        burst: None,
        transport: Transport::Redis,
        connections: 1,
        mps: 100_000,
        tier_limit: 400,
    })
    .await?;
    // 500 people, at most 400 of them reachable: 800 sends accepted, the rest over the tier.
    assert_eq!(
        (summary.accepted, summary.other),
        (800, 200),
        "{}",
        summary.to_json()
    );
    assert!(summary.first_not_accepted.unwrap().contains("tier_limit"));
    Ok(())
}
