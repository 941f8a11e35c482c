//! Registry records as persisted: numbers, limit scopes and templates, as JSON (they are few,
//! written on change only, and readable when debugging a data directory).

use serde::{Deserialize, Serialize};

use wagate_rules::ids::PortfolioId;
use wagate_rules::number::NumberSnapshot;
use wagate_rules::registered_template::LifecycleSnapshot;
use wagate_rules::scope::ScopeSnapshot;
use wagate_rules::template::model::TemplateDefinition;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScopeRecord {
    pub key: u32,
    /// The portfolio whose scope this is; `None` for a number's own scope.
    pub portfolio: Option<PortfolioId>,
    pub snapshot: ScopeSnapshot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TemplateRecord {
    pub definition: TemplateDefinition,
    pub lifecycle: LifecycleSnapshot,
}

pub(crate) type NumberRecord = NumberSnapshot;

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("registry records always serialise")
}

impl ScopeRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

impl TemplateRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

pub(crate) fn encode_number(number: &NumberRecord) -> Vec<u8> {
    encode(number)
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<T, wagate_store::StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| wagate_store::StoreError::Corrupt(format!("registry record: {e}")))
}
