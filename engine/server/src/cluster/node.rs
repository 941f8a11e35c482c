//! A cluster node: `wagate serve` with a `[cluster]` section. It keeps its share of the
//! partitions' leases (taking free ones up to its share of the live nodes, renewing what it
//! holds, handing over the surplus when a node joins), serves each held partition with its own
//! engine (`partition`), answers forwarded requests for them (`wagate.rq.<n>.<node>`), and
//! runs the fronts: any request, on any node, HTTP or gRPC (`grpc_front`), goes to its
//! partition's owner, here or over NATS request-reply, and its answer comes back as the owner
//! gave it. The HTTP front is bounded as the standalone server's port is: at most
//! `http.max_connections` open, a head within `header_read_timeout_ms` (and a kept-alive
//! connection closed after `idle_timeout_secs` without one), a body within
//! `body_read_timeout_ms` and under `http.max_body_bytes_held` with every other held.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::bulk_split;
use super::changelog::Changelog;
use super::engine_stopped::closed_unanswered;
use super::grpc_front::{self, Partitions, PortBounds};
use super::grpc_wire;
use super::leases::{Lease, Leases};
use super::node_metrics::NodeMetrics;
use super::number_directory::NumberDirectory;
use super::partition::{self, Served};
use super::routing::{PartitionMap, Route};
use super::snapshot::{self, Snapshots};
use super::wire::{Answer, Forwarded};
use super::{bounded, locked, ClusterError};
use crate::accept::{Acceptor, ConnectionCap};
use crate::body_budget::{BodyBudget, Claim};
use crate::cluster_config::ClusterConfig;
use crate::config::ServerConfig;
use crate::{Listening, ServeError, Stopped};

/// How long a forwarded request may take, at the owner, before the front answers 503.
const FORWARD_WAIT: Duration = Duration::from_secs(10);
/// The longest a partition's restore may take before the node gives the partition up.
const RESTORE_LIMIT: Duration = Duration::from_secs(60);
/// Past a body's limit, how much more of it is read (and dropped) before the 413.
const DRAIN_BEYOND_LIMIT: usize = 16 << 20;
/// How soon a request waiting for a partition's new owner looks again.
const MOVING_RETRY: Duration = Duration::from_millis(25);
/// How often the node looks for partitions to take or hand over.
const BALANCE_EVERY: Duration = Duration::from_millis(250);
/// How long a partition's owner, as read from the leases, is believed without reading again.
const OWNER_KEPT: Duration = Duration::from_millis(500);

struct Node {
    config: ServerConfig,
    cluster: ClusterConfig,
    map: PartitionMap,
    client: async_nats::Client,
    leases: Leases,
    changelog: Arc<Changelog>,
    snapshots: Arc<Snapshots>,
    /// Numbers registered at run time, for every node's routing.
    numbers: NumberDirectory,
    /// Partitions served here.
    served: Mutex<BTreeMap<u32, ServedEntry>>,
    /// Who owns each partition, as last read, and when.
    owners: Mutex<HashMap<u32, (Option<String>, Instant)>>,
    /// Partitions lost whose engines are still stopping.
    stopping: Arc<Mutex<std::collections::HashSet<u32>>>,
    http: Client<HttpConnector, Full<Bytes>>,
    cluster_runtime: tokio::runtime::Handle,
    engines: tokio::runtime::Handle,
    metrics: Arc<NodeMetrics>,
    /// The bytes of request bodies the front holds, under `http.max_body_bytes_held`.
    bodies: Arc<BodyBudget>,
}

/// A partition's engine served here.
#[derive(Clone)]
struct EngineAt {
    http: SocketAddr,
    grpc: tonic::transport::Channel,
}

struct ServedEntry {
    served: Served,
    renewed: Instant,
}

/// How a forwarded request ended, for the metrics.
fn outcome_of(answer: &Answer) -> &'static str {
    match answer {
        _ if answer.is_moving() => "moving",
        _ if answer.status == hyper::StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "answered",
    }
}

fn subject(partition: u32, node: &str) -> String {
    format!("wagate.rq.{partition}.{node}")
}

/// Runs this node until `shutdown` resolves; `on_listening` gets the front's address.
pub async fn run(
    config: ServerConfig,
    on_listening: impl FnOnce(Listening),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Stopped, ServeError> {
    let cluster = config.cluster.clone().unwrap_or_default();
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })
    };
    let listener = bind(config.http.listen).await?;
    let grpc_listener = bind(config.grpc.listen).await?;
    // The NATS connection and the leases live on a runtime of their own: an engine thread or
    // a handler waiting for a changelog append never starves them.
    let cluster_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("wagate-cluster")
        .enable_all()
        .build()
        .map_err(ServeError::Http)?;
    let ran = run_on(
        &cluster_runtime,
        (config, cluster),
        (listener, grpc_listener),
        on_listening,
        shutdown,
    )
    .await;
    // Dropping a runtime from async code panics, on the way out of an error too.
    cluster_runtime.shutdown_background();
    ran
}

/// [`run`] with the node's cluster runtime.
async fn run_on(
    cluster_runtime: &tokio::runtime::Runtime,
    (config, cluster): (ServerConfig, ClusterConfig),
    (listener, grpc_listener): (TcpListener, TcpListener),
    on_listening: impl FnOnce(Listening),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Stopped, ServeError> {
    let engines = tokio::runtime::Handle::current();
    let starting = {
        let (config, cluster, engines) = (config.clone(), cluster.clone(), engines.clone());
        let handle = cluster_runtime.handle().clone();
        cluster_runtime.spawn(async move { Node::connect(config, cluster, handle, engines).await })
    };
    let node = starting
        .await
        .map_err(|e| ServeError::Cluster(e.to_string()))?
        .map_err(|e| ServeError::Cluster(e.to_string()))?;
    let node = Arc::new(node);
    let (closing, closed) = tokio::sync::watch::channel(false);

    cluster_runtime.spawn(node.clone().balance_partitions(closed.clone()));
    {
        let (node, closed) = (node.clone(), closed.clone());
        cluster_runtime.spawn(async move { node.numbers.watch(node.map.learned(), closed).await });
    }
    if cluster.snapshot_secs > 0 {
        cluster_runtime.spawn(node.clone().keep_snapshots(closed.clone()));
    }
    // Forwarded requests are answered until every partition was handed over (then each is
    // told the partition moved), so none sent meanwhile waits for an answer that never comes.
    let (forwards_closing, forwards_closed) = tokio::sync::watch::channel(false);
    // Leases are renewed until then too: the partitions still to hand over stay this node's.
    cluster_runtime.spawn(node.clone().keep_leases(forwards_closed.clone()));
    let answering = cluster_runtime.spawn(node.clone().answer_forwards(forwards_closed));
    let front_at = listener.local_addr().map_err(ServeError::Http)?;
    let grpc_at = grpc_listener.local_addr().map_err(ServeError::Http)?;
    on_listening(Listening {
        http: front_at,
        grpc: grpc_at,
    });
    tracing::info!(node = %cluster.node_id, http = %front_at, grpc = %grpc_at, partitions = cluster.partitions, "cluster node listening");
    // One cap for both ports, as on a standalone server.
    let cap = ConnectionCap::new(node.config.http.max_connections);
    let http = &node.config.http;
    let bounds = PortBounds {
        cap: cap.clone(),
        first_bytes: http.header_read_timeout(),
        idle: http.idle_timeout(),
        max_message_bytes: http.max_body_bytes + 4_096,
        refused: node.metrics.connections_refused.clone(),
        timed_out: node.metrics.connections_timed_out.clone(),
        tenants: Arc::new(crate::tenants::Tenants::new(
            &node.config.tenants,
            &node.config.admin.token,
            &node.config.pools(),
        )),
    };
    let grpc_front = tokio::spawn(grpc_front::serve(
        node.clone(),
        grpc_listener,
        bounds,
        closed.clone(),
    ));
    let acceptor = Acceptor::new(
        listener,
        cap,
        "http",
        crate::front::TOO_MANY_CONNECTIONS,
        node.metrics.connections_refused.clone(),
    );
    let front = tokio::spawn(node.clone().front(acceptor, closed.clone()));
    shutdown.await;
    let _ = closing.send(true);
    let _ = front.await;
    let _ = grpc_front.await;
    // Leaving: every partition is stopped and its lease given up, so the others take it at
    // once rather than after the lease lapses.
    let leaving = node.clone();
    let left = cluster_runtime.spawn(async move { leaving.leave().await });
    let _ = left.await;
    let _ = forwards_closing.send(true);
    // The answers already given (each "moved", now) must reach their askers before the process
    // ends: one lost leaves its asker waiting out its whole timeout instead of retrying.
    let _ = answering.await;
    Ok(Stopped::Cleanly)
}

impl Node {
    async fn connect(
        config: ServerConfig,
        cluster: ClusterConfig,
        cluster_runtime: tokio::runtime::Handle,
        engines: tokio::runtime::Handle,
    ) -> Result<Node, ClusterError> {
        let servers: Vec<async_nats::ServerAddr> = cluster
            .nats_url
            .split(',')
            .map(|url| url.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(ClusterError::of)?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(FORWARD_WAIT))
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .map_err(ClusterError::of)?;
        let lease = Duration::from_secs(cluster.lease_secs);
        let deadline = Instant::now() + Duration::from_secs(60);
        // JetStream may still be electing its leaders when the servers have just started.
        let (leases, changelog, snapshots, numbers) = loop {
            let opened = async {
                let leases = Leases::open(
                    client.clone(),
                    "wagate_leases",
                    cluster.replicas,
                    lease,
                    &cluster.node_id,
                )
                .await?;
                let retention = Duration::from_secs(cluster.changelog_retention_secs);
                let changelog =
                    Changelog::open(client.clone(), cluster.replicas, retention).await?;
                let snapshots = Snapshots::open(client.clone(), cluster.replicas).await?;
                let numbers = NumberDirectory::open(client.clone(), cluster.replicas).await?;
                Ok::<_, ClusterError>((leases, changelog, snapshots, numbers))
            }
            .await;
            match opened {
                Ok(opened) => break opened,
                Err(error) if Instant::now() > deadline => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, "JetStream not ready yet: trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let config_bodies = config.http.max_body_bytes_held;
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Node {
            map: PartitionMap::new(&cluster, &config.numbers),
            config,
            cluster,
            client,
            leases,
            changelog: Arc::new(changelog),
            snapshots: Arc::new(snapshots),
            numbers,
            served: Mutex::new(BTreeMap::new()),
            owners: Mutex::new(HashMap::new()),
            stopping: Default::default(),
            http,
            cluster_runtime,
            engines,
            metrics: Arc::new(NodeMetrics::new()),
            bodies: BodyBudget::new(config_bodies),
        })
    }

    fn lease_period(&self) -> Duration {
        Duration::from_secs(self.cluster.lease_secs)
    }

    fn local(&self, partition: u32) -> Option<EngineAt> {
        self.local_of(&locked(&self.served), partition)
    }

    /// `partition`'s engine among those `served`, unless fenced.
    fn local_of(&self, served: &BTreeMap<u32, ServedEntry>, partition: u32) -> Option<EngineAt> {
        served
            .get(&partition)
            .filter(|entry| !entry.served.is_fenced())
            .map(|entry| EngineAt {
                http: entry.served.http,
                grpc: entry.served.grpc.clone(),
            })
    }

    /// Renews what is held and stops what was lost, every third of a lease, until the node
    /// closes. Alone in its loop: nothing slow (a take, a restore) ever delays a renewal.
    async fn keep_leases(self: Arc<Self>, mut closed: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *closed.borrow() {
                return;
            }
            self.renew_all().await;
            tokio::select! {
                _ = tokio::time::sleep(self.lease_period() / 3) => {}
                _ = closed.changed() => {}
            }
        }
    }

    /// Announces the node, and takes partitions up to its share of the live nodes or hands
    /// the surplus over, until the node closes.
    async fn balance_partitions(self: Arc<Self>, mut closed: tokio::sync::watch::Receiver<bool>) {
        let third = self.lease_period() / 3;
        let mut share = self.cluster.partitions as usize;
        let mut counted = Instant::now() - third;
        loop {
            if *closed.borrow() {
                return;
            }
            if counted.elapsed() >= third {
                if let Err(error) = bounded(third, self.leases.announce()).await {
                    tracing::warn!(%error, "announcing this node failed");
                }
                if let Ok(nodes) = bounded(third, self.leases.live_nodes()).await {
                    share = (self.cluster.partitions as usize).div_ceil(nodes);
                }
                counted = Instant::now();
            }
            self.balance(share).await;
            tokio::select! {
                _ = tokio::time::sleep(BALANCE_EVERY) => {}
                _ = closed.changed() => {}
            }
        }
    }

    /// Every `snapshot_secs`, a snapshot of each partition served here that changed since its
    /// last, until the node closes.
    async fn keep_snapshots(self: Arc<Self>, mut closed: tokio::sync::watch::Receiver<bool>) {
        let mut covered: HashMap<u32, u64> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(self.cluster.snapshot_secs)) => {}
                _ = closed.changed() => return,
            }
            let served: Vec<(u32, Arc<super::replicated_store::ReplicatedStore>)> = {
                let served = locked(&self.served);
                served
                    .iter()
                    .map(|(p, e)| (*p, e.served.store.clone()))
                    .collect()
            };
            for (partition, store) in served {
                match self
                    .snapshot(partition, store, covered.get(&partition).copied())
                    .await
                {
                    Ok(Some(sequence)) => {
                        covered.insert(partition, sequence);
                        NodeMetrics::count(&self.metrics.snapshots, "kept");
                    }
                    Ok(None) => {}
                    Err(error) => {
                        NodeMetrics::count(&self.metrics.snapshots, "failed");
                        tracing::warn!(partition, %error, "keeping a snapshot failed: tried again later")
                    }
                }
            }
        }
    }

    /// Keeps a snapshot of `partition` unless nothing changed since `covered`; its sequence.
    async fn snapshot(
        &self,
        partition: u32,
        store: Arc<super::replicated_store::ReplicatedStore>,
        covered: Option<u64>,
    ) -> Result<Option<u64>, ClusterError> {
        let started = Instant::now();
        let dir = self
            .config
            .storage
            .data_dir
            .join(format!("snapshot-{partition}"));
        let packed = tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(&dir);
            let sequence = store.checkpoint(&dir).map_err(ClusterError::of)?;
            let blob = if covered == Some(sequence) {
                None
            } else {
                Some(snapshot::pack(&dir, sequence).map_err(ClusterError::of)?)
            };
            let _ = std::fs::remove_dir_all(&dir);
            Ok::<_, ClusterError>((sequence, blob))
        })
        .await
        .map_err(ClusterError::of)??;
        let (sequence, Some(blob)) = packed else {
            return Ok(None);
        };
        let bytes = blob.len();
        bounded(Duration::from_secs(60), self.snapshots.put(partition, blob)).await?;
        self.metrics.snapshot_bytes.inc_by(bytes as u64);
        tracing::info!(
            partition,
            sequence,
            bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "kept a partition's snapshot"
        );
        Ok(Some(sequence))
    }

    async fn renew_all(&self) {
        let held: Vec<(u32, Lease, bool, Instant)> = {
            let served = locked(&self.served);
            served
                .iter()
                .map(|(p, e)| {
                    let fenced = e.served.is_fenced();
                    (*p, e.served.lease, fenced, e.renewed)
                })
                .collect()
        };
        for (partition, lease, fenced, renewed) in held {
            let kept = if fenced {
                None
            } else {
                match bounded(self.lease_period() / 3, self.leases.renew(lease)).await {
                    Ok(kept) => {
                        let outcome = if kept.is_some() { "kept" } else { "lost" };
                        NodeMetrics::count(&self.metrics.lease_renewals, outcome);
                        kept
                    }
                    // Unknown (a timeout, an election): kept while the lease may still run.
                    Err(error) if renewed.elapsed() < self.lease_period() => {
                        NodeMetrics::count(&self.metrics.lease_renewals, "failed");
                        tracing::warn!(partition, %error, "renewing a lease failed: trying again");
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(partition, %error, "a lease ran out unrenewed");
                        None
                    }
                }
            };
            let mut served = locked(&self.served);
            match kept {
                Some(kept) => {
                    if let Some(entry) = served.get_mut(&partition) {
                        entry.served.lease = kept;
                        entry.renewed = Instant::now();
                    }
                }
                None => {
                    tracing::warn!(partition, "lost a partition: it stops being served here");
                    if let Some(entry) = served.remove(&partition) {
                        self.stop_in_background(partition, entry.served);
                    }
                }
            }
        }
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(self.config.http.shutdown_grace_secs.min(10))
    }

    /// Stops a lost partition's engine without holding up the renewals; the partition is
    /// not taken again here until it stopped (its data directory is free).
    fn stop_in_background(&self, partition: u32, served: Served) {
        locked(&self.stopping).insert(partition);
        let grace = self.grace();
        let stopping = self.stopping.clone();
        self.engines.spawn(async move {
            served.stop(grace).await;
            locked(&stopping).remove(&partition);
        });
    }

    async fn balance(&self, share: usize) {
        let held: Vec<u32> = {
            let served = locked(&self.served);
            served.keys().copied().collect()
        };
        if held.len() > share {
            // A node joined: the highest partition goes to whoever takes it next.
            if let Some(&partition) = held.last() {
                self.hand_over(partition).await;
            }
            return;
        }
        if held.len() == share {
            return;
        }
        // Start from a place of this node's own, so nodes starting together try different
        // partitions first.
        let offset = self
            .cluster
            .node_id
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        for i in 0..self.cluster.partitions {
            let partition = (offset.wrapping_add(i)) % self.cluster.partitions;
            let stopping = locked(&self.stopping).contains(&partition);
            if held.contains(&partition) || stopping {
                continue;
            }
            match bounded(self.lease_period() / 3, self.leases.take(partition)).await {
                Ok(Some(lease)) => {
                    self.serve(lease).await;
                    // One at a time: the other nodes get their turn between takes.
                    return;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(partition, %error, "taking a partition failed");
                    return;
                }
            }
        }
    }

    async fn serve(&self, lease: Lease) {
        let context = partition::Context {
            config: &self.config,
            changelog: self.changelog.clone(),
            snapshots: self.snapshots.clone(),
            cluster: self.cluster_runtime.clone(),
            engines: self.engines.clone(),
            metrics: self.metrics.clone(),
        };
        let partition = lease.partition;
        let taken = Instant::now();
        // Renewed while it is restored, so a long restore does not lose it.
        let restoring = partition::start(&context, lease);
        tokio::pin!(restoring);
        let mut lease = lease;
        // A restore that never ends (JetStream unreachable) must not keep the lease for ever.
        let give_up = tokio::time::sleep(RESTORE_LIMIT);
        tokio::pin!(give_up);
        let started = loop {
            tokio::select! {
                started = &mut restoring => break started,
                _ = &mut give_up => break Err(ClusterError::of("the restore took too long")),
                _ = tokio::time::sleep(self.lease_period() / 3) => {
                    if let Ok(Some(kept)) = bounded(self.lease_period() / 3, self.leases.renew(lease)).await {
                        lease = kept;
                    }
                }
            }
        };
        let outcome = if started.is_ok() { "served" } else { "failed" };
        NodeMetrics::count(&self.metrics.restores, outcome);
        self.metrics
            .restore_duration
            .observe(taken.elapsed().as_secs_f64());
        match started {
            Ok(mut served) => {
                served.lease = lease;
                let mut all = locked(&self.served);
                all.insert(
                    partition,
                    ServedEntry {
                        served,
                        renewed: Instant::now(),
                    },
                );
                locked(&self.owners).remove(&partition);
            }
            Err(error) => {
                tracing::error!(partition, %error, "restoring a partition failed: giving it up");
                let _ = self.leases.release(lease).await;
            }
        }
    }

    /// Stops serving `partition` and gives its lease up for another node to take.
    async fn hand_over(&self, partition: u32) {
        let entry = {
            let mut served = locked(&self.served);
            served.remove(&partition)
        };
        if let Some(entry) = entry {
            let lease = entry.served.lease;
            tracing::info!(partition, "handing a partition over to another node");
            self.metrics.hand_overs.inc();
            entry.served.stop(self.grace()).await;
            if let Err(error) = self.leases.release(lease).await {
                tracing::warn!(partition, %error, "releasing a handed-over lease failed");
            }
        }
    }

    async fn leave(&self) {
        let partitions: Vec<u32> = {
            let served = locked(&self.served);
            served.keys().copied().collect()
        };
        for partition in partitions {
            self.hand_over(partition).await;
        }
    }

    /// Answers requests other nodes forward for partitions served here.
    async fn answer_forwards(self: Arc<Self>, mut closed: tokio::sync::watch::Receiver<bool>) {
        let wildcard = format!("wagate.rq.*.{}", self.cluster.node_id);
        let mut requests = match self.client.subscribe(wildcard).await {
            Ok(requests) => requests,
            Err(error) => {
                tracing::error!(%error, "cannot take forwarded requests: this node serves none");
                return;
            }
        };
        let mut answering = tokio::task::JoinSet::new();
        loop {
            let message = tokio::select! {
                message = requests.next() => message,
                Some(_) = answering.join_next(), if !answering.is_empty() => continue,
                _ = closed.changed() => break,
            };
            let Some(message) = message else { break };
            let node = self.clone();
            answering.spawn(async move {
                let Some(reply) = message.reply.clone() else {
                    return;
                };
                let partition = message
                    .subject
                    .split('.')
                    .nth(2)
                    .and_then(|p| p.parse::<u32>().ok());
                let request = Forwarded::from_nats(message.headers.as_ref(), message.payload);
                let started = Instant::now();
                let answer = match (partition, request) {
                    (Some(partition), Some(request)) => match node.local(partition) {
                        Some(at) => node.to_engine(partition, at, request).await,
                        None => Answer::moving("this partition is moving to another node"),
                    },
                    _ => Answer::unavailable("a forwarded request wagate cannot read"),
                };
                let took = started.elapsed();
                node.metrics
                    .forwarded("from_node", outcome_of(&answer), took);
                let (headers, body) = answer.to_nats();
                if let Err(error) = node.client.publish_with_headers(reply, headers, body).await {
                    tracing::warn!(%error, "answering a forwarded request failed");
                }
            });
        }
        // No new request is taken (the subscription goes with `requests`); those taken are
        // answered, and the answers written to the server, each within its own bound.
        drop(requests);
        let answered = async { while answering.join_next().await.is_some() {} };
        if tokio::time::timeout(FORWARD_WAIT, answered).await.is_err() {
            tracing::warn!("forwarded requests still unanswered when this node left");
        }
        match tokio::time::timeout(Duration::from_secs(5), self.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "the last answers to forwarded requests may be lost")
            }
            Err(_) => tracing::warn!(
                "the last answers to forwarded requests may be lost: NATS took too long"
            ),
        }
    }

    /// Sends `request` to `partition`'s engine at `at` (a gRPC call to its gRPC port).
    async fn to_engine(&self, partition: u32, at: EngineAt, request: Forwarded) -> Answer {
        if grpc_wire::is_call(&request) {
            let asked = grpc_wire::ask_engine(at.grpc, request);
            return tokio::time::timeout(FORWARD_WAIT, asked)
                .await
                .unwrap_or_else(|_| {
                    Answer::unavailable("the partition's engine did not answer in time")
                });
        }
        let uri = format!("http://{}{}", at.http, request.target);
        // Asked again of another owner, a keyed request finds its own answer there (its key's
        // record moves with the partition); an unkeyed one would be taken twice had the engine
        // taken it.
        let keyed = request.headers.contains_key("idempotency-key");
        let mut built = Request::builder().method(request.method).uri(uri);
        if let Some(headers) = built.headers_mut() {
            *headers = request.headers;
            // The body's length is the body's own (a bulk body split for its partition is
            // shorter); the connection is this client's.
            for hop in ["content-length", "transfer-encoding", "connection"] {
                headers.remove(hop);
            }
        }
        let Ok(built) = built.body(Full::new(request.body)) else {
            return Answer::unavailable("a request wagate cannot pass on");
        };
        let asked = async {
            let answer = match self.http.request(built).await {
                Ok(answer) => answer,
                // Never reached the engine (it stopped: the partition is moving): another
                // owner may take it.
                Err(error) if error.is_connect() => {
                    return Ok(Answer::moving("the partition's engine stopped"))
                }
                // Its connection closed with the request unanswered as the partition left
                // this node (handed over, lost, fenced): a stopping engine closes the
                // connections that hold no request in hand, and the request met one of them,
                // so another owner may take it. A request the engine had in hand is answered
                // before its connection closes, within the stop's grace; past the grace it is
                // cut off, taken or not, which is why only a keyed request is asked again.
                Err(error)
                    if keyed && closed_unanswered(&error) && self.local(partition).is_none() =>
                {
                    return Ok(Answer::moving("the partition's engine stopped"))
                }
                Err(error) => return Err(ClusterError::engine(&error)),
            };
            let (parts, body) = answer.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|error| ClusterError::engine(&error))?
                .to_bytes();
            Ok::<_, ClusterError>(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(FORWARD_WAIT, asked).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                tracing::warn!(%error, "a partition's engine did not answer");
                Answer::unavailable("the partition's engine did not answer")
            }
            Err(_) => Answer::unavailable("the partition's engine did not answer in time"),
        }
    }

    /// Who owns `partition`, as the leases say (read again after `OWNER_KEPT`).
    async fn owner(&self, partition: u32, fresh: bool) -> Option<String> {
        if !fresh {
            let owners = locked(&self.owners);
            if let Some((owner, read)) = owners.get(&partition) {
                if read.elapsed() < OWNER_KEPT {
                    return owner.clone();
                }
            }
        }
        let leases = &self.leases;
        let owner = bounded(OWNER_KEPT * 4, leases.holder(partition))
            .await
            .ok()
            .flatten()
            .map(|h| h.0);
        locked(&self.owners).insert(partition, (owner.clone(), Instant::now()));
        owner
    }

    /// `request`'s answer from `partition`'s owner, wherever it is. While the partition has
    /// no owner that can take it (changing hands, being restored), the request waits for one,
    /// up to `FORWARD_WAIT`: a hand-off refuses nothing. A request that may have reached an
    /// owner is never sent twice.
    async fn to_partition(&self, partition: u32, request: &Forwarded) -> Answer {
        let deadline = Instant::now() + FORWARD_WAIT;
        let mut fresh = false;
        loop {
            let answer = self.try_partition(partition, request, fresh).await;
            match answer {
                Some(answer) if !answer.is_moving() => return answer,
                _ if Instant::now() >= deadline => {
                    return Answer::unavailable(
                        "this partition has no reachable owner now: try again shortly",
                    )
                }
                _ => {
                    fresh = true;
                    tokio::time::sleep(MOVING_RETRY).await;
                }
            }
        }
    }

    /// One try: the answer, or `None` (or a moving answer) when no owner took the request.
    async fn try_partition(
        &self,
        partition: u32,
        request: &Forwarded,
        fresh: bool,
    ) -> Option<Answer> {
        let started = Instant::now();
        let outcome = outcome_of;
        if let Some(at) = self.local(partition) {
            let answer = self.to_engine(partition, at, request.clone()).await;
            let took = started.elapsed();
            self.metrics.forwarded("local", outcome(&answer), took);
            return Some(answer);
        }
        let owner = self.owner(partition, fresh).await?;
        if owner == self.cluster.node_id {
            // Held here but not served yet (being restored, or handed over).
            return None;
        }
        let (headers, body) = request.to_nats();
        let asked = async_nats::Request::new()
            .headers(headers)
            .payload(body)
            .timeout(Some(FORWARD_WAIT));
        match self
            .client
            .send_request(subject(partition, &owner), asked)
            .await
        {
            Ok(message) => {
                let answer = Answer::from_nats(message.headers.as_ref(), message.payload)
                    .unwrap_or_else(|| Answer::unavailable("the owner's answer was unreadable"));
                let took = started.elapsed();
                self.metrics.forwarded("nats", outcome(&answer), took);
                Some(answer)
            }
            // Nobody listens there: the owner is gone, nothing was taken.
            Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => None,
            Err(error) => {
                tracing::warn!(partition, %owner, %error, "forwarding to a partition's owner failed");
                Some(Answer::unavailable(
                    "the partition's owner did not answer in time: try again shortly",
                ))
            }
        }
    }

    async fn route(&self, request: Forwarded) -> Answer {
        match self
            .map
            .route(&request.method, &request.target, &request.body)
        {
            Route::Node => Answer {
                status: hyper::StatusCode::OK,
                headers: Default::default(),
                body: Bytes::from_static(b"ok"),
            },
            Route::One(partition) => {
                let answer = self.to_partition(partition, &request).await;
                if answer.status.is_success() {
                    self.registered(partition, &request).await;
                }
                answer
            }
            Route::Each(partitions) => {
                let mut last = Answer::unavailable("no partition");
                for partition in partitions {
                    last = self.to_partition(partition, &request).await;
                    if !last.status.is_success() {
                        break;
                    }
                }
                last
            }
            Route::Any => {
                let mut last = Answer::unavailable("no partition");
                let mut order: Vec<u32> = locked(&self.served).keys().copied().collect();
                let others: Vec<u32> = (0..self.cluster.partitions)
                    .filter(|p| !order.contains(p))
                    .collect();
                order.extend(others);
                // Each asked once: a partition without an owner now is passed over.
                for partition in order {
                    match self.try_partition(partition, &request, false).await {
                        Some(answer) if answer.is_moving() => {}
                        Some(answer) if answer.status != hyper::StatusCode::NOT_FOUND => {
                            return answer
                        }
                        Some(answer) => last = answer,
                        None => {}
                    }
                }
                last
            }
            Route::Split(groups) => {
                let lines = bulk_split::lines(&request.body);
                let mut answers = Vec::with_capacity(groups.len());
                for (partition, indices) in groups {
                    let part = Forwarded {
                        body: bulk_split::body_of(&lines, &indices),
                        ..request.clone()
                    };
                    answers.push((indices, self.to_partition(partition, &part).await));
                }
                bulk_split::merge(lines.len(), answers)
            }
        }
    }

    /// After a number's registration its partition took: kept for every node's routing (here
    /// at once). A failure is logged; the number is then routed only here until registered
    /// again (the registration is idempotent).
    async fn registered(&self, partition: u32, request: &Forwarded) {
        if self
            .map
            .registration(&request.method, &request.target, &request.body)
            .is_none()
        {
            return;
        }
        let parsed: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let (Some(id), Some(account)) = (parsed["id"].as_u64(), parsed["account"].as_u64()) else {
            return;
        };
        {
            let learned = self.map.learned();
            let mut learned = super::locked_write(&learned);
            learned.insert(id, partition);
            learned.insert(account, partition);
        }
        let keeping = bounded(FORWARD_WAIT, self.numbers.record(id, account, partition));
        match keeping.await {
            Ok(()) => tracing::info!(
                number = id,
                account,
                partition,
                "registered a number for every node's routing"
            ),
            Err(error) => {
                tracing::warn!(number = id, partition, %error, "keeping a registered number for the other nodes failed: register it again")
            }
        }
    }

    /// The HTTP front: every connection's requests read whole (bounded), routed, answered.
    async fn front(
        self: Arc<Self>,
        mut acceptor: Acceptor,
        mut closed: tokio::sync::watch::Receiver<bool>,
    ) {
        let http = &self.config.http;
        // A head must come whole in time, which also ends a kept-alive connection left idle
        // that long.
        let head_within = http.header_read_timeout().max(http.idle_timeout());
        loop {
            let (stream, open) = tokio::select! {
                accepted = acceptor.next() => accepted,
                _ = closed.changed() => return,
            };
            let node = self.clone();
            tokio::spawn(async move {
                let _open = open;
                let service = hyper::service::service_fn(move |request| {
                    let node = node.clone();
                    async move { Ok::<_, std::convert::Infallible>(node.answer(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(head_within)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// `body` read whole within the body deadline, each byte claimed from the bound on bodies
    /// held (the claim held until the request is answered); or the refusal.
    async fn read_body(&self, body: Incoming) -> Result<(Bytes, Claim), Answer> {
        let limit = self.config.http.max_bulk_bytes;
        let mut claim = self.bodies.claim();
        let reading = async {
            let mut body = body;
            let mut read = BytesMut::new();
            let mut past_limit = 0;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return Err(Answer::error(
                        hyper::StatusCode::BAD_REQUEST,
                        100,
                        "the request's body could not be read",
                        "body_unreadable",
                    ));
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if past_limit > 0 || read.len() + data.len() > limit {
                    // Read past and dropped (up to a bound) so that the client, still
                    // sending, gets the 413 rather than a reset connection.
                    past_limit += data.len();
                    if past_limit > DRAIN_BEYOND_LIMIT {
                        break;
                    }
                    continue;
                }
                if !claim.grow(data.len()) {
                    self.metrics.bodies_refused.inc();
                    return Err(Answer::unavailable(
                        "the server holds as many request bodies as it may: try again shortly",
                    ));
                }
                read.extend_from_slice(&data);
            }
            if past_limit > 0 {
                return Err(Answer::error(
                    hyper::StatusCode::PAYLOAD_TOO_LARGE,
                    100,
                    &format!("the request's body is larger than {limit} bytes"),
                    "body_too_large",
                ));
            }
            Ok(read.freeze())
        };
        match tokio::time::timeout(self.config.http.body_read_timeout(), reading).await {
            Ok(Ok(body)) => Ok((body, claim)),
            Ok(Err(refused)) => Err(refused),
            Err(_) => {
                self.metrics.connections_timed_out.inc();
                Err(Answer::error(
                    hyper::StatusCode::REQUEST_TIMEOUT,
                    100,
                    "the request's body did not come whole in time",
                    "body_timeout",
                ))
            }
        }
    }

    /// `/metrics`: the node's own, then those of every partition engine it serves (with
    /// `http.metrics_token` set, only for its bearer, as on a standalone server).
    async fn metrics_answer(&self, request: Forwarded) -> Answer {
        let wanted = &self.config.http.metrics_token;
        if !wanted.is_empty() {
            let given = request
                .headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            if !given.is_some_and(|token| crate::tenants::constant_time_eq(token, wanted)) {
                return Answer::error(
                    hyper::StatusCode::UNAUTHORIZED,
                    190,
                    "/metrics needs the http.metrics_token as a Bearer token",
                    "unauthorized",
                );
            }
        }
        let engines: Vec<(u32, EngineAt)> = {
            let served = locked(&self.served);
            served
                .keys()
                .filter_map(|p| Some((*p, self.local_of(&served, *p)?)))
                .collect()
        };
        self.metrics.partitions_served.set(engines.len() as i64);
        let mut texts = Vec::with_capacity(engines.len());
        for (partition, at) in engines {
            let answer = self.to_engine(partition, at, request.clone()).await;
            if answer.status.is_success() {
                texts.push((
                    partition,
                    String::from_utf8_lossy(&answer.body).into_owned(),
                ));
            }
        }
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        );
        Answer {
            status: hyper::StatusCode::OK,
            headers,
            body: Bytes::from(self.metrics.render(&texts)),
        }
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let answer = match self.read_body(body).await {
            Ok((body, _held)) => {
                let target = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".to_string());
                let request = Forwarded {
                    method: parts.method,
                    target,
                    headers: parts.headers,
                    body,
                };
                if request.method == hyper::Method::GET && parts.uri.path() == "/metrics" {
                    self.metrics_answer(request).await
                } else {
                    self.route(request).await
                }
            }
            Err(refused) => refused,
        };
        let mut response = Response::new(Full::new(answer.body));
        *response.status_mut() = answer.status;
        *response.headers_mut() = answer.headers;
        response
    }
}

#[tonic::async_trait]
impl Partitions for Node {
    fn partition_of_number(&self, id: &str) -> u32 {
        // A number no partition has: any engine answers so; one here saves a hop.
        self.map
            .of(id)
            .unwrap_or_else(|| locked(&self.served).keys().next().copied().unwrap_or(0))
    }

    async fn to_partition(&self, partition: u32, request: &Forwarded) -> Answer {
        Node::to_partition(self, partition, request).await
    }

    async fn route(&self, request: Forwarded) -> Answer {
        Node::route(self, request).await
    }
}
