//! The peer baseline: the checks providers commonly build on Redis 7, one Lua script per
//! message (idempotency SET NX, an opt-out set, a window hash, a pair-rate key, a per-second
//! counter, and a sorted set per number for exact unique recipients over 24 h), spoken over a
//! minimal RESP client so the baseline pays no client library's overhead.

use anyhow::{bail, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The per-message check. KEYS: idempotency key, opt-out set, window hash, pair key,
/// per-second counter, recipients sorted set. ARGV: person, now (ms), mps, tier limit, pair
/// interval (ms), pair burst, template (1 or 0), idempotency TTL (s).
pub const CHECK_SCRIPT: &str = r#"
local person, now = ARGV[1], tonumber(ARGV[2])
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[8]) then return 'duplicate' end
if redis.call('SISMEMBER', KEYS[2], person) == 1 then return 'opted_out' end
local in_window = tonumber(redis.call('HGET', KEYS[3], person) or '0') > now
if not in_window and ARGV[7] ~= '1' then return 'outside_window' end
local interval = tonumber(ARGV[5])
local tat = math.max(tonumber(redis.call('GET', KEYS[4]) or '0'), now)
if tat - now > interval * (tonumber(ARGV[6]) - 1) then return 'pair_rate' end
local in_second = redis.call('INCR', KEYS[5])
if in_second == 1 then redis.call('EXPIRE', KEYS[5], 2) end
if in_second > tonumber(ARGV[3]) then return 'throughput' end
if not in_window then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - 86400000)
  if not redis.call('ZSCORE', KEYS[6], person) then
    if redis.call('ZCARD', KEYS[6]) >= tonumber(ARGV[4]) then return 'tier_limit' end
  end
  redis.call('ZADD', KEYS[6], now, person)
end
redis.call('SET', KEYS[4], tat + interval, 'PX', interval * tonumber(ARGV[6]))
return 'accepted'
"#;

/// A RESP reply, as far as the baseline needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Text(String),
    Integer(i64),
    Nil,
    Error(String),
    Array(Vec<Reply>),
}

/// One connection to Redis.
pub struct Resp {
    stream: BufReader<TcpStream>,
    out: Vec<u8>,
}

impl Resp {
    pub async fn connect(address: &str) -> Result<Resp> {
        let stream = crate::driver::connect(address, "Redis").await?;
        Ok(Resp {
            stream: BufReader::new(stream),
            out: Vec::new(),
        })
    }

    /// Queues a command; [`Resp::flush`] sends everything queued.
    pub fn queue(&mut self, args: &[&[u8]]) {
        self.out
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            self.out
                .extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            self.out.extend_from_slice(arg);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    pub async fn flush(&mut self) -> Result<()> {
        self.stream.get_mut().write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    pub async fn read(&mut self) -> Result<Reply> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            bail!("Redis closed the connection");
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1.min(line.len()));
        Ok(match kind {
            "+" => Reply::Text(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Integer(rest.parse()?),
            "$" => {
                let length: i64 = rest.parse()?;
                if length < 0 {
                    return Ok(Reply::Nil);
                }
                let mut bytes = vec![0; length as usize + 2];
                self.stream.read_exact(&mut bytes).await?;
                bytes.truncate(length as usize);
                Reply::Text(String::from_utf8_lossy(&bytes).into_owned())
            }
            "*" => {
                let count: i64 = rest.parse()?;
                let mut items = Vec::new();
                for _ in 0..count.max(0) {
                    items.push(Box::pin(self.read()).await?);
                }
                Reply::Array(items)
            }
            _ => bail!("not a RESP reply: {line}"),
        })
    }

    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.queue(args);
        self.flush().await?;
        self.read().await
    }
}

/// Loads the check script; returns its SHA for EVALSHA.
pub async fn load_script(resp: &mut Resp) -> Result<String> {
    match resp
        .command(&[b"SCRIPT", b"LOAD", CHECK_SCRIPT.as_bytes()])
        .await?
    {
        Reply::Text(sha) => Ok(sha),
        other => bail!("SCRIPT LOAD answered {other:?}"),
    }
}

/// One message to check, with the limits it is checked against.
#[derive(Debug, Clone)]
pub struct Check<'a> {
    pub number: u64,
    pub person: &'a str,
    /// The idempotency key (the load generator's message number).
    pub key: u64,
    pub now_ms: u64,
    pub mps: u32,
    pub tier_limit: u32,
}

/// Queues one check (a template send) as an EVALSHA of the check script.
pub fn queue_check(resp: &mut Resp, sha: &str, check: &Check) {
    let Check {
        number,
        person,
        key,
        now_ms,
        ..
    } = *check;
    let keys = [
        format!("idem:{number}:{key}"),
        format!("optout:{number}"),
        format!("window:{number}"),
        format!("pair:{number}:{person}"),
        format!("tp:{number}:{}", now_ms / 1_000),
        format!("uniq:{number}"),
    ];
    let values = [
        person.to_string(),
        now_ms.to_string(),
        check.mps.to_string(),
        check.tier_limit.to_string(),
        "6000".into(),
        "45".into(),
        "1".into(),
        "86400".into(),
    ];
    let mut args: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes(), b"6"];
    args.extend(keys.iter().map(|k| k.as_bytes()));
    args.extend(values.iter().map(|v| v.as_bytes()));
    resp.queue(&args);
}
