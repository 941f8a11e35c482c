//! Meta's answers to the template calls a sender passes through are Meta's word on the
//! business's templates. A list (`GET /{waba_id}/message_templates`) brings wagate in line:
//! each listed template's status is applied where it differs, and one wagate did not know is
//! recorded from Meta's own definition (so templates need not be typed in twice). A deletion
//! (`DELETE /{waba_id}/message_templates?name=...`) Meta took deletes the name here too, in
//! every language. Each change is logged and counted (`wagate_meta_facts_applied_total`).

use serde_json::Value;

use super::state::{blocking, App};
use wagate_cloud_api::request::parse_template_create;
use wagate_cloud_api::webhooks::events::template_status;
use wagate_rules::ids::AccountId;
use wagate_rules::registry::StatusFrom;
use wagate_rules::template::status::TemplateStatus;

/// Applies what Meta's 2xx answer to `method` on `path` (with `query`) says of `account`'s
/// templates, when the call is about them.
pub(crate) async fn apply(
    app: &App,
    method: &axum::http::Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let [_version, account, "message_templates"] = segments.as_slice() else {
        return;
    };
    let Ok(account) = account.parse::<u64>().map(AccountId) else {
        return;
    };
    let changes = match *method {
        axum::http::Method::GET => listed(body),
        axum::http::Method::DELETE => deleted(app, account, query),
        _ => return,
    };
    if changes.is_empty() {
        return;
    }
    let worker = app.clone();
    let applied = blocking(move || Ok(apply_changes(&worker, account, changes)))
        .await
        .unwrap_or_default();
    for (name, fact) in applied {
        app.metrics.fact_applied(fact);
        tracing::info!(account = account.0, template = %name, fact, "Meta's word on the template applied");
    }
}

/// Applies Meta's word on one known template (its status as Meta's answer names it).
pub(crate) async fn apply_status(
    app: &App,
    account: AccountId,
    name: String,
    language: String,
    status: TemplateStatus,
) {
    let told = vec![Told {
        name,
        language,
        status,
        definition: None,
        meta_id: None,
    }];
    let worker = app.clone();
    let applied = blocking(move || Ok(apply_changes(&worker, account, told)))
        .await
        .unwrap_or_default();
    for (name, fact) in applied {
        app.metrics.fact_applied(fact);
        tracing::info!(account = account.0, template = %name, fact, "Meta's word on the template applied");
    }
}

/// One template as Meta spoke of it: its name, language, status, and definition as JSON.
struct Told {
    name: String,
    language: String,
    status: TemplateStatus,
    definition: Option<Vec<u8>>,
    /// Meta's id for it, when Meta named it.
    meta_id: Option<u64>,
}

fn listed(body: &[u8]) -> Vec<Told> {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    json["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|template| {
            Some(Told {
                name: template["name"].as_str()?.to_string(),
                language: template["language"].as_str()?.to_string(),
                status: template_status(template["status"].as_str()?)?,
                definition: serde_json::to_vec(template).ok(),
                meta_id: super::templates_api::meta_id_in(template),
            })
        })
        .collect()
}

/// Every language wagate knows of the name Meta deleted.
fn deleted(app: &App, account: AccountId, query: Option<&str>) -> Vec<Told> {
    let Some(name) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("name="))
    else {
        return Vec::new();
    };
    app.wagate
        .registry()
        .templates()
        .into_iter()
        .filter(|t| t.definition.account == account && t.definition.name == name)
        .map(|t| Told {
            name: t.definition.name.clone(),
            language: t.definition.language.clone(),
            status: TemplateStatus::Deleted,
            definition: None,
            meta_id: None,
        })
        .collect()
}

/// Applies each change that differs from wagate's state; what was applied, by template name.
fn apply_changes(app: &App, account: AccountId, told: Vec<Told>) -> Vec<(String, &'static str)> {
    let wagate = &app.wagate;
    let mut applied = Vec::new();
    for told in told {
        let registry = wagate.registry();
        let now = wagate.now().secs();
        let current = registry
            .template(account, &told.name, &told.language)
            .map(|t| t.status(&registry.profile().templates, now));
        if let (Some(_), Some(meta_id)) = (current, told.meta_id) {
            // Meta's id, so that calls on `/{template_id}` find it.
            wagate.note_template_meta_id(account, &told.name, &told.language, meta_id);
        }
        match current {
            Some(status) if status == told.status => continue,
            Some(_) => {}
            None => {
                // Not known here: recorded from Meta's own definition, then given Meta's status.
                let Some(mut definition) = told
                    .definition
                    .as_deref()
                    .and_then(|json| parse_template_create(account, json).ok())
                else {
                    continue;
                };
                definition.meta_id = told.meta_id;
                if wagate.submit_template(definition).is_err() {
                    continue;
                }
                applied.push((told.name.clone(), "template_known"));
            }
        }
        if wagate
            .change_template_status(
                account,
                &told.name,
                &told.language,
                told.status,
                StatusFrom::Meta,
            )
            .is_ok()
        {
            applied.push((told.name, "template_status"));
        }
    }
    applied
}
