//! Meta's answers about a number's blocked users (`/{phone_number_id}/block_users`, passed
//! through) are Meta's word on whom the business blocked: the people Meta added to the list
//! (POST) or lists (GET) are blocked on that number, the people it removed (DELETE) are not, and
//! a send to a blocked person is refused before Meta with 130403's meaning. People Meta could
//! not block (`failed_users`) are left as they were.

use axum::http::Method;
use serde_json::Value;

use super::state::{blocking, App};
use super::tenants::Tenant;
use wagate_rules::ids::{Msisdn, PhoneNumberId};

/// What a 2xx answer to `method` on a block list says: the people and whether they are blocked.
fn block_news(method: &Method, json: &Value) -> Option<(Vec<Msisdn>, bool)> {
    let (list, blocked) = match *method {
        Method::POST => (&json["block_users"]["added_users"], true),
        Method::DELETE => (&json["block_users"]["removed_users"], false),
        Method::GET => (&json["data"], true),
        _ => return None,
    };
    let people = list
        .as_array()?
        .iter()
        .filter_map(|user| {
            let id = user["wa_id"].as_str().or_else(|| user["input"].as_str())?;
            Msisdn::parse(id).ok()
        })
        .collect();
    Some((people, blocked))
}

/// Applies what Meta's 2xx answer to `method` on `path` says, if `path` is a block list of one
/// of the tenant's numbers.
pub(crate) async fn apply(app: &App, tenant: &Tenant, method: &Method, path: &str, body: &[u8]) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let [_version, number, "block_users"] = segments.as_slice() else {
        return;
    };
    let Some(number) = number.parse::<u64>().ok().map(PhoneNumberId) else {
        return;
    };
    if !tenant.owns(number) {
        return;
    }
    let Some((people, blocked)) = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|json| block_news(method, &json))
    else {
        return;
    };
    if people.is_empty() {
        return;
    }
    let count = people.len();
    let worker = app.clone();
    let applied = blocking(move || {
        worker
            .wagate
            .business_block(number, &people, blocked)
            .map_err(|e| {
                super::reply::ApiErrorResponse::from(wagate_cloud_api::error::ApiError::from(&e))
            })
    })
    .await;
    match applied {
        Ok(_) => {
            let fact = if blocked {
                "user_blocked"
            } else {
                "user_unblocked"
            };
            app.metrics.facts_applied_times(fact, count as u64);
            tracing::info!(
                number = number.0,
                people = count,
                blocked,
                "Meta's block list applied"
            );
        }
        Err(error) => tracing::warn!(
            number = number.0,
            error = ?error.0,
            "Meta's block list could not be applied"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metas_block_answers_name_whom_they_block_and_unblock() {
        let added = json!({ "messaging_product": "whatsapp", "block_users": {
            "added_users": [{ "input": "+16505550001", "wa_id": "16505550001" }],
            "failed_users": [{ "input": "+16505550002", "errors": [] }] } });
        let (people, blocked) = block_news(&Method::POST, &added).expect("news");
        assert!(blocked);
        assert_eq!(people, vec![Msisdn::parse("16505550001").expect("msisdn")]);
        let removed = json!({ "block_users": { "removed_users": [{ "input": "+16505550001", "wa_id": "16505550001" }] } });
        let (people, blocked) = block_news(&Method::DELETE, &removed).expect("news");
        assert!(!blocked);
        assert_eq!(people.len(), 1);
        assert!(block_news(&Method::PUT, &removed).is_none());
    }
}
