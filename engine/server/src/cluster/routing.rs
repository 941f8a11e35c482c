//! Which partition a request belongs to (routing, docs/ARCHITECTURE.md "Cluster mode"): the
//! number or business account in its path, the `phone_number_id` of its query, the numbers a
//! webhook's entries name, the numbers of a bulk body's lines. The numbers and accounts come
//! from `[[numbers]]` (every node reads the same config), each in the partition of its
//! portfolio. A request that names none (a message's status by id, the admin lists) may be
//! answered by any partition: the front asks them in turn.

use std::collections::{BTreeSet, HashMap};

use hyper::http::Method;

use super::number_directory::Learned;
use crate::cluster_config::ClusterConfig;
use crate::config::NumberSeed;
use wagate_durable::message_ids::partition_of_id;

/// The admin API's registration of a number.
pub const REGISTER_NUMBER: &str = "/wagate/admin/numbers";

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The node answers itself (`/healthz`).
    Node,
    /// One partition's owner.
    One(u32),
    /// Every partition named (a webhook whose entries span several): each gets the request.
    Each(Vec<u32>),
    /// Any partition: asked in turn until one knows what was asked (not 404).
    Any,
    /// A bulk body whose lines name numbers of several partitions: each partition's lines
    /// (their indices among the body's lines) go to its owner.
    Split(Vec<(u32, Vec<usize>)>),
}

/// The partitions of the configured numbers and business accounts, and of those registered
/// at run time (`learned`, from `number_directory`).
#[derive(Debug, Clone, Default)]
pub struct PartitionMap {
    by_id: HashMap<u64, u32>,
    learned: Learned,
    cluster: ClusterConfig,
    partitions: u32,
}

impl PartitionMap {
    pub fn new(cluster: &ClusterConfig, numbers: &[NumberSeed]) -> PartitionMap {
        let mut by_id = HashMap::new();
        for seed in numbers {
            let partition = cluster.partition_of(seed.portfolio);
            by_id.insert(seed.id, partition);
            by_id.insert(seed.account, partition);
        }
        PartitionMap {
            by_id,
            learned: Learned::default(),
            cluster: cluster.clone(),
            partitions: cluster.partitions,
        }
    }

    /// The ids registered at run time, kept up to date by the node.
    pub fn learned(&self) -> Learned {
        self.learned.clone()
    }

    /// The partition of number or business account `id`, configured or registered.
    pub fn of(&self, id: &str) -> Option<u32> {
        let id = id.parse::<u64>().ok()?;
        if let Some(partition) = self.by_id.get(&id) {
            return Some(*partition);
        }
        let learned = self.learned.read().unwrap_or_else(|e| e.into_inner());
        learned.get(&id).copied()
    }

    /// A number registered at run time: the partition of the portfolio its body names.
    pub fn registration(&self, method: &Method, path: &str, body: &[u8]) -> Option<u32> {
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        if method != Method::POST || path != REGISTER_NUMBER {
            return None;
        }
        let parsed = serde_json::from_slice::<serde_json::Value>(body).ok()?;
        Some(self.cluster.partition_of(parsed["portfolio"].as_u64()?))
    }

    /// The partition whose engine gave message id `id` (`wagate.<hex>`).
    fn of_message(&self, id: &str) -> Option<u32> {
        let id = u64::from_str_radix(id.strip_prefix("wagate.")?, 16).ok()?;
        partition_of_id(id).filter(|p| *p < self.partitions)
    }

    /// Where `method` `target` (path and query) with `body` goes.
    pub fn route(&self, method: &Method, target: &str, body: &[u8]) -> Route {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path == "/healthz" {
            return Route::Node;
        }
        if path == "/webhooks/meta" && method == Method::POST {
            return self.webhook(body);
        }
        if path == "/wagate/v1/bulk" {
            return self.bulk(body);
        }
        if let Some(partition) = self.registration(method, path, body) {
            return Route::One(partition);
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if let ["wagate", "v1" | "admin", "messages", id, ..] = segments.as_slice() {
            // As written, or escaped (a gRPC `GetMessage`'s twin escapes its dots).
            if let Some(partition) = self.of_message(&super::grpc_wire::unescape(id)) {
                return Route::One(partition);
            }
        }
        if let ["wagate", "admin", "numbers" | "contacts", id, ..] = segments.as_slice() {
            if let Some(partition) = self.of(id) {
                return Route::One(partition);
            }
        }
        if let [_version, id, ..] = segments.as_slice() {
            if let Some(partition) = self.of(id) {
                return Route::One(partition);
            }
        }
        let named = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("phone_number_id="));
        if let Some(partition) = named.and_then(|id| self.of(id)) {
            return Route::One(partition);
        }
        match self.named_in_body(body) {
            Some(partition) => Route::One(partition),
            None => Route::Any,
        }
    }

    /// The partition of the number (`phone_number_id`) or business account (`account`) a
    /// JSON body names at its top (wagate's own API: consent, templates, scheduled sends).
    fn named_in_body(&self, body: &[u8]) -> Option<u32> {
        if body.first().is_none_or(|b| *b != b'{') {
            return None;
        }
        let parsed = serde_json::from_slice::<serde_json::Value>(body).ok()?;
        ["phone_number_id", "account"].iter().find_map(|field| {
            let value = &parsed[*field];
            let id = match value {
                serde_json::Value::String(id) => id.clone(),
                serde_json::Value::Number(id) => id.to_string(),
                _ => return None,
            };
            self.of(&id)
        })
    }

    /// A webhook from Meta: the partitions of the numbers (or accounts) its entries name.
    fn webhook(&self, body: &[u8]) -> Route {
        let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Route::Any;
        };
        let mut partitions = BTreeSet::new();
        for entry in parsed["entry"].as_array().into_iter().flatten() {
            let mut named = false;
            for change in entry["changes"].as_array().into_iter().flatten() {
                let metadata = &change["value"]["metadata"]["phone_number_id"];
                if let Some(partition) = metadata.as_str().and_then(|id| self.of(id)) {
                    partitions.insert(partition);
                    named = true;
                }
            }
            if !named {
                if let Some(partition) = entry["id"].as_str().and_then(|id| self.of(id)) {
                    partitions.insert(partition);
                }
            }
        }
        match partitions.len() {
            0 => Route::Any,
            1 => Route::One(*partitions.first().unwrap_or(&0)),
            _ => Route::Each(partitions.into_iter().collect()),
        }
    }

    /// A bulk body: the partition of its lines' numbers, or each partition's lines (a line
    /// naming no known number goes with the first partition named, whose owner answers it).
    fn bulk(&self, body: &[u8]) -> Route {
        #[derive(serde::Deserialize)]
        struct Line<'a> {
            #[serde(borrow)]
            phone_number_id: std::borrow::Cow<'a, str>,
        }
        let named: Vec<Option<u32>> = super::bulk_split::lines(body)
            .iter()
            .map(|line| {
                serde_json::from_slice::<Line>(line)
                    .ok()
                    .and_then(|l| self.of(&l.phone_number_id))
            })
            .collect();
        let Some(first) = named.iter().flatten().next().copied() else {
            return Route::Any;
        };
        let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
        for (i, partition) in named.iter().enumerate() {
            let partition = partition.unwrap_or(first);
            match groups.iter_mut().find(|(p, _)| *p == partition) {
                Some((_, indices)) => indices.push(i),
                None => groups.push((partition, vec![i])),
            }
        }
        if groups.len() == 1 {
            return Route::One(first);
        }
        Route::Split(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_durable::message_ids::partition_base;

    fn map() -> (PartitionMap, ClusterConfig) {
        let cluster = ClusterConfig {
            node_id: "a".into(),
            partitions: 64,
            ..Default::default()
        };
        let seed = |id, account, portfolio| NumberSeed {
            id,
            account,
            portfolio,
            tier: None,
            throughput_mps: None,
            display_phone_number: None,
        };
        let numbers = [seed(101, 501, 1), seed(102, 501, 1), seed(201, 601, 2)];
        (PartitionMap::new(&cluster, &numbers), cluster)
    }

    #[test]
    fn a_request_goes_to_the_partition_of_the_portfolio_it_names() {
        let (map, cluster) = map();
        let (one, two) = (cluster.partition_of(1), cluster.partition_of(2));
        assert_ne!(one, two, "the test needs two partitions");
        let post = Method::POST;
        assert_eq!(
            map.route(&post, "/v21.0/101/messages", b""),
            Route::One(one)
        );
        assert_eq!(map.route(&post, "/v21.0/102/media", b""), Route::One(one));
        assert_eq!(
            map.route(&Method::GET, "/v21.0/601/message_templates", b""),
            Route::One(two)
        );
        assert_eq!(
            map.route(&Method::GET, "/wagate/v1/groups?phone_number_id=201", b""),
            Route::One(two)
        );
        assert_eq!(
            map.route(&Method::GET, "/wagate/v1/messages/abc", b""),
            Route::Any
        );
        let id = format!("wagate.{:016x}", partition_base(two) + 7);
        assert_eq!(
            map.route(&Method::GET, &format!("/wagate/v1/messages/{id}"), b""),
            Route::One(two)
        );
        assert_eq!(
            map.route(&post, &format!("/wagate/admin/messages/{id}/settle"), b""),
            Route::One(two)
        );
        let escaped = id.replace('.', "%2E");
        assert_eq!(
            map.route(&Method::GET, &format!("/wagate/v1/messages/{escaped}"), b""),
            Route::One(two)
        );
        assert_eq!(map.route(&Method::GET, "/healthz", b""), Route::Node);
        // A number registered at run time: to its portfolio's partition, then known by id.
        let registered = br#"{"id":301,"account":701,"portfolio":2}"#;
        assert_eq!(
            map.route(&post, "/wagate/admin/numbers", registered),
            Route::One(two)
        );
        assert_eq!(
            map.route(&Method::GET, "/wagate/admin/numbers/301/usage", b""),
            Route::Any
        );
        assert_eq!(
            map.route(&Method::GET, "/wagate/admin/contacts/101/+1555", b""),
            Route::One(one)
        );
        map.learned().write().unwrap().insert(301, two);
        assert_eq!(
            map.route(&Method::GET, "/wagate/admin/numbers/301/usage", b""),
            Route::One(two)
        );
        assert_eq!(
            map.route(
                &post,
                "/wagate/admin/contacts/consent",
                br#"{"phone_number_id":"201","to":[]}"#
            ),
            Route::One(two)
        );
        assert_eq!(
            map.route(&post, "/wagate/admin/templates", br#"{"account":501}"#),
            Route::One(one)
        );
        let hook = |ids: &[&str]| {
            let entries: Vec<_> = ids
                .iter()
                .map(|id| serde_json::json!({"id": "0", "changes": [{"value": {"metadata": {"phone_number_id": id}}}]}))
                .collect();
            serde_json::json!({"object": "whatsapp_business_account", "entry": entries}).to_string()
        };
        assert_eq!(
            map.route(&post, "/webhooks/meta", hook(&["101", "102"]).as_bytes()),
            Route::One(one)
        );
        let mut both = vec![one, two];
        both.sort();
        assert_eq!(
            map.route(&post, "/webhooks/meta", hook(&["101", "201"]).as_bytes()),
            Route::Each(both)
        );
        let account_hook = r#"{"entry":[{"id":"601","changes":[{"field":"message_template_status_update","value":{}}]}]}"#;
        assert_eq!(
            map.route(&post, "/webhooks/meta", account_hook.as_bytes()),
            Route::One(two)
        );
        let bulk = b"{\"phone_number_id\":\"101\",\"request\":{}}\n{\"phone_number_id\":\"102\",\"request\":{}}\n";
        assert_eq!(map.route(&post, "/wagate/v1/bulk", bulk), Route::One(one));
        let mixed = b"{\"phone_number_id\":\"101\",\"request\":{}}\n{\"phone_number_id\":\"201\",\"request\":{}}\n";
        assert_eq!(
            map.route(&post, "/wagate/v1/bulk", mixed),
            Route::Split(vec![(one, vec![0]), (two, vec![1])])
        );
    }
}
