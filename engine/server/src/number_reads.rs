//! Meta's answers to the number reads a sender passes through (`GET /{phone_number_id}`,
//! `GET /{waba_id}/phone_numbers`) are Meta's word on those numbers: their quality rating
//! (YELLOW included), messaging limit tier and throughput level are applied to wagate's state
//! where they differ, each change logged and counted (`wagate_meta_facts_applied_total{fact}`).

use serde_json::Value;

use super::state::{blocking, App};
use super::tenants::Tenant;
use wagate_durable::wagate::NumberFacts;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::number::NameStatus;
use wagate_rules::quality::Quality;

/// Meta's throughput levels, in messages a second (`HIGH`: the profile's most).
const STANDARD_MPS: u32 = 80;

/// What a number object in Meta's answer says.
fn facts_of(number: &Value, high_mps: u32) -> NumberFacts {
    let quality = match number["quality_rating"].as_str() {
        Some("GREEN") => Some(Quality::Green),
        Some("YELLOW") => Some(Quality::Yellow),
        Some("RED") => Some(Quality::Red),
        _ => None,
    };
    let throughput_mps = match number["throughput"]["level"].as_str() {
        Some("STANDARD") => Some(STANDARD_MPS),
        Some("HIGH") => Some(high_mps),
        _ => None,
    };
    NumberFacts {
        quality,
        tier: number["messaging_limit_tier"].as_str().map(str::to_string),
        throughput_mps,
        display: number["display_phone_number"]
            .as_str()
            .and_then(|display| Msisdn::parse(display).ok()),
        name_status: number["name_status"].as_str().and_then(NameStatus::parse),
    }
}

/// Applies what Meta's 2xx answer to a GET of `path` says of the tenant's numbers.
pub(crate) async fn apply(app: &App, tenant: &Tenant, path: &str, body: &[u8]) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let numbers: Vec<Value> = match segments.as_slice() {
        [_version, _id] => vec![json],
        [_version, _account, "phone_numbers"] => match json["data"].as_array() {
            Some(numbers) => numbers.clone(),
            None => return,
        },
        _ => return,
    };
    let high_mps = app.wagate.registry().profile().pacing.max_throughput_mps;
    let owned: Vec<(PhoneNumberId, NumberFacts)> = numbers
        .iter()
        .filter_map(|number| {
            let id = number["id"]
                .as_str()?
                .parse::<u64>()
                .ok()
                .map(PhoneNumberId)?;
            tenant.owns(id).then(|| (id, facts_of(number, high_mps)))
        })
        .collect();
    if owned.is_empty() {
        return;
    }
    let worker = app.clone();
    let applied = blocking(move || {
        Ok(owned
            .into_iter()
            .map(|(id, facts)| (id, worker.wagate.apply_number_facts(id, &facts)))
            .collect::<Vec<_>>())
    })
    .await
    .unwrap_or_default();
    for (id, result) in applied {
        match result {
            Ok(facts) => {
                for fact in facts {
                    app.metrics.fact_applied(fact);
                    tracing::info!(number = id.0, fact, "Meta's word on the number applied");
                }
                if let Some(number) = app.wagate.registry().number(id) {
                    app.upstream
                        .set_throughput_if_changed(id.0, number.throughput.messages_per_second());
                }
            }
            Err(error) => {
                tracing::warn!(number = id.0, %error, "Meta's word on the number could not be applied")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metas_number_fields_are_read_as_facts() {
        let facts = facts_of(
            &json!({ "id": "1", "quality_rating": "YELLOW", "messaging_limit_tier": "TIER_10K",
                     "throughput": { "level": "HIGH" } }),
            1_000,
        );
        assert_eq!(
            facts,
            NumberFacts {
                quality: Some(Quality::Yellow),
                tier: Some("TIER_10K".into()),
                throughput_mps: Some(1_000),
                display: None,
                name_status: None,
            }
        );
        assert_eq!(
            facts_of(&json!({ "quality_rating": "NA" }), 1_000),
            NumberFacts::default()
        );
    }
}
