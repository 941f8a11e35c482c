//! Bearer tokens to tenants, and which numbers each tenant may use.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::config::{OnLimit, TenantConfig};
use super::headers::Headers;
use super::metrics::TenantName;
use super::reply::unauthorized;
use wagate_cloud_api::error::ApiError;
use wagate_rules::hash::{MixBuildHasher, MixHashMap};
use wagate_rules::ids::PhoneNumberId;

#[derive(Debug)]
pub struct Tenant {
    pub name: String,
    /// The name as the label of the tenant's metrics.
    pub label: TenantName,
    /// Asked on every send: the cheap integer hash, not SipHash (numbers come from the config).
    pub numbers: HashSet<u64, MixBuildHasher>,
    pub on_limit: OnLimit,
    pub callback_url: Option<String>,
    pub callback_secret: String,
    /// `Bearer` and the tenant's own Meta access token, when it has one.
    pub meta_authorization: Option<String>,
    /// Templates whose lint finds anything are refused before Meta.
    pub block_on_template_lint: bool,
    /// The text sent once to a person whose keyword opted them out.
    pub opt_out_confirmation: Option<String>,
    /// The tenant's sender pools by name: the pool's index in the engine, and its first number
    /// (what a send names until the pool's number is picked).
    pub pools: HashMap<String, (u16, PhoneNumberId)>,
}

impl Tenant {
    pub fn owns(&self, number: PhoneNumberId) -> bool {
        self.numbers.contains(&number.0)
    }
}

/// Who a request is from.
pub enum Caller {
    Tenant(Arc<Tenant>),
    Admin,
}

pub struct Tenants {
    by_token: HashMap<String, Arc<Tenant>>,
    by_number: MixHashMap<u64, Arc<Tenant>>,
    admin_token: String,
}

impl Tenants {
    /// The tenants of `configs`, with the pools as `ServerConfig::pools` lists them.
    pub fn new(
        configs: &[TenantConfig],
        admin_token: &str,
        pools: &[(usize, &str, &[u64])],
    ) -> Tenants {
        let mut by_token = HashMap::new();
        let mut by_number = MixHashMap::default();
        for (index, config) in configs.iter().enumerate() {
            let pools = pools
                .iter()
                .enumerate()
                .filter(|(_, (tenant, _, numbers))| *tenant == index && !numbers.is_empty())
                .map(|(at, (_, name, numbers))| {
                    (name.to_string(), (at as u16, PhoneNumberId(numbers[0])))
                })
                .collect();
            let tenant = Arc::new(Tenant {
                name: config.name.clone(),
                label: TenantName(Arc::from(config.name.as_str())),
                numbers: config.numbers.iter().copied().collect(),
                on_limit: config.on_limit,
                callback_url: config.callback_url.clone(),
                callback_secret: config.callback_secret.clone(),
                meta_authorization: config
                    .meta_access_token
                    .as_ref()
                    .map(|token| format!("Bearer {token}")),
                block_on_template_lint: config.block_on_template_lint,
                opt_out_confirmation: config.opt_out_confirmation.clone(),
                pools,
            });
            for number in &config.numbers {
                by_number.insert(*number, tenant.clone());
            }
            by_token.insert(config.token.clone(), tenant);
        }
        Tenants {
            by_token,
            by_number,
            admin_token: admin_token.to_string(),
        }
    }

    /// The tenant (or the admin) whose bearer token `headers` carry; 401 otherwise.
    pub fn caller<H: Headers + ?Sized>(&self, headers: &H) -> Result<Caller, ApiError> {
        let token = headers
            .text("authorization")
            .flatten()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("an Authorization: Bearer token is required"))?;
        if !self.admin_token.is_empty() && constant_time_eq(token, &self.admin_token) {
            return Ok(Caller::Admin);
        }
        let tenant = self
            .by_token
            .get(token)
            .ok_or_else(|| unauthorized("the access token is not valid"))?;
        // The request's span names its tenant from here on (the front's sends run in none).
        tracing::Span::current().record("tenant", tenant.name.as_str());
        Ok(Caller::Tenant(tenant.clone()))
    }

    pub fn tenant<H: Headers + ?Sized>(&self, headers: &H) -> Result<Arc<Tenant>, ApiError> {
        match self.caller(headers)? {
            Caller::Tenant(tenant) => Ok(tenant),
            Caller::Admin => Err(unauthorized("the admin token cannot send; use a tenant's")),
        }
    }

    pub fn admin<H: Headers + ?Sized>(&self, headers: &H) -> Result<(), ApiError> {
        match self.caller(headers)? {
            Caller::Admin => Ok(()),
            Caller::Tenant(_) => Err(ApiError::new(
                403,
                200,
                "Permissions error",
                "the admin API needs the admin token",
                "forbidden",
            )),
        }
    }

    /// The tenant a number belongs to (webhooks are forwarded to it).
    pub fn owner(&self, number: PhoneNumberId) -> Option<&Arc<Tenant>> {
        self.by_number.get(&number.0)
    }
}

pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
