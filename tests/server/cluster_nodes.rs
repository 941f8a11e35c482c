//! Cluster mode end to end: three `nats-server` processes (JetStream, replication 3), three
//! wagate nodes on loopback ports over them, mock-meta as Meta. Load goes through every node
//! with idempotency keys while nodes are killed with SIGKILL and restarted ten times, an owner
//! is paused past its lease and resumed, and one NATS server is killed; then every
//! acknowledged message reached mock-meta exactly once (or is listed in flight for the
//! operator), mock-meta saw no tier or throughput violation, and the tier limit admitted
//! exactly its number of people, across all nodes; restores started from snapshots.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::fixture::*;
use crate::support::nats::NatsCluster;
use crate::support::process::WagateProcess;
use crate::support::web::{Answer, Web};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use wagate_loadgen::oracle::NumberLimits;
use wagate_server::cluster_config::ClusterConfig;

const PARTITIONS: u32 = 4;
const LEASE_SECS: u64 = 4;
/// The tier both numbers are on, at wagate and at mock-meta.
const TIER: u32 = 250;
/// People sent to from `NUMBER_A`: more than its tier admits.
const PEOPLE_A: u64 = 400;
/// People sent to from `NUMBER_B`: fewer.
const PEOPLE_B: u64 = 150;
/// Scheduled sends from `NUMBER_B` pending on its owner when it is paused.
const SCHEDULED: u64 = 20;
/// People `NUMBER_B` may send to while its partition is handed over.
const HANDOFF: u64 = 75;

struct Cluster {
    dir: PathBuf,
    config: PathBuf,
    nodes: Vec<Option<WagateProcess>>,
    urls: Arc<Mutex<Vec<String>>>,
    /// Each node's gRPC port.
    grpc: Vec<String>,
}

const NODE_IDS: [&str; 3] = ["a", "b", "c"];
/// A number of tenant alpha that is in no node's `[[numbers]]`: registered at run time.
const NUMBER_REGISTERED: u64 = 1003;

impl Cluster {
    fn start_node(&mut self, i: usize) -> Result<()> {
        let args = vec![
            "--cluster.node_id".to_string(),
            NODE_IDS[i].to_string(),
            "--storage.data_dir".to_string(),
            self.dir
                .join(format!("node-{}", NODE_IDS[i]))
                .display()
                .to_string(),
        ];
        let log = self.log_of(i);
        let node = WagateProcess::start_node(&self.config, &args, &log)?;
        self.urls.lock().unwrap()[i] = node.base.clone();
        self.grpc[i] = node.grpc.clone();
        self.nodes[i] = Some(node);
        Ok(())
    }

    fn log_of(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{}.log", NODE_IDS[i]))
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.urls.lock().unwrap()[i])
    }

    fn kill(&mut self, i: usize) -> Result<()> {
        if let Some(node) = self.nodes[i].take() {
            node.kill()?;
        }
        Ok(())
    }
}

fn config_text(dir: &Path, mock: &str, nats: &str) -> String {
    format!(
        r#"
[clock]
mode = "system"

[engine]
profile = "whatsapp-2025"

[http]
shutdown_grace_secs = 5
# Small, so the test sends a body past it to a node's front.
max_bulk_bytes = 1048576

[meta]
base_url = "{mock}"
api_version = "v23.0"
access_token = "{META_TOKEN}"
app_secret = "{APP_SECRET}"
verify_token = "verify-me"
request_timeout_ms = 5000

[admin]
token = "{ADMIN}"

[[tenants]]
name = "alpha"
token = "{ALPHA}"
numbers = [{NUMBER_A}, {NUMBER_A2}, {NUMBER_REGISTERED}]
# Past the tier, refused at once (not queued for tomorrow): the acknowledged count is the
# number of people the limit admitted.
on_limit = "refuse"

[[tenants]]
name = "beta"
token = "{BETA}"
numbers = [{NUMBER_B}]

[[numbers]]
id = {NUMBER_A}
account = 1
portfolio = 1
tier = "TIER_250"
throughput_mps = 80

# Another business of the tenant, in a third portfolio: a bulk body spans two partitions.
[[numbers]]
id = {NUMBER_A2}
account = 3
portfolio = 3
tier = "TIER_250"
throughput_mps = 80

[[numbers]]
id = {NUMBER_B}
account = 2
portfolio = 2
tier = "TIER_250"
throughput_mps = 80

[cluster]
nats_url = "{nats}"
partitions = {PARTITIONS}
lease_secs = {LEASE_SECS}
replicas = 3
# Often, so that the restores after the crashes start from snapshots.
snapshot_secs = 2

[storage]
data_dir = "{data}"
"#,
        data = dir.join("unused").display(),
    )
}

/// Any node of the cluster, for a sender.
#[derive(Clone)]
struct AnyNode {
    web: Web,
    urls: Arc<Mutex<Vec<String>>>,
}

impl AnyNode {
    /// Sends `body` as `token` to `path` through the nodes in turn from `start`, again with the
    /// same idempotency key until an answer that is not "try again" comes: the answer.
    async fn send(
        &self,
        start: usize,
        path: &str,
        token: &str,
        body: &Value,
        key: &str,
        extra: &[(&str, &str)],
    ) -> Result<Value> {
        let (web, urls) = (&self.web, &self.urls);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let mut attempt = start;
        loop {
            let url = {
                let urls = urls.lock().unwrap();
                format!("{}{path}", urls[attempt % urls.len()])
            };
            attempt += 1;
            if let Ok(answer) = web
                .post(
                    &url,
                    token,
                    body,
                    &[&[("idempotency-key", key)], extra].concat(),
                )
                .await
            {
                if answer.status != 503 {
                    let mut value = answer.json();
                    value["status"] = json!(answer.status);
                    return Ok(value);
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no node took {key} within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until both numbers' partitions answer through node `via`; how long it took.
async fn served_again(web: &Web, cluster: &Cluster, via: usize) -> Result<Duration> {
    let began = tokio::time::Instant::now();
    for (number, token) in [(NUMBER_A, ALPHA), (NUMBER_B, BETA)] {
        loop {
            let url = cluster.url(via, &format!("/wagate/v1/groups?phone_number_id={number}"));
            if let Ok(answer) = web.get(&url, token).await {
                if answer.status == 200 {
                    break;
                }
            }
            if began.elapsed() > Duration::from_secs(120) {
                bail!("the partition of {number} was not served again within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(began.elapsed())
}

async fn report(web: &Web, mock: &str) -> Result<Value> {
    Ok(web.get(&format!("{mock}/mock/report"), "").await?.json())
}

fn text_with_id(to: &str, id: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "template", "template": { "name": "order_update",
            "language": { "code": "en_US" },
            "components": [{ "type": "body", "parameters": [{ "type": "text", "text": id }] }] } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_keeps_every_acknowledged_message_once_through_kills_pauses_and_a_lost_nats_server(
) -> Result<()> {
    let dir = fresh_dir("cluster-nodes");
    let mut nats = NatsCluster::start(&dir)?;
    let nats_url = nats
        .client_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let limits = NumberLimits {
        messages_per_second: 80,
        tier_limit: TIER,
    };
    let mut mock_config = mock_meta_config(Default::default(), limits, None)?;
    mock_config
        .accounts
        .push((NUMBER_B.to_string(), "2".to_string()));
    let mock = wagate_loadgen::mock_meta::start(mock_config).await?;
    let mock_url = format!("http://{}", mock.addr);
    let config = dir.join("cluster.toml");
    std::fs::write(&config, config_text(&dir, &mock_url, &nats_url))?;
    let shape = ClusterConfig {
        node_id: "x".into(),
        partitions: PARTITIONS,
        ..Default::default()
    };
    let (partition_a, partition_b) = (shape.partition_of(1), shape.partition_of(2));
    assert_ne!(
        partition_a, partition_b,
        "the two portfolios need two partitions"
    );
    let mut cluster = Cluster {
        dir: dir.clone(),
        config,
        nodes: vec![None, None, None],
        urls: Arc::new(Mutex::new(vec![String::new(); 3])),
        grpc: vec![String::new(); 3],
    };
    for i in 0..3 {
        cluster.start_node(i)?;
    }
    let web = Web::default();
    let any = AnyNode {
        web: web.clone(),
        urls: cluster.urls.clone(),
    };
    served_again(&web, &cluster, 0).await?;
    // What Meta took, for settling what a crash left in flight as an operator would.
    web.post(
        &format!("{mock_url}/mock/record_sends"),
        "",
        &json!({}),
        &[],
    )
    .await?;
    // Each acknowledged message's key (the text it carries), by message id.
    let mut keys_of: std::collections::HashMap<String, String> = Default::default();
    mock.set_webhook_url(&cluster.url(0, "/webhooks/meta"));

    // Consent and templates, through different nodes: each lands on its partition's owner.
    let people_a: Vec<String> = (0..PEOPLE_A).map(person).collect();
    let people_b: Vec<String> = (5_000..5_000 + PEOPLE_B + SCHEDULED + HANDOFF)
        .map(person)
        .collect();
    for (via, number, people) in [(1, NUMBER_A, &people_a), (2, NUMBER_B, &people_b)] {
        let answer = web
            .post(
                &cluster.url(via, "/wagate/admin/contacts/consent"),
                ADMIN,
                &json!({ "phone_number_id": number.to_string(), "to": people, "change": "opt_in" }),
                &[],
            )
            .await?;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    let answer = web
        .post(
            &cluster.url(0, "/wagate/admin/contacts/consent"),
            ADMIN,
            &json!({ "phone_number_id": NUMBER_A2.to_string(), "to": &people_a[..2],
                     "change": "opt_in" }),
            &[],
        )
        .await?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    for (via, account) in [(2, 1), (0, 2), (1, 3)] {
        let created = web
            .post(
                &cluster.url(via, "/wagate/admin/templates"),
                ADMIN,
                &json!({ "account": account, "name": "order_update", "language": "en_US",
                         "category": "utility", "body": ORDER_UPDATE }),
                &[],
            )
            .await?;
        assert_eq!(created.status, 200, "{}", created.text());
        for status in ["in_review", "approved"] {
            let moved = web
                .post(
                    &cluster.url(via, "/wagate/admin/templates/status"),
                    ADMIN,
                    &json!({ "account": account, "name": "order_update", "language": "en_US",
                             "status": status }),
                    &[],
                )
                .await?;
            assert_eq!(moved.status, 200, "{}", moved.text());
        }
    }

    // A bulk body spanning two partitions (NUMBER_A's and NUMBER_A2's portfolios): each part
    // goes to its owner, the results come back in the caller's line order. (Its two people
    // of NUMBER_A get the load's send later too: repeats, within the tier.)
    let bulk_keys: Vec<(u64, String)> =
        [(NUMBER_A, 0), (NUMBER_A2, 0), (NUMBER_A, 1), (NUMBER_A2, 1)]
            .into_iter()
            .map(|(number, i)| (number, format!("bulk-{number}-{i}")))
            .collect();
    let ndjson: Vec<String> = bulk_keys
        .iter()
        .enumerate()
        .map(|(line, (number, key))| {
            json!({ "phone_number_id": number.to_string(), "idempotency_key": key,
                    "request": text_with_id(&people_a[line / 2], key) })
            .to_string()
        })
        .collect();
    let bulk = web
        .request(
            hyper::Method::POST,
            &cluster.url(2, "/wagate/v1/bulk"),
            &[
                ("authorization", &format!("Bearer {ALPHA}")),
                ("content-type", "application/x-ndjson"),
            ],
            ndjson.join("\n"),
        )
        .await?;
    assert_eq!(bulk.status, 200, "{}", bulk.text());
    let results: Vec<Value> = bulk
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a result line"))
        .collect();
    assert_eq!(results.len(), 4, "{}", bulk.text());
    for (line, result) in results.iter().enumerate() {
        assert_eq!(result["line"], line, "{}", bulk.text());
        assert_eq!(result["status"], 200, "{}", bulk.text());
        let id = sent_id(&result["body"]);
        let portfolio = if bulk_keys[line].0 == NUMBER_A { 1 } else { 3 };
        assert_eq!(
            partition_of_id(&id)?,
            shape.partition_of(portfolio),
            "line {line}'s message was taken by its number's partition: {id}"
        );
        keys_of.insert(id, bulk_keys[line].1.clone());
    }

    // gRPC through a node that does not own the partitions asked: a send, the same send again
    // (its idempotency key, on the owner), a stream spanning two partitions answered in the
    // caller's order, a record read, and a stranger refused by the owner's engine.
    let grpc_keys = grpc_through_a_front(&cluster, &nats, &shape, &people_a).await?;
    let grpc_sent = grpc_keys.len() as u64;
    keys_of.extend(grpc_keys);

    // A number registered at run time through one node (portfolio 3, NUMBER_A2's business),
    // a person's consent for it through another: every node routes it (sent from after the
    // crashes, below).
    let registered = web
        .post(
            &cluster.url(0, "/wagate/admin/numbers"),
            ADMIN,
            &json!({ "id": NUMBER_REGISTERED, "account": 3, "portfolio": 3, "tier": "TIER_250" }),
            &[],
        )
        .await?;
    assert_eq!(registered.status, 200, "{}", registered.text());
    let opt_in = json!({ "phone_number_id": NUMBER_REGISTERED.to_string(),
                         "to": [people_a[0].clone()], "change": "opt_in" });
    let consent_url = cluster.url(2, "/wagate/admin/contacts/consent");
    let answer = until_ok(|| web.post(&consent_url, ADMIN, &opt_in, &[])).await?;
    assert_eq!(answer.status, 200, "{}", answer.text());

    // The load: every person once, by four senders through all nodes in turn.
    let mut sends: Vec<(u64, &str, String, String)> = Vec::new();
    for (i, to) in people_a.iter().enumerate() {
        sends.push((NUMBER_A, ALPHA, to.clone(), format!("a-{i}")));
    }
    for (i, to) in people_b.iter().take(PEOPLE_B as usize).enumerate() {
        sends.push((NUMBER_B, BETA, to.clone(), format!("b-{i}")));
    }
    // Interleaved, so both partitions take load all through the kills.
    sends.sort_by_key(|s| {
        s.3.trim_start_matches(['a', 'b', '-'])
            .parse::<u64>()
            .unwrap_or(0)
    });
    let queue = Arc::new(Mutex::new(sends));
    let acked: Arc<Mutex<Vec<(u64, String, String)>>> = Default::default();
    let mut senders = Vec::new();
    for s in 0..4 {
        let (queue, acked, any) = (queue.clone(), acked.clone(), any.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Some((number, token, to, key)) = queue.lock().unwrap().pop() else {
                    return Ok::<_, anyhow::Error>(());
                };
                let path = format!("/v23.0/{number}/messages");
                let answer = any
                    .send(s, &path, token, &text_with_id(&to, &key), &key, &[])
                    .await?;
                if answer["status"] == 200 {
                    let id = answer["messages"][0]["id"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    acked.lock().unwrap().push((number, key, id));
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }));
    }

    // Ten crashes while the load runs: a node killed with SIGKILL, started again at once;
    // both numbers' partitions are served again within 10 s each time.
    let mut failovers = Vec::new();
    for round in 0..10 {
        let victim = round % 3;
        cluster.kill(victim)?;
        cluster.start_node(victim)?;
        let took = served_again(&web, &cluster, (victim + 1) % 3).await?;
        failovers.push(took);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for sender in senders {
        sender.await??;
    }
    eprintln!("failover times: {failovers:?}");
    assert!(
        failovers.iter().all(|t| *t <= Duration::from_secs(10)),
        "a partition waited more than 10 s for a new owner: {failovers:?}"
    );

    // The number registered at run time is routed by every node, restarted or not, to the
    // partition that kept it through the crashes.
    let send_url = cluster.url(1, &format!("/v23.0/{NUMBER_REGISTERED}/messages"));
    let body = text_with_id(&people_a[0], "registered-0");
    let key = [("idempotency-key", "registered-0")];
    let answer = until_ok(|| web.post(&send_url, ALPHA, &body, &key)).await?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let id = answer.message_id();
    assert_eq!(partition_of_id(&id)?, shape.partition_of(3), "{id}");
    keys_of.insert(id, "registered-0".to_string());

    // A graceful hand-off refuses nothing: the owner of NUMBER_B's partition stops (SIGTERM)
    // and hands its partitions over while sends go through another node, each asked once.
    let owner = owner_of(&nats, partition_b).await?;
    let leaving = NODE_IDS
        .iter()
        .position(|n| *n == owner)
        .context("owner is a node")?;
    let via = (leaving + 1) % 3;
    let node = cluster.nodes[leaving].take().context("the owner runs")?;
    let stopping = tokio::task::spawn_blocking(move || node.stop());
    let mut handed_over = 0;
    let mut after_stop = 0;
    while handed_over < HANDOFF && after_stop < 30 {
        let to = &people_b[(PEOPLE_B + SCHEDULED + handed_over) as usize];
        let key = format!("handoff-{handed_over}");
        let answer = web
            .post(
                &cluster.url(via, &format!("/v23.0/{NUMBER_B}/messages")),
                BETA,
                &text_with_id(to, &key),
                &[("idempotency-key", &key)],
            )
            .await?;
        assert_eq!(
            answer.status,
            200,
            "refused during a hand-off: {}",
            answer.text()
        );
        keys_of.insert(answer.message_id(), key);
        handed_over += 1;
        if stopping.is_finished() {
            after_stop += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped = stopping.await??;
    assert!(stopped.success(), "the node left cleanly: {stopped}");
    let log = std::fs::read_to_string(cluster.log_of(leaving))?;
    assert!(
        log.contains("handing a partition over"),
        "the leaving node handed nothing over"
    );
    cluster.start_node(leaving)?;

    // One NATS server dies: the changelog and the leases have two more copies; sends go on.
    nats.kill(2);
    let mut after = Vec::new();
    for i in 0..10u64 {
        let to = people_b[(PEOPLE_B + i) as usize % people_b.len()].clone();
        let key = format!("after-nats-{i}");
        let answer = any
            .send(
                i as usize,
                &format!("/v23.0/{NUMBER_B}/messages"),
                BETA,
                &text_with_id(&to, &key),
                &key,
                &[],
            )
            .await?;
        assert_eq!(answer["status"], 200, "{answer}");
        keys_of.insert(sent_id(&answer), key);
        after.push(answer);
    }

    // Fencing: scheduled sends wait on the owner of NUMBER_B's partition, which is paused
    // past its lease. Another node takes the partition and sends them; the old owner, resumed,
    // finds itself fenced off (by the changelog, or by its lost lease first) and sends nothing.
    let owner = owner_of(&nats, partition_b).await?;
    let owner_index = NODE_IDS
        .iter()
        .position(|n| *n == owner)
        .context("owner is a node")?;
    let via = (owner_index + 1) % 3;
    let due = (std::time::SystemTime::now() + Duration::from_secs(8))
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let due_text = due.to_string();
    for i in 0..SCHEDULED {
        let to = &people_b[(PEOPLE_B + i) as usize];
        let key = format!("scheduled-{i}");
        let answer = any
            .send(
                via,
                &format!("/v23.0/{NUMBER_B}/messages"),
                BETA,
                &text_with_id(to, &key),
                &key,
                &[("x-wagate-send-at", &due_text)],
            )
            .await?;
        assert_eq!(answer["status"], 200, "{answer}");
        keys_of.insert(sent_id(&answer), key);
    }
    let before_pause = report(&web, &mock_url).await?;
    let paused = cluster.nodes[owner_index].as_ref().context("owner runs")?;
    paused.signal("STOP")?;
    let took = served_again(&web, &cluster, via).await?;
    eprintln!("after the pause, served again in {took:?}");
    // The new owner sends the scheduled ones when due.
    // Each scheduled send reaches Meta (mock-meta's record of what it took, by person and
    // text), whoever sends it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut missing = Vec::new();
        for i in 0..SCHEDULED {
            let to = people_b[(PEOPLE_B + i) as usize]
                .trim_start_matches('+')
                .to_string();
            let at_meta = web
                .get(
                    &format!("{mock_url}/mock/sent?number={NUMBER_B}&to={to}"),
                    "",
                )
                .await?
                .json();
            let key = format!("scheduled-{i}");
            let taken = at_meta["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["text"] == key.as_str());
            if !taken {
                missing.push(key);
            }
        }
        if missing.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let queued = web
                .get(
                    &cluster.url(
                        via,
                        &format!("/wagate/v1/scheduled?phone_number_id={NUMBER_B}"),
                    ),
                    BETA,
                )
                .await?;
            let stuck = in_flight(&web, &cluster, via).await?;
            bail!(
                "scheduled sends never went: {missing:?}; queued {}; in flight {stuck:?}; before the pause mock-meta had {before_pause}",
                queued.text()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.nodes[owner_index]
        .as_ref()
        .context("owner runs")?
        .signal("CONT")?;
    let log = cluster.log_of(owner_index);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // Fenced either way: JetStream refused its append (the changelog's expected sequence),
        // or its lease's renewal, run first on resuming, had already found the partition taken
        // and refused the write before it was tried (which one comes first is the scheduler's).
        if text.contains("fenced off") || text.contains("is no longer this node's") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resumed owner was never fenced off: {}",
            text.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Everything acknowledged reached mock-meta once: wait for the dispatch to finish.
    let acked = acked.lock().unwrap().clone();
    let acked_a = acked.iter().filter(|a| a.0 == NUMBER_A).count() as u64;
    let acked_b = acked.iter().filter(|a| a.0 == NUMBER_B).count() as u64;
    assert_eq!(
        acked_a, TIER as u64,
        "the tier admitted exactly its limit of people from NUMBER_A, across the nodes"
    );
    assert_eq!(acked_b, PEOPLE_B, "every send from NUMBER_B was taken");
    for (_, key, id) in &acked {
        keys_of.insert(id.clone(), key.clone());
    }
    // The gRPC sends, and the one from the number registered at run time.
    let total =
        acked_a + acked_b + 10 + SCHEDULED + handed_over + results.len() as u64 + grpc_sent + 1;
    // Everything acknowledged goes to Meta, but what a crash left in flight (marked, then cut
    // off before Meta's answer was recorded): wait until the two together make the whole.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (stuck, accepted) = loop {
        let stuck = in_flight(&web, &cluster, via).await?;
        let accepted = report(&web, &mock_url).await?["accepted"]
            .as_u64()
            .unwrap_or(0);
        if accepted + stuck.len() as u64 >= total {
            break (stuck, accepted);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{accepted} of {total} at mock-meta, {} in flight",
            stuck.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The operator settles each: Meta has it (its wamid, found by the person and the text), or
    // it is sent again.
    let in_flight_count = stuck.len();
    for (id, number, to) in &stuck {
        let key = keys_of
            .get(id)
            .context("an in-flight message the test sent")?;
        let at_meta = web
            .get(
                &format!(
                    "{mock_url}/mock/sent?number={number}&to={}",
                    to.trim_start_matches('+')
                ),
                "",
            )
            .await?
            .json();
        let wamid = at_meta["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["text"] == key.as_str())
            .map(|m| m["id"].as_str().unwrap_or("").to_string());
        let settlement = match wamid {
            Some(wamid) => json!({ "upstream_id": wamid }),
            None => json!({ "resend": true }),
        };
        let url = cluster.url(via, &format!("/wagate/admin/messages/{id}/settle"));
        let settled = as_operator(&web, &url, Some(&settlement)).await?;
        assert_eq!(settled.status, 200, "{}", settled.text());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let seen = report(&web, &mock_url).await?;
        if seen["accepted"].as_u64().unwrap_or(0) >= total
            && in_flight(&web, &cluster, via).await?.is_empty()
        {
            break seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{seen} of {total} after settling"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let in_flight = in_flight_count;
    eprintln!("before settling, mock-meta had {accepted}");
    eprintln!("mock-meta: {seen}; acknowledged {total}; in flight for the operator {in_flight}");
    assert_eq!(seen["duplicates"], 0, "{seen}");
    assert_eq!(seen["violations"], 0, "{seen}");
    assert_eq!(
        seen["accepted"], total,
        "each acknowledged message once: {seen}"
    );
    // A node's front takes the standalone port's limits: a body past `max_bulk_bytes` is
    // refused in Meta's shape, before any partition sees it.
    let too_large = web
        .request(
            hyper::Method::POST,
            &cluster.url(0, "/wagate/v1/bulk"),
            &[
                ("authorization", &format!("Bearer {ALPHA}")),
                ("content-type", "application/x-ndjson"),
            ],
            "x".repeat(3 << 20),
        )
        .await?;
    assert_eq!(too_large.status, 413, "{}", too_large.text());
    assert_eq!(too_large.json()["error"]["wagate_reason"], "body_too_large");

    // A node's /metrics: its own (forwards, changelog appends, restores) and those of the
    // partition engines it serves, each sample labelled with its partition. Asked of the
    // node that sent the scheduled sends (it wrote their in-flight marks).
    let owner = owner_of(&nats, partition_b).await?;
    let owner_index = NODE_IDS
        .iter()
        .position(|n| *n == owner)
        .context("owner is a node")?;
    let metrics = web.get(&cluster.url(owner_index, "/metrics"), "").await?;
    assert_eq!(metrics.status, 200, "{}", metrics.text());
    let text = metrics.text();
    for wanted in [
        "# TYPE wagate_cluster_forwards counter",
        "wagate_cluster_forwards_total{via=",
        "wagate_cluster_changelog_appends_total{outcome=\"stored\"}",
        "wagate_cluster_changelog_append_duration_seconds_bucket",
        "wagate_cluster_restores_total{outcome=\"served\"}",
        "wagate_cluster_partitions_served ",
        "wagate_http_requests_total{partition=\"",
    ] {
        assert!(text.contains(wanted), "/metrics lacks {wanted}: {text}");
    }
    assert_eq!(
        text.matches("# TYPE wagate_http_requests counter").count(),
        1
    );
    assert!(text.ends_with("# EOF\n"));

    // Restores started from snapshots (then the changelog after them), and lost nothing.
    let logs: String = (0..3)
        .map(|i| std::fs::read_to_string(cluster.log_of(i)).unwrap_or_default())
        .collect();
    assert!(
        logs.contains("kept a partition's snapshot"),
        "no snapshot was kept"
    );
    assert!(
        logs.contains("from_snapshot=true"),
        "no restore started from a snapshot"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The messages in flight for every number, as (id, number, to), through node `via`.
async fn in_flight(web: &Web, cluster: &Cluster, via: usize) -> Result<Vec<(String, u64, String)>> {
    let mut all = Vec::new();
    for number in [NUMBER_A, NUMBER_A2, NUMBER_B] {
        let url = cluster.url(
            via,
            &format!("/wagate/admin/messages/in_flight?phone_number_id={number}"),
        );
        let listed = as_operator(web, &url, None).await?;
        assert_eq!(listed.status, 200, "{}", listed.text());
        for message in listed.json()["messages"].as_array().into_iter().flatten() {
            let id = message["id"].as_str().unwrap_or("").to_string();
            let to = message["to"].as_str().unwrap_or("").to_string();
            all.push((id, number, to));
        }
    }
    Ok(all)
}

/// An admin request (a GET, or a POST of `body`) as an operator makes it: a partition whose
/// owner was just paused or fenced off has none for a moment, the node answers 503 "try again
/// shortly", and the operator tries again (for at most 60 s), as a sender does.
async fn as_operator(web: &Web, url: &str, body: Option<&Value>) -> Result<Answer> {
    asked_until(
        Duration::from_secs(60),
        |status| status != 503,
        || async {
            match body {
                Some(body) => web.post(url, ADMIN, body, &[]).await,
                None => web.get(url, ADMIN).await,
            }
        },
    )
    .await
}

/// The message id in a send's answer.
fn sent_id(answer: &Value) -> String {
    answer["messages"][0]["id"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Which node holds `partition`'s lease now.
/// (Asked again while JetStream elects new leaders after a server died.)
async fn owner_of(nats: &NatsCluster, partition: u32) -> Result<String> {
    let client = nats.client(0).await?;
    let jetstream = async_nats::jetstream::new(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let asked = async {
            let kv = jetstream.get_key_value("wagate_leases").await?;
            let entry = kv.get(format!("p.{partition}")).await?;
            Ok::<_, anyhow::Error>(entry.map(|e| String::from_utf8_lossy(&e).into_owned()))
        };
        match asked.await {
            Ok(Some(owner)) => return Ok(owner),
            Ok(None) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(None) => bail!("partition {partition} has no owner"),
            Err(error) => return Err(error),
        }
    }
}

/// gRPC sends and a record read through the node that owns neither `NUMBER_A`'s nor
/// `NUMBER_A2`'s partition (or the one that owns fewest); each accepted send's (message id,
/// key).
async fn grpc_through_a_front(
    cluster: &Cluster,
    nats: &NatsCluster,
    shape: &ClusterConfig,
    people_a: &[String],
) -> Result<Vec<(String, String)>> {
    use wagate::server::grpc::proto::messaging_client::MessagingClient;
    use wagate::server::grpc::proto::records_client::RecordsClient;
    use wagate::server::grpc::proto::{MessageRequest, SendRequest};

    let (partition_a, partition_a2) = (shape.partition_of(1), shape.partition_of(3));
    let owners = [
        owner_of(nats, partition_a).await?,
        owner_of(nats, partition_a2).await?,
    ];
    let via = (0..3)
        .find(|i| !owners.contains(&NODE_IDS[*i].to_string()))
        .unwrap_or_else(|| (0..3).find(|i| owners[1] != NODE_IDS[*i]).unwrap_or(0));
    let channel = tonic::transport::Channel::from_shared(cluster.grpc[via].clone())?
        .connect()
        .await?;
    let mut client = MessagingClient::new(channel.clone());
    let send = |correlation: u64, number: u64, to: &str, key: &str| SendRequest {
        correlation,
        phone_number_id: number.to_string(),
        request_json: text_with_id(to, key).to_string(),
        idempotency_key: key.to_string(),
        ..SendRequest::default()
    };
    let mut sent = Vec::new();

    let first = client
        .send(authorised(
            send(1, NUMBER_A2, &people_a[0], "grpc-0"),
            ALPHA,
        ))
        .await?
        .into_inner();
    assert_eq!(
        (first.correlation, first.http_status),
        (1, 200),
        "{first:?}"
    );
    assert_eq!(
        partition_of_id(&first.message_id)?,
        partition_a2,
        "{first:?}"
    );
    let again = client
        .send(authorised(
            send(2, NUMBER_A2, &people_a[0], "grpc-0"),
            ALPHA,
        ))
        .await?
        .into_inner();
    assert_eq!(
        again.message_id, first.message_id,
        "a retry with the same key gets the first answer, through the front: {again:?}"
    );
    sent.push((first.message_id.clone(), "grpc-0".to_string()));

    let stranger = client
        .send(tonic::Request::new(send(
            3,
            NUMBER_A2,
            &people_a[1],
            "grpc-x",
        )))
        .await
        .expect_err("no token");
    assert_eq!(
        stranger.code(),
        tonic::Code::Unauthenticated,
        "{stranger:?}"
    );

    let streamed = [
        (NUMBER_A, 0, "grpc-s-0"),
        (NUMBER_A2, 1, "grpc-s-1"),
        (NUMBER_A, 1, "grpc-s-2"),
        (NUMBER_A2, 0, "grpc-s-3"),
    ];
    let requests: Vec<SendRequest> = streamed
        .iter()
        .enumerate()
        .map(|(i, (number, person, key))| send(10 + i as u64, *number, &people_a[*person], key))
        .collect();
    let refused = client
        .send_stream(tonic::Request::new(tokio_stream::iter(requests.clone())))
        .await
        .expect_err("a stream without a token is refused as it opens");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let mut results = client
        .send_stream(authorised(tokio_stream::iter(requests), ALPHA))
        .await?
        .into_inner();
    let mut answered = Vec::new();
    while let Some(result) = results.message().await? {
        answered.push(result);
    }
    assert_eq!(answered.len(), streamed.len(), "{answered:?}");
    for (i, (result, (number, _, key))) in answered.iter().zip(streamed).enumerate() {
        assert_eq!(
            result.correlation,
            10 + i as u64,
            "in the caller's order: {answered:?}"
        );
        assert_eq!(result.http_status, 200, "{result:?}");
        let wanted = if number == NUMBER_A {
            partition_a
        } else {
            partition_a2
        };
        assert_eq!(partition_of_id(&result.message_id)?, wanted, "{result:?}");
        sent.push((result.message_id.clone(), key.to_string()));
    }

    let mut records = RecordsClient::new(channel);
    let read = records
        .get_message(authorised(
            MessageRequest {
                message_id: first.message_id.clone(),
            },
            ALPHA,
        ))
        .await?
        .into_inner();
    assert_eq!(read.http_status, 200, "{}", read.body_json);
    assert!(
        read.body_json.contains(&first.message_id),
        "{}",
        read.body_json
    );
    Ok(sent)
}

/// `ask`'s answer once it is 200, asked again (bounded) while a node has yet to learn what
/// another was told (a number registered a moment ago); the last answer otherwise.
async fn until_ok<F, Fut>(ask: F) -> Result<Answer>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Answer>>,
{
    asked_until(Duration::from_secs(10), |status| status == 200, ask).await
}

/// `ask`'s first answer whose status is `final_status`, asked again every 50 ms for at most
/// `within`; the last answer otherwise.
async fn asked_until<F, Fut>(
    within: Duration,
    final_status: impl Fn(u16) -> bool,
    mut ask: F,
) -> Result<Answer>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Answer>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let answer = ask().await?;
        if final_status(answer.status) || tokio::time::Instant::now() > deadline {
            return Ok(answer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The partition whose engine gave message id `id` (`wagate.<hex>`, ids from
/// `(partition + 1) << 40`).
fn partition_of_id(id: &str) -> Result<u32> {
    let raw = u64::from_str_radix(id.trim_start_matches("wagate."), 16)?;
    Ok(u32::try_from((raw >> 40).saturating_sub(1))?)
}
