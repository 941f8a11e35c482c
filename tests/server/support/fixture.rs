//! One wagate server for a test: its own data directory, a Meta stand-in it dispatches to, a
//! tenant webhook receiver it forwards to, two tenants and an admin token.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use wagate::server::grpc::proto::messaging_client::MessagingClient;
use wagate_loadgen::mock_meta::{start as start_mock_meta, Faults, MockMeta, MockMetaConfig};
use wagate_loadgen::oracle::{NumberLimits, OracleConfig};

use crate::support::meta_stub::Stub;
use crate::support::process::WagateProcess;
use crate::support::web::{Answer, Web};

pub(crate) const ADMIN: &str = "admin-token-0123456789";
/// Tenant alpha owns `NUMBER_A` and has a callback (the sink).
pub(crate) const ALPHA: &str = "alpha-token-0123456789";
/// Tenant beta owns `NUMBER_B`.
pub(crate) const BETA: &str = "beta-token-01234567890";
pub(crate) const NUMBER_A: u64 = 1001;
/// Tenant alpha's second number, of the same business (account 1) as `NUMBER_A`.
pub(crate) const NUMBER_A2: u64 = 1002;
pub(crate) const NUMBER_B: u64 = 2001;
/// How people (and Meta's number webhooks) know `NUMBER_A`.
pub(crate) const DISPLAY_A: u64 = 15_550_001_001;
pub(crate) const APP_SECRET: &str = "meta-app-secret-for-tests";
pub(crate) const CALLBACK_SECRET: &str = "alpha-callback-secret";
pub(crate) const META_TOKEN: &str = "meta-access-token";
/// Tenant beta brings its own Meta access token.
pub(crate) const BETA_META_TOKEN: &str = "beta-own-meta-token";
pub(crate) const START_UNIX: u64 = 1_767_225_600;

pub(crate) struct Fixture {
    pub(crate) dir: PathBuf,
    pub(crate) meta: Stub,
    pub(crate) sink: Stub,
    pub(crate) web: Web,
    pub(crate) wagate: Option<WagateProcess>,
    extra: String,
    args: Vec<String>,
    /// Where the server's log goes, when a test reads it.
    log: Option<PathBuf>,
}

/// A data directory of its own for each test.
pub(crate) fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wagate-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the test directory");
    dir
}

/// HMAC-SHA256 of `body`, as Meta's `X-Hub-Signature-256` header spells it: the load
/// generator's code (from the hmac crate directly), so the server's own signing code is not
/// checking itself.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    wagate_loadgen::mock_meta::sign(secret, body)
}

/// A gRPC request carrying `token` as its bearer credentials.
pub(crate) fn authorised<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a valid header"),
    );
    request
}

/// The template most tests send.
pub(crate) const ORDER_UPDATE: &str = "Hello {{1}}, your order shipped.";

impl Fixture {
    /// Starts wagate with a manual clock; `extra` is appended to the config (TOML).
    pub(crate) async fn start(name: &str, extra: &str) -> Result<Fixture> {
        Self::start_with(name, extra, &[]).await
    }

    /// Like [`Fixture::start`], with command-line overrides (`--clock.mode`, `system`, ...).
    pub(crate) async fn start_with(name: &str, extra: &str, args: &[&str]) -> Result<Fixture> {
        Self::starting(name, extra, args, false).await
    }

    /// Like [`Fixture::start_with`], the server's log kept in a file ([`Fixture::log`]).
    pub(crate) async fn start_logged(name: &str, extra: &str, args: &[&str]) -> Result<Fixture> {
        Self::starting(name, extra, args, true).await
    }

    async fn starting(name: &str, extra: &str, args: &[&str], logged: bool) -> Result<Fixture> {
        let dir = fresh_dir(name);
        let mut fixture = Fixture {
            log: logged.then(|| dir.join("wagate.log")),
            dir,
            meta: Stub::start().await?,
            sink: Stub::start().await?,
            web: Web::default(),
            wagate: None,
            extra: extra.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        fixture.restart()?;
        Ok(fixture)
    }

    /// What the server has logged so far (with [`Fixture::start_logged`]).
    pub(crate) fn log(&self) -> Result<String> {
        let path = self
            .log
            .as_ref()
            .context("the log goes to standard error")?;
        Ok(std::fs::read_to_string(path)?)
    }

    fn config(&self) -> String {
        format!(
            r#"
[storage]
data_dir = "{data}"

[clock]
mode = "manual"
start_unix_secs = {START_UNIX}

[meta]
base_url = "{meta}"
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
numbers = [{NUMBER_A}, {NUMBER_A2}]
callback_url = "{sink}/hook"
callback_secret = "{CALLBACK_SECRET}"

[[tenants]]
name = "beta"
token = "{BETA}"
numbers = [{NUMBER_B}]
meta_access_token = "{BETA_META_TOKEN}"

[[numbers]]
id = {NUMBER_A}
account = 1
portfolio = 1
throughput_mps = 1000
display_phone_number = "+{DISPLAY_A}"

[[numbers]]
id = {NUMBER_A2}
account = 1
portfolio = 1
throughput_mps = 1000

[[numbers]]
id = {NUMBER_B}
account = 2
portfolio = 2
throughput_mps = 1000
{extra}
"#,
            data = self.dir.join("data").display(),
            meta = self.meta.url(),
            sink = self.sink.url(),
            extra = self.extra,
        )
    }

    /// (Re)starts the server process on the same data directory.
    pub(crate) fn restart(&mut self) -> Result<()> {
        let path = self.dir.join("wagate.toml");
        std::fs::write(&path, self.config())?;
        self.wagate = Some(WagateProcess::start_logging(
            &path,
            &self.args,
            self.log.as_deref(),
        )?);
        Ok(())
    }

    pub(crate) fn server(&self) -> &WagateProcess {
        self.wagate.as_ref().expect("the server is running")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        self.server().url(path)
    }

    /// Stops the server with SIGTERM; fails unless it exits cleanly.
    pub(crate) fn stop(&mut self) -> Result<()> {
        let status = self.wagate.take().expect("running").stop()?;
        if !status.success() {
            bail!("wagate exited with {status}");
        }
        Ok(())
    }

    pub(crate) async fn admin(&self, path: &str, body: Value) -> Result<Answer> {
        self.web.post(&self.url(path), ADMIN, &body, &[]).await
    }

    pub(crate) async fn opt_in(&self, number: u64, people: &[String]) -> Result<()> {
        let answer = self
            .admin(
                "/wagate/admin/contacts/consent",
                json!({ "phone_number_id": number.to_string(), "to": people, "change": "opt_in" }),
            )
            .await?;
        if answer.status != 200 {
            bail!("opt-in failed: {}", answer.text());
        }
        Ok(())
    }

    /// Creates a template of account 1 and moves it to `approved`.
    pub(crate) async fn approved_template(
        &self,
        name: &str,
        category: &str,
        body: &str,
    ) -> Result<()> {
        self.approved_template_of(1, name, category, body).await
    }

    /// Creates a template of `account` and moves it to `approved`.
    pub(crate) async fn approved_template_of(
        &self,
        account: u64,
        name: &str,
        category: &str,
        body: &str,
    ) -> Result<()> {
        let created = self
            .admin(
                "/wagate/admin/templates",
                json!({ "account": account, "name": name, "language": "en_US",
                        "category": category, "body": body }),
            )
            .await?;
        if created.status != 200 {
            bail!("template creation failed: {}", created.text());
        }
        for status in ["in_review", "approved"] {
            let moved = self
                .admin(
                    "/wagate/admin/templates/status",
                    json!({ "account": account, "name": name, "language": "en_US",
                            "status": status }),
                )
                .await?;
            if moved.status != 200 {
                bail!("template status failed: {}", moved.text());
            }
        }
        Ok(())
    }

    /// `people` opted in to `NUMBER_A` and `order_update` approved: ready for templates.
    pub(crate) async fn ready_to_send(&self, people: &[String]) -> Result<()> {
        self.opt_in(NUMBER_A, people).await?;
        self.approved_template("order_update", "utility", ORDER_UPDATE)
            .await
    }

    /// A fresh server (`extra` config) with `person(who)` opted in to `NUMBER_A` and
    /// `order_update` approved: most tests' start; the fixture and the person.
    pub(crate) async fn ready_for(name: &str, extra: &str, who: u64) -> Result<(Fixture, String)> {
        let f = Fixture::start(name, extra).await?;
        let to = person(who);
        f.ready_to_send(std::slice::from_ref(&to)).await?;
        Ok((f, to))
    }

    /// A gRPC client of the running server.
    pub(crate) async fn grpc_client(&self) -> Result<MessagingClient<tonic::transport::Channel>> {
        let channel = tonic::transport::Channel::from_shared(self.server().grpc.clone())?
            .connect()
            .await?;
        Ok(MessagingClient::new(channel))
    }

    pub(crate) async fn template_status(&self, name: &str, status: &str) -> Result<Answer> {
        self.admin(
            "/wagate/admin/templates/status",
            json!({ "account": 1, "name": name, "language": "en_US", "status": status }),
        )
        .await
    }

    pub(crate) async fn send(
        &self,
        token: &str,
        number: u64,
        request: &Value,
        extra: &[(&str, &str)],
    ) -> Result<Answer> {
        self.web
            .post(
                &self.url(&format!("/v23.0/{number}/messages")),
                token,
                request,
                extra,
            )
            .await
    }

    /// Tenant alpha sends `order_update` (for Ada) from `NUMBER_A` to `to`: most tests' send.
    pub(crate) async fn send_update(&self, to: &str) -> Result<Answer> {
        self.send(
            ALPHA,
            NUMBER_A,
            &template_send(to, "order_update", &["Ada"]),
            &[],
        )
        .await
    }

    /// POSTs NDJSON lines to the bulk endpoint as the tenant with `token`.
    pub(crate) async fn bulk(&self, token: &str, ndjson: String) -> Result<Answer> {
        post_bulk(&self.web, &self.url("/wagate/v1/bulk"), token, ndjson).await
    }

    /// POSTs `body` as Meta would, signed with `signature` (the right one when `None`).
    pub(crate) async fn meta_webhook(
        &self,
        body: &Value,
        signature_header: Option<&str>,
    ) -> Result<Answer> {
        let bytes = body.to_string();
        let right = signature(APP_SECRET, bytes.as_bytes());
        let header = signature_header.unwrap_or(&right);
        self.web
            .request(
                hyper::Method::POST,
                &self.url("/webhooks/meta"),
                &[
                    ("content-type", "application/json"),
                    ("x-hub-signature-256", header),
                ],
                bytes,
            )
            .await
    }

    /// What the admin API says of `person` through `number` (consent, window...).
    pub(crate) async fn contact(&self, number: u64, person: &str) -> Result<Value> {
        let url = self.url(&format!("/wagate/admin/contacts/{number}/{person}"));
        Ok(self.web.get(&url, ADMIN).await?.json())
    }

    pub(crate) async fn message(&self, token: &str, id: &str) -> Result<Answer> {
        self.web
            .get(&self.url(&format!("/wagate/v1/messages/{id}")), token)
            .await
    }

    /// Waits until the message's state satisfies `done` (the server works asynchronously).
    pub(crate) async fn wait_message(
        &self,
        id: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let view = self.message(ADMIN, id).await?.json();
            if done(&view) {
                return Ok(view);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("message {id} did not get there within {limit:?}: {view}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// mock-meta (judging sends by Meta's rules, at the fixture numbers' own 1,000 a second, with
/// `faults`) and a server started with `args` that dispatches to it; mock-meta's webhooks go to
/// the server. Returns mock-meta, its base URL and the server.
pub(crate) async fn with_mock_meta(
    name: &str,
    faults: Faults,
    args: &[&str],
) -> Result<(MockMeta, String, Fixture)> {
    let limits = NumberLimits {
        messages_per_second: 1_000,
        tier_limit: 1_000,
    };
    with_mock_meta_upgrading(name, faults, args, limits, None).await
}

/// [`with_mock_meta`] with the fixture numbers' `limits` at Meta, where mock-meta raises a
/// number's tier under `upgrade` (and tells wagate by Meta's webhook, naming `NUMBER_A` by
/// `DISPLAY_A` or by its account, 1).
pub(crate) async fn with_mock_meta_upgrading(
    name: &str,
    faults: Faults,
    args: &[&str],
    limits: NumberLimits,
    upgrade: Option<wagate_loadgen::oracle::UpgradeRule>,
) -> Result<(MockMeta, String, Fixture)> {
    let config = mock_meta_config(faults, limits, upgrade)?;
    with_mock_meta_config(name, config, "", args).await
}

/// mock-meta's configuration for the fixture: `order_update` approved, the fixture numbers'
/// `limits`, `faults`, Meta's upgrades under `upgrade`, `NUMBER_A` named by `DISPLAY_A` and
/// account 1, groups kept by Meta's Groups API.
pub(crate) fn mock_meta_config(
    faults: Faults,
    limits: NumberLimits,
    upgrade: Option<wagate_loadgen::oracle::UpgradeRule>,
) -> Result<MockMetaConfig> {
    Ok(MockMetaConfig {
        listen: "127.0.0.1:0".parse()?,
        webhook_url: None,
        app_secret: APP_SECRET.into(),
        templates: vec![("order_update".into(), "en_US".into())],
        rules: OracleConfig {
            numbers: [NUMBER_A, NUMBER_B]
                .into_iter()
                .map(|n| (n.to_string(), limits))
                .collect(),
            upgrade,
            ..OracleConfig::default()
        },
        faults,
        displays: vec![(NUMBER_A.to_string(), DISPLAY_A.to_string())],
        accounts: vec![(NUMBER_A.to_string(), "1".to_string())],
        group_limits: Default::default(),
    })
}

/// mock-meta as `config` says, and wagate (with `extra` configuration and `args`) sending to
/// it and hearing its webhooks.
pub(crate) async fn with_mock_meta_config(
    name: &str,
    config: MockMetaConfig,
    extra: &str,
    args: &[&str],
) -> Result<(MockMeta, String, Fixture)> {
    let mock = start_mock_meta(config).await?;
    let base = format!("http://{}", mock.addr);
    let mut all = vec!["--meta.base_url", base.as_str()];
    all.extend_from_slice(args);
    let fixture = Fixture::start_with(name, extra, &all).await?;
    mock.set_webhook_url(&fixture.url("/webhooks/meta"));
    Ok((mock, base, fixture))
}

/// [`with_mock_meta`] with no faults and no more arguments.
pub(crate) async fn with_plain_mock_meta(name: &str) -> Result<(MockMeta, String, Fixture)> {
    with_mock_meta(name, Faults::default(), &[]).await
}

impl Drop for Fixture {
    /// Stops the server if it still runs and removes the test's data directory.
    fn drop(&mut self) {
        drop(self.wagate.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of the sample `name` (with its labels, as `/metrics` writes them) in `metrics`.
pub(crate) fn metric_value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

/// NDJSON for the bulk endpoint: one utility template from `NUMBER_A` to each of `people`.
pub(crate) fn bulk_of(people: &[String]) -> String {
    people
        .iter()
        .map(|to| {
            json!({ "phone_number_id": NUMBER_A.to_string(),
                    "request": template_send(to, "order_update", &["Ada"]) })
            .to_string()
                + "\n"
        })
        .collect()
}

/// The message id in a send's answer (empty when there is none).
pub(crate) fn sent_id(body: &Value) -> String {
    body["messages"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Moves the server's manual clock on by `secs`.
pub(crate) async fn advance(f: &Fixture, secs: u64) -> Result<()> {
    let moved = f
        .admin("/wagate/admin/clock", json!({ "advance_secs": secs }))
        .await?;
    if moved.status != 200 {
        bail!("moving the clock: {}", moved.text());
    }
    Ok(())
}

/// Waits until queued message `id` was refused when its turn came, for a reason starting
/// with `reason`; its state.
pub(crate) async fn refused_at_its_turn(f: &Fixture, id: &str, reason: &str) -> Result<Value> {
    let view = f
        .wait_message(id, Duration::from_secs(20), |v| v["status"] == "refused")
        .await?;
    if !view["error"].as_str().unwrap_or("").starts_with(reason) {
        bail!("{id} was refused, but not as {reason}: {view}");
    }
    Ok(view)
}

/// Waits until Meta has at least `count` sends; their recipients, in order.
pub(crate) async fn recipients_at_meta(f: &Fixture, count: usize) -> Result<Vec<String>> {
    Ok(f.meta
        .wait_for(count, Duration::from_secs(20))
        .await?
        .iter()
        .map(|r| r.json()["to"].as_str().unwrap_or_default().to_string())
        .collect())
}

/// The admin API's usage of `number`.
pub(crate) async fn number_usage(f: &Fixture, number: u64) -> Result<Value> {
    Ok(f.web
        .get(
            &f.url(&format!("/wagate/admin/numbers/{number}/usage")),
            ADMIN,
        )
        .await?
        .json())
}

/// Meta's `account_update` restricting account 1's business-initiated messages (for 24 h).
pub(crate) fn restriction_webhook() -> Value {
    account_webhook(
        "account_update",
        json!({ "event": "ACCOUNT_RESTRICTION", "restriction_info": [{
            "restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 0 }] }),
    )
}

/// Waits until the tenant's callback got a status `status` for message `id` (wagate's own or
/// Meta's, forwarded); that status.
pub(crate) async fn told_status(f: &Fixture, id: &str, status: &str) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = f.sink.received().into_iter().find_map(|r| {
            let told = r.json()["entry"][0]["changes"][0]["value"]["statuses"][0].clone();
            (told["id"] == id && told["status"] == status).then_some(told)
        });
        if let Some(told) = found {
            return Ok(told);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the tenant was not told that {id} is {status}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn person(i: u64) -> String {
    format!("+1650555{i:04}")
}

pub(crate) fn text_send(to: &str, body: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": body } })
}

pub(crate) fn template_send(to: &str, name: &str, params: &[&str]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| json!({ "type": "text", "text": p }))
        .collect();
    json!({
        "messaging_product": "whatsapp", "to": to, "type": "template",
        "template": { "name": name, "language": { "code": "en_US" },
                      "components": [{ "type": "body", "parameters": parameters }] }
    })
}

/// POSTs NDJSON lines to the bulk endpoint at `url` (for callers that cannot borrow a
/// [`Fixture`], like spawned tasks).
pub(crate) async fn post_bulk(web: &Web, url: &str, token: &str, ndjson: String) -> Result<Answer> {
    let auth = format!("Bearer {token}");
    web.request(
        hyper::Method::POST,
        url,
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/x-ndjson"),
        ],
        ndjson,
    )
    .await
}

/// Meta's `messages` webhook with one status.
pub(crate) fn status_webhook(number: u64, wamid: &str, status: &str, recipient: &str) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550001001", "phone_number_id": number.to_string() },
            "statuses": [{ "id": wamid, "status": status, "timestamp": START_UNIX.to_string(),
                           "recipient_id": recipient }]
        }}]}]
    })
}

/// Meta's `messages` webhook with one inbound text.
pub(crate) fn inbound_webhook(number: u64, wamid: &str, from: &str, text: &str) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550001001", "phone_number_id": number.to_string() },
            "contacts": [{ "profile": { "name": "Ada" }, "wa_id": from }],
            "messages": [{ "from": from, "id": wamid, "timestamp": START_UNIX.to_string(),
                           "type": "text", "text": { "body": text } }]
        }}]}]
    })
}

/// A webhook with one change of `field` for account (WABA) 1.
pub(crate) fn account_webhook(field: &str, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": field, "value": value }] }]
    })
}
