//! The server's configuration: one TOML document whose every key has a default that runs out
//! of the box, and which the command line and the environment can override key by key.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::keyword_config::{self, ConsentSection, KeywordsByLanguage};
use super::overrides::{apply_override, OverrideError};
use wagate_durable::WagateConfig;
use wagate_rules::clock::{Timestamp, COMPACT_EPOCH_UNIX_SECS};

#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config is not valid TOML: {0}")]
    Syntax(String),
    #[error(transparent)]
    Override(#[from] OverrideError),
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub http: HttpConfig,
    pub grpc: GrpcConfig,
    pub storage: StorageConfig,
    pub engine: EngineSection,
    pub clock: ClockConfig,
    pub meta: MetaConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    /// Consent keywords by language (`[consent.keywords.en]`).
    pub consent: ConsentSection,
    pub tenants: Vec<TenantConfig>,
    /// Numbers registered at start-up when not yet known (kept as they are when known).
    pub numbers: Vec<NumberSeed>,
    /// Present: this server is one node of a cluster (docs/ARCHITECTURE.md, "Cluster mode").
    pub cluster: Option<super::cluster_config::ClusterConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest body of a single send, a webhook or an admin request.
    pub max_body_bytes: usize,
    /// Largest body of a bulk (NDJSON) request.
    pub max_bulk_bytes: usize,
    /// Bytes of request bodies held in memory by all unfinished requests together; a body that
    /// would pass it is answered 503 (retry shortly) instead of read.
    pub max_body_bytes_held: usize,
    /// Send requests admitted but not yet answered, over all connections; beyond it, 503.
    pub max_pending_messages: usize,
    /// How long a shutdown waits for open requests before it stops waiting.
    pub shutdown_grace_secs: u64,
    /// Bearer token `/metrics` asks for; open to anyone while empty.
    pub metrics_token: String,
    /// A request's head must arrive whole within this, from its first byte.
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive whole within this, after its head (an answer, likewise,
    /// must be taken by the client within it).
    pub body_read_timeout_ms: u64,
    /// A kept-alive connection with no request in this long is closed.
    pub idle_timeout_secs: u64,
    /// Connections open at once; the ones beyond are answered 503 and closed at once.
    pub max_connections: usize,
    /// Where callers reach this server (`https://wagate.example.com`), for the URLs wagate
    /// gives out (a media file's); empty: `http://` and the request's `Host`.
    pub public_url: String,
}

impl HttpConfig {
    pub fn header_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn body_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.body_read_timeout_ms)
    }

    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idle_timeout_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    pub listen: SocketAddr,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// Sync each group commit to disk before answering.
    pub sync: bool,
    pub idempotency_retention_secs: u64,
    /// A shard takes a small group no sooner than this many microseconds after its last group
    /// commit, so that sends arriving meanwhile share one synced write (0: at once).
    pub commit_interval_us: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// `whatsapp-2021` or `whatsapp-2025`, or a provider's own profile file (`*.toml`, in
    /// their format).
    pub profile: String,
    pub shards: usize,
    pub marketing_cap_per_day: u8,
    pub schedule_horizon_secs: u32,
    /// Let wagate raise a tier itself when its projected upgrade comes due (on the exact
    /// 7-day count, after the profile's delay); off, only Meta's word raises it.
    pub apply_projected_upgrades: bool,
    /// A directory of rate card files (`*.toml`: profile, effective_from, pricing) that
    /// replace the embedded cards of the profile; empty: the embedded cards.
    pub rate_cards_dir: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    System,
    /// Time moves only through the admin API (simulations and tests).
    Manual,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    pub mode: ClockMode,
    /// Where a manual clock starts, in Unix seconds.
    pub start_unix_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetaConfig {
    /// Where accepted messages go: Meta's Graph API, or a stand-in.
    pub base_url: String,
    pub api_version: String,
    /// The system-user token wagate sends with each message.
    pub access_token: String,
    /// The app secret Meta signs webhooks with; webhooks are refused while it is empty.
    pub app_secret: String,
    /// What Meta must echo in the webhook subscription handshake.
    pub verify_token: String,
    /// Upstream requests in flight at once, over all numbers.
    pub max_concurrency: usize,
    /// Upstream requests in flight at once for one number.
    pub max_concurrency_per_number: usize,
    pub request_timeout_ms: u64,
    /// Seconds between syncs from Meta (templates and phone numbers of every tenant's
    /// businesses, applied as Meta's word), the first at start; 0 (the default): only on demand.
    pub sync_interval_secs: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token of the admin API; the admin API is off while it is empty.
    pub token: String,
    /// A token that signs in to the console to read only (`/console`); none while empty.
    pub operator_token: String,
}

/// The server's log on standard error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (for people, the default) or `json` (one object per line, for a log pipeline).
    pub format: LogFormat,
    /// `error`, `warn`, `info`, `debug` or `trace`, or a filter in `RUST_LOG`'s syntax
    /// (`wagate=debug,hyper=warn`); `RUST_LOG`, when set, wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What a caller asks for when a send must wait (tier limit, pacing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnLimit {
    /// Keep the message durably and send it when the rules allow.
    #[default]
    Queue,
    /// Answer at once with an error and a retry hint.
    Refuse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    /// The bearer token this tenant's requests carry.
    pub token: String,
    /// The phone number ids this tenant may send from and read.
    pub numbers: Vec<u64>,
    #[serde(default)]
    pub on_limit: OnLimit,
    /// Where statuses and inbound messages are forwarded; nothing is forwarded when absent.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Key of the HMAC-SHA256 signature on forwarded webhooks.
    #[serde(default)]
    pub callback_secret: String,
    /// The Meta access token this tenant's messages go with; `meta.access_token` when absent.
    #[serde(default)]
    pub meta_access_token: Option<String>,
    /// Templates created through the Cloud API path whose lint finds what Meta's review would
    /// reject are refused before Meta (`true`), or sent with the findings alongside (`false`).
    #[serde(default)]
    pub block_on_template_lint: bool,
    /// The tenant's own consent keywords by language, for its numbers (`[consent]`'s when
    /// absent).
    #[serde(default)]
    pub keywords: KeywordsByLanguage,
    /// Whose a person's consent is: the business's, shared by all its numbers (the default,
    /// as WhatsApp sees it), or each number's own.
    #[serde(default)]
    pub consent_scope: ConsentScope,
    /// Sent once to a person whose keyword or button opted them out, inside the window their
    /// message opened (none when absent).
    #[serde(default)]
    pub opt_out_confirmation: Option<String>,
    /// The hours of the person's local day in which the tenant's business-initiated messages
    /// of some categories may go (none: any hour).
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursConfig>,
    /// Sender pools of the tenant's numbers by name (`pools = { main = [1001, 1002] }`): a
    /// send to `pool:<name>` goes from the number wagate picks.
    #[serde(default)]
    pub pools: std::collections::BTreeMap<String, Vec<u64>>,
    /// What the tenant's own events (`POST /wagate/v1/events`) set going, as data.
    #[serde(default)]
    pub automations: Vec<AutomationConfig>,
}

/// `[[tenants.automations]]`, rules as data, each with one trigger and one answer:
/// - `event` (e.g. `appointment_booked`, posted to `POST /wagate/v1/events` with the time it
///   is about) schedules `template` `remind_before_secs` before that time, never after it;
/// - `keyword` (a person's text, button payload or interactive reply, whole, any case) answers
///   with `text` (inside the window their message opened) or `template`, once per message and
///   at most [`MAX_AUTOMATED_PER_HOUR`] a person an hour (two automations answering
///   each other stop there);
/// - `status` (`delivered`, `read` or `failed`: Meta's status of one of the tenant's messages,
///   of `of_template` only if given) sends `template` to the person `after_secs` later, once
///   per message; an automation's own messages never set one going, and the hourly bound
///   above holds for these too.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AutomationConfig {
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub keyword: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default = "english")]
    pub language: String,
    #[serde(default)]
    pub remind_before_secs: u64,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub of_template: Option<String>,
    #[serde(default)]
    pub after_secs: u64,
}

/// The statuses a `status` automation may follow.
pub const FOLLOWED_STATUSES: [&str; 3] = ["delivered", "read", "failed"];

/// The longest wait before a status's follow-up: a week (a follow-up later than that answers
/// nothing the person remembers).
pub const MAX_FOLLOW_UP_SECS: u64 = 7 * 86_400;

pub use wagate_rules::automations::MAX_AUTOMATED_PER_HOUR;

impl TenantConfig {
    /// The tenant's automations as the rules hold them for `number`: its keywords and the
    /// statuses it follows, each by its index in the list.
    pub fn automations_of(
        &self,
        number: wagate_rules::PhoneNumberId,
    ) -> wagate_rules::automations::NumberAutomations {
        let indexed = || self.automations.iter().enumerate();
        wagate_rules::automations::NumberAutomations {
            number,
            keywords: indexed()
                .filter_map(|(i, a)| Some((a.keyword.clone()?, i)))
                .collect(),
            statuses: indexed()
                .filter_map(|(i, a)| Some((a.status.clone()?, a.of_template.clone(), i)))
                .collect(),
        }
    }
}

impl AutomationConfig {
    /// Why this automation cannot be one, if it cannot.
    fn problem(&self) -> Option<&'static str> {
        let filled = |v: &Option<String>| v.as_deref().is_some_and(|t| !t.trim().is_empty());
        let triggers = [&self.event, &self.keyword, &self.status];
        if triggers.into_iter().filter(|t| filled(t)).count() != 1 {
            return Some("give exactly one of event, keyword and status");
        }
        if let Some(status) = self.status.as_deref().filter(|s| !s.trim().is_empty()) {
            if !FOLLOWED_STATUSES.contains(&status) {
                return Some("status is one of delivered, read and failed");
            }
            if self.after_secs > MAX_FOLLOW_UP_SECS {
                return Some("after_secs is at most a week (604800)");
            }
        } else if self.of_template.is_some() || self.after_secs > 0 {
            return Some("of_template and after_secs belong to a status automation");
        }
        match (filled(&self.template), filled(&self.text)) {
            (true, true) | (false, false) => Some("give exactly one of template and text"),
            (false, true) if !filled(&self.keyword) => Some(
                "an event's reminder or a status's follow-up is a template (it goes outside \
                 the window)",
            ),
            _ => None,
        }
    }
}

fn english() -> String {
    "en_US".into()
}

/// The most numbers one pool holds.
pub const MAX_POOL_NUMBERS: usize = 64;

/// The longest tenant name: the name keys the tenant's waiting forwards (in two bytes of
/// length) and labels its metrics.
pub const MAX_TENANT_NAME_BYTES: usize = 256;

impl ServerConfig {
    /// Every tenant's pools, in one order the engine and the tenants agree on (tenants as
    /// configured, pools by name): (tenant index, pool name, numbers); the place is the index.
    pub fn pools(&self) -> Vec<(usize, &str, &[u64])> {
        self.tenants
            .iter()
            .enumerate()
            .flat_map(|(index, tenant)| {
                tenant
                    .pools
                    .iter()
                    .map(move |(name, numbers)| (index, name.as_str(), numbers.as_slice()))
            })
            .collect()
    }
}

/// `quiet_hours = { allowed_from = "09:00", allowed_to = "21:00", categories = ["marketing"] }`:
/// outside those local hours such sends wait for the next allowed minute.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursConfig {
    pub allowed_from: String,
    pub allowed_to: String,
    /// The categories held (marketing when absent).
    #[serde(default = "marketing_only")]
    pub categories: Vec<String>,
}

fn marketing_only() -> Vec<String> {
    vec!["marketing".into()]
}

impl QuietHoursConfig {
    /// The rule this config says, or why it cannot be one.
    pub fn rule(&self) -> Result<wagate_rules::quiet_hours::QuietHours, String> {
        let minute = |text: &str| -> Result<u16, String> {
            let (hours, minutes) = text
                .split_once(':')
                .ok_or_else(|| format!("'{text}' is not HH:MM"))?;
            match (hours.parse::<u16>(), minutes.parse::<u16>()) {
                (Ok(h), Ok(m)) if h < 24 && m < 60 && minutes.len() == 2 => Ok(h * 60 + m),
                _ => Err(format!("'{text}' is not HH:MM")),
            }
        };
        let mut held = 0u8;
        for name in &self.categories {
            let category = wagate_rules::template::model::Category::ALL
                .into_iter()
                .find(|c| c.name() == name.as_str())
                .filter(|c| *c != wagate_rules::template::model::Category::Service)
                .ok_or_else(|| format!("'{name}' is not marketing, utility or authentication"))?;
            held |= 1 << category as u8;
        }
        let (from, to) = (minute(&self.allowed_from)?, minute(&self.allowed_to)?);
        if from == to {
            return Err("allowed_from and allowed_to are the same minute".into());
        }
        Ok(wagate_rules::quiet_hours::QuietHours {
            allowed_from_minute: from,
            allowed_to_minute: to,
            held,
        })
    }
}

/// Whose a person's consent is.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    #[default]
    Business,
    Number,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberSeed {
    pub id: u64,
    pub account: u64,
    pub portfolio: u64,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub throughput_mps: Option<u32>,
    /// The number as people see it (E.164); Meta's number webhooks name it this way.
    #[serde(default)]
    pub display_phone_number: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1 << 20,
            max_bulk_bytes: 64 << 20,
            max_body_bytes_held: 256 << 20,
            max_pending_messages: 200_000,
            shutdown_grace_secs: 30,
            metrics_token: String::new(),
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            idle_timeout_secs: 60,
            max_connections: 10_000,
            public_url: String::new(),
        }
    }
}

impl Default for StorageConfig {
    /// The embedded engine's defaults ([`WagateConfig`]).
    fn default() -> Self {
        let engine = WagateConfig::default();
        StorageConfig {
            data_dir: engine.data_dir,
            sync: engine.sync,
            idempotency_retention_secs: engine.idempotency_retention_secs,
            commit_interval_us: u64::try_from(engine.commit_interval.as_micros())
                .unwrap_or(u64::MAX),
        }
    }
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            profile: "whatsapp-2021".into(),
            shards: 2,
            marketing_cap_per_day: 2,
            schedule_horizon_secs: 60,
            apply_projected_upgrades: false,
            rate_cards_dir: String::new(),
        }
    }
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            mode: ClockMode::System,
            start_unix_secs: 1_767_225_600, // 2026-01-01
        }
    }
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            base_url: "https://graph.facebook.com".into(),
            api_version: "v23.0".into(),
            access_token: String::new(),
            app_secret: String::new(),
            verify_token: String::new(),
            max_concurrency: 256,
            max_concurrency_per_number: 32,
            request_timeout_ms: 10_000,
            sync_interval_secs: 0,
        }
    }
}

/// Environment variables that override keys: `WAGATE__HTTP__LISTEN=...` sets `http.listen`.
pub const ENV_PREFIX: &str = "WAGATE__";

impl ServerConfig {
    /// The numbers of tenants that bring their own Meta access token, with that token.
    pub fn tenant_meta_tokens(&self) -> std::collections::HashMap<u64, String> {
        self.tenants
            .iter()
            .filter_map(|t| Some((t, t.meta_access_token.clone()?)))
            .flat_map(|(t, token)| t.numbers.iter().map(move |n| (*n, token.clone())))
            .collect()
    }

    /// The config from `text` (TOML), then each override in order: `key.path=value`, where
    /// the value is read as TOML when it parses and as a string otherwise.
    pub fn load(text: &str, overrides: &[(String, String)]) -> Result<Self, ServerConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ServerConfigError::Syntax(e.to_string()))?;
        for (key, value) in overrides {
            apply_override(&mut table, key, value)?;
        }
        let config: ServerConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| ServerConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Overrides from the environment (`WAGATE__SECTION__KEY`), in a stable order.
    pub fn env_overrides(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = vars
            .filter_map(|(name, value)| {
                let path = name.strip_prefix(ENV_PREFIX)?;
                Some((path.to_lowercase().replace("__", "."), value))
            })
            .collect();
        found.sort();
        found
    }

    fn validate(&self) -> Result<(), ServerConfigError> {
        let invalid = |m: String| Err(ServerConfigError::Invalid(m));
        if let Some(problem) = self.cluster.iter().flat_map(|c| c.problems()).next() {
            return invalid(problem);
        }
        let mut tokens = std::collections::HashSet::new();
        let mut numbers = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for tenant in &self.tenants {
            // A tenant's name keys what is kept for it (its forwards wait under it, its
            // metrics are labelled with it): one of a kind, and short.
            if tenant.name.is_empty() || tenant.name.len() > MAX_TENANT_NAME_BYTES {
                return invalid(format!(
                    "tenant '{}': a name is 1 to {MAX_TENANT_NAME_BYTES} bytes",
                    tenant.name.chars().take(64).collect::<String>()
                ));
            }
            if !names.insert(tenant.name.as_str()) {
                return invalid(format!(
                    "tenant '{}': another tenant has this name",
                    tenant.name
                ));
            }
            if let Some(number) = tenant.numbers.iter().find(|n| !numbers.insert(**n)) {
                return invalid(format!(
                    "tenant '{}': number {number} already belongs to another tenant",
                    tenant.name
                ));
            }
            if tenant.token.len() < 16 {
                return invalid(format!(
                    "tenant '{}': the token must be at least 16 characters",
                    tenant.name
                ));
            }
            if !tokens.insert(tenant.token.as_str()) || tenant.token == self.admin.token {
                return invalid(format!("tenant '{}': the token is not unique", tenant.name));
            }
            if let Some(why) = tenant
                .automations
                .iter()
                .find_map(AutomationConfig::problem)
            {
                return invalid(format!("tenant '{}': automations: {why}", tenant.name));
            }
            for (name, pool) in &tenant.pools {
                if name.is_empty()
                    || pool.is_empty()
                    || pool.len() > MAX_POOL_NUMBERS
                    || pool.iter().any(|n| !tenant.numbers.contains(n))
                {
                    return invalid(format!(
                        "tenant '{}': pool '{name}' holds 1 to {MAX_POOL_NUMBERS} of the tenant's own numbers",
                        tenant.name
                    ));
                }
            }
            if let Some(Err(why)) = tenant.quiet_hours.as_ref().map(QuietHoursConfig::rule) {
                return invalid(format!("tenant '{}': quiet_hours: {why}", tenant.name));
            }
            let confirmation = tenant.opt_out_confirmation.as_deref().map(str::trim);
            if confirmation.is_some_and(|text| text.is_empty() || text.chars().count() > 4_096) {
                return invalid(format!(
                    "tenant '{}': opt_out_confirmation must be 1 to 4,096 characters",
                    tenant.name
                ));
            }
            if tenant.callback_url.is_some() && tenant.callback_secret.is_empty() {
                return invalid(format!(
                    "tenant '{}': a callback_url needs a callback_secret",
                    tenant.name
                ));
            }
        }
        let mut keywords = vec![("consent.keywords".to_string(), &self.consent.keywords)];
        keywords.extend(
            self.tenants
                .iter()
                .map(|t| (format!("tenant '{}': keywords", t.name), &t.keywords)),
        );
        for (whose, languages) in keywords {
            if let Err(error) = keyword_config::merged(languages).validate() {
                return invalid(format!("{whose}: {error}"));
            }
        }
        if let Err(error) = wagate_rules::topics::TopicNames::new(&self.consent.topics) {
            return invalid(format!("consent.topics: {error}"));
        }
        if !self.admin.token.is_empty() && self.admin.token.len() < 16 {
            return invalid("admin.token must be at least 16 characters".into());
        }
        if self.http.max_body_bytes_held < self.http.max_body_bytes.max(self.http.max_bulk_bytes) {
            return invalid(
                "http.max_body_bytes_held must be at least http.max_body_bytes and http.max_bulk_bytes"
                    .into(),
            );
        }
        let public_url = &self.http.public_url;
        let absolute = public_url.starts_with("http://") || public_url.starts_with("https://");
        if !public_url.is_empty() && !absolute {
            return invalid(format!(
                "http.public_url must start with http:// or https://, not '{public_url}'"
            ));
        }
        if !self.http.metrics_token.is_empty() && self.http.metrics_token.len() < 16 {
            return invalid("http.metrics_token must be at least 16 characters".into());
        }
        if self.http.max_pending_messages == 0 {
            return invalid("http.max_pending_messages must be positive".into());
        }
        let http = &self.http;
        if !(1..=3_600_000).contains(&http.header_read_timeout_ms)
            || !(1..=3_600_000).contains(&http.body_read_timeout_ms)
            || !(1..=86_400).contains(&http.idle_timeout_secs)
        {
            return invalid(
                "http.header_read_timeout_ms and body_read_timeout_ms must be from 1 to \
                 3600000, http.idle_timeout_secs from 1 to 86400"
                    .into(),
            );
        }
        if http.max_connections == 0 {
            return invalid("http.max_connections must be positive".into());
        }
        if self.meta.max_concurrency == 0 || self.meta.max_concurrency_per_number == 0 {
            return invalid("meta.max_concurrency settings must be positive".into());
        }
        // Where accepted messages go is checked now, not found out by every send failing.
        if let Err(why) = http_url(&self.meta.base_url) {
            return invalid(format!("meta.base_url '{}' {why}", self.meta.base_url));
        }
        for tenant in &self.tenants {
            if let Some(url) = &tenant.callback_url {
                if let Err(why) = http_url(url) {
                    return invalid(format!(
                        "tenant '{}': callback_url '{url}' {why}",
                        tenant.name
                    ));
                }
            }
        }
        let version = self.meta.api_version.strip_prefix('v').unwrap_or("");
        let numeric = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !version
            .split_once('.')
            .is_some_and(|(a, b)| numeric(a) && numeric(b))
        {
            return invalid(format!(
                "meta.api_version '{}' is not a Graph API version such as v23.0",
                self.meta.api_version
            ));
        }
        if !(1..=600_000).contains(&self.meta.request_timeout_ms) {
            return invalid("meta.request_timeout_ms must be from 1 to 600000".into());
        }
        let start = Timestamp::checked_from_unix_secs(self.clock.start_unix_secs);
        if start.is_none_or(|at| at.unix_secs() < COMPACT_EPOCH_UNIX_SECS) {
            return invalid(format!(
                "clock.start_unix_secs {} is outside wagate's range (2020 to {})",
                self.clock.start_unix_secs,
                Timestamp::LATEST
            ));
        }
        Ok(())
    }
}

impl ServerConfig {
    /// What this config allows but an operator should know at start (logged as warnings):
    /// settings that work but are likely a mistake outside a test.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let exposed = |listen: &SocketAddr| !listen.ip().is_loopback();
        if self.http.metrics_token.is_empty() && exposed(&self.http.listen) {
            warnings.push(format!(
                "/metrics is open to anyone who reaches {} (http.metrics_token is empty)",
                self.http.listen
            ));
        }
        if self.clock.mode == ClockMode::Manual {
            warnings.push(
                "clock.mode is manual: time moves only through the admin API (for tests and \
                 simulations; queued sends are not released as real time passes)"
                    .into(),
            );
        }
        if self.meta.app_secret.is_empty() {
            warnings.push(
                "meta.app_secret is empty: Meta's webhooks cannot be verified and are refused, so \
                 statuses, replies and quality changes do not arrive"
                    .into(),
            );
        }
        for tenant in self.tenants.iter().filter(|t| t.callback_url.is_none()) {
            warnings.push(format!(
                "tenant '{}' has no callback_url: Meta's webhooks for its numbers are applied \
                 but not forwarded to it",
                tenant.name
            ));
        }
        warnings
    }
}

/// Whether `url` is an absolute http(s) URL with a host; why not otherwise.
fn http_url(url: &str) -> Result<(), &'static str> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| "is not a URL (it must look like https://graph.facebook.com)")?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("must start with https:// or http://");
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../wagate.example.toml");

    #[test]
    fn settings_likely_to_be_mistakes_are_warned_about_and_a_careful_config_is_not() {
        let careless = ServerConfig::load(
            "[http]\nlisten = \"0.0.0.0:8080\"\n[clock]\nmode = \"manual\"\n\
             [[tenants]]\nname = \"t\"\ntoken = \"tenant-token-0123456789\"\nnumbers = [1]\n",
            &[],
        )
        .expect("valid");
        let warnings = careless.warnings().join("\n");
        for said in [
            "/metrics is open",
            "clock.mode is manual",
            "meta.app_secret",
            "'t' has no callback_url",
        ] {
            assert!(warnings.contains(said), "{said}: {warnings}");
        }
        let careful = ServerConfig::load(
            "[http]\nlisten = \"0.0.0.0:8080\"\nmetrics_token = \"metrics-token-0123456789\"\n\
             [meta]\napp_secret = \"s\"\n",
            &[],
        )
        .expect("valid");
        assert_eq!(careful.warnings(), Vec::<String>::new());
    }

    #[test]
    fn the_commented_example_parses_and_states_the_defaults() {
        let example = ServerConfig::load(EXAMPLE, &[]).unwrap();
        let defaults = ServerConfig::load("", &[]).unwrap();
        assert_eq!(example.http.listen, defaults.http.listen);
        assert_eq!(example.grpc.listen, defaults.grpc.listen);
        assert_eq!(example.http.max_body_bytes, defaults.http.max_body_bytes);
        assert_eq!(example.http.max_bulk_bytes, defaults.http.max_bulk_bytes);
        assert_eq!(
            example.http.max_pending_messages,
            defaults.http.max_pending_messages
        );
        assert_eq!(example.storage.data_dir, defaults.storage.data_dir);
        assert_eq!(example.storage.sync, defaults.storage.sync);
        assert_eq!(
            example.storage.commit_interval_us,
            defaults.storage.commit_interval_us
        );
        assert_eq!(example.engine.profile, defaults.engine.profile);
        assert_eq!(example.engine.shards, defaults.engine.shards);
        assert_eq!(example.clock.mode, defaults.clock.mode);
        assert_eq!(example.meta.base_url, defaults.meta.base_url);
        assert_eq!(example.meta.api_version, defaults.meta.api_version);
        assert_eq!(example.tenants[0].numbers, vec![106_540_352_242_922]);
        assert_eq!(example.tenants[0].on_limit, OnLimit::Queue);
        assert_eq!(example.numbers[0].throughput_mps, Some(80));
    }

    #[test]
    fn the_command_line_and_environment_override_key_by_key() {
        let env = ServerConfig::env_overrides(
            [
                (
                    "WAGATE__HTTP__LISTEN".to_string(),
                    "127.0.0.1:0".to_string(),
                ),
                (
                    "WAGATE__STORAGE__DATA_DIR".to_string(),
                    "/tmp/x".to_string(),
                ),
                ("PATH".to_string(), "/bin".to_string()),
            ]
            .into_iter(),
        );
        assert_eq!(env.len(), 2);
        let mut overrides = env;
        overrides.push(("clock.mode".into(), "manual".into()));
        overrides.push(("engine.shards".into(), "3".into()));
        let config = ServerConfig::load(EXAMPLE, &overrides).unwrap();
        assert_eq!(config.http.listen.port(), 0);
        assert_eq!(config.storage.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.clock.mode, ClockMode::Manual);
        assert_eq!(config.engine.shards, 3);
    }

    #[test]
    fn mistakes_are_refused_with_the_key_named() {
        let error = ServerConfig::load("[http]\nlisen = \"x\"", &[]).unwrap_err();
        assert!(error.to_string().contains("lisen"), "{error}");
        let short = "[[tenants]]\nname = \"a\"\ntoken = \"short\"\nnumbers = [1]";
        assert!(ServerConfig::load(short, &[]).is_err());
        let twice = "[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nnumbers = [1]\n\
                     [[tenants]]\nname = \"b\"\ntoken = \"0123456789abcdef\"\nnumbers = [2]";
        assert!(ServerConfig::load(twice, &[]).is_err());
        let shared = "[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nnumbers = [1]\n\
                      [[tenants]]\nname = \"b\"\ntoken = \"0123456789abcdeg\"\nnumbers = [1]";
        assert!(ServerConfig::load(shared, &[]).is_err());
        let same_name = "[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nnumbers = [1]\n\
                         [[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdeg\"\nnumbers = [2]";
        let error = ServerConfig::load(same_name, &[]).unwrap_err();
        assert!(
            error.to_string().contains("another tenant has this name"),
            "{error}"
        );
        for name in [String::new(), "n".repeat(MAX_TENANT_NAME_BYTES + 1)] {
            let named = format!(
                "[[tenants]]\nname = \"{name}\"\ntoken = \"0123456789abcdef\"\nnumbers = [1]"
            );
            let error = ServerConfig::load(&named, &[]).unwrap_err();
            assert!(
                error.to_string().contains("a name is 1 to 256 bytes"),
                "{error}"
            );
        }
        let longest = format!(
            "[[tenants]]\nname = \"{}\"\ntoken = \"0123456789abcdef\"\nnumbers = [1]",
            "n".repeat(MAX_TENANT_NAME_BYTES)
        );
        assert!(ServerConfig::load(&longest, &[]).is_ok());
        assert!(ServerConfig::load("", &[("http.listen".into(), "nonsense".into())]).is_err());
        // A consent word that both stops and resumes, the operator's or a tenant's.
        let both = "[consent.keywords.en]\nopt_out = [\"STOP\"]\nopt_in = [\"stop\"]";
        let error = ServerConfig::load(both, &[]).unwrap_err();
        assert!(error.to_string().contains("consent.keywords"), "{error}");
        let tenant = "[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nnumbers = [1]\n\
                      [tenants.keywords.pt]\nopt_out = [\"PARE\"]\nopt_in = [\" pare\"]";
        let error = ServerConfig::load(tenant, &[]).unwrap_err();
        assert!(error.to_string().contains("tenant 'a'"), "{error}");
        let blank = "[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nnumbers = [1]\n\
                     opt_out_confirmation = \"  \"";
        let error = ServerConfig::load(blank, &[]).unwrap_err();
        assert!(
            error.to_string().contains("opt_out_confirmation"),
            "{error}"
        );
        let topics = "[consent]\ntopics = [\"utility\"]";
        let error = ServerConfig::load(topics, &[]).unwrap_err();
        assert!(error.to_string().contains("consent.topics"), "{error}");
    }

    #[test]
    fn an_automation_has_one_trigger_and_a_status_s_follow_up_is_a_template_within_a_week() {
        let tenant = |automation: &str| {
            format!(
                "[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nnumbers = [1]\n\
                 [[tenants.automations]]\n{automation}"
            )
        };
        let good = "status = \"read\"\ntemplate = \"t\"\nafter_secs = 3600";
        assert!(ServerConfig::load(&tenant(good), &[]).is_ok());
        for (wrong, says) in [
            (
                "status = \"read\"\nkeyword = \"hi\"\ntemplate = \"t\"",
                "exactly one",
            ),
            (
                "status = \"sent\"\ntemplate = \"t\"",
                "delivered, read and failed",
            ),
            ("status = \"read\"\ntext = \"hi\"", "is a template"),
            (
                "status = \"failed\"\ntemplate = \"t\"\nafter_secs = 604801",
                "a week",
            ),
            (
                "keyword = \"hi\"\ntext = \"t\"\nafter_secs = 5",
                "status automation",
            ),
        ] {
            let error = ServerConfig::load(&tenant(wrong), &[]).unwrap_err();
            assert!(error.to_string().contains(says), "{wrong}: {error}");
        }
    }

    #[test]
    fn urls_versions_timeouts_and_the_clock_are_checked_at_start() {
        let refused = |key: &str, value: &str, says: &str| {
            let error = ServerConfig::load("", &[(key.into(), value.into())]).unwrap_err();
            assert!(error.to_string().contains(says), "{key} = {value}: {error}");
        };
        refused(
            "meta.base_url",
            "ht!tp://graph.facebook .com",
            "meta.base_url",
        );
        refused("meta.base_url", "ftp://graph.facebook.com", "https://");
        refused("meta.base_url", "graph.facebook.com", "meta.base_url");
        refused("meta.api_version", "23", "meta.api_version");
        refused("meta.request_timeout_ms", "0", "request_timeout_ms");
        refused(
            "clock.start_unix_secs",
            "18446744073709551615",
            "clock.start_unix_secs",
        );
        refused("clock.start_unix_secs", "1000", "clock.start_unix_secs");
        let callback = "[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\n\
                        numbers = [1]\ncallback_url = \"not a url\"\ncallback_secret = \"s\"";
        let error = ServerConfig::load(callback, &[]).unwrap_err();
        assert!(error.to_string().contains("callback_url"), "{error}");
        for good in ["http://127.0.0.1:18090", "https://graph.facebook.com"] {
            assert!(ServerConfig::load("", &[("meta.base_url".into(), good.into())]).is_ok());
        }
    }

    #[test]
    fn quiet_hours_read_as_local_minutes_and_name_real_categories() {
        let quiet = |from: &str, to: &str, categories: &[&str]| QuietHoursConfig {
            allowed_from: from.into(),
            allowed_to: to.into(),
            categories: categories.iter().map(|c| c.to_string()).collect(),
        };
        let rule = quiet("09:00", "21:30", &["marketing", "utility"])
            .rule()
            .unwrap();
        assert_eq!(
            (rule.allowed_from_minute, rule.allowed_to_minute),
            (540, 1_290)
        );
        assert_eq!(rule.held, 0b11);
        for wrong in [
            quiet("9", "21:00", &["marketing"]),
            quiet("09:00", "24:00", &["marketing"]),
            quiet("09:00", "09:00", &["marketing"]),
            quiet("09:00", "21:00", &["service"]),
            quiet("09:00", "21:00", &["promotions"]),
        ] {
            assert!(wrong.rule().is_err(), "{wrong:?}");
        }
    }
}
