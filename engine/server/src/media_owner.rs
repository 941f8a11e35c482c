//! Which of a tenant's numbers a media id belongs to. A media id says nothing of its owner, and
//! tenants may share one Meta token, so wagate asks Meta in a way Meta enforces: a media call
//! naming `phone_number_id` is processed by Meta only if the media was uploaded to (or received
//! by) that number. An id is the tenant's when the caller names one of its numbers, when it was
//! uploaded through wagate to one, or when Meta answers it for one of them (asked in turn, at
//! most [`PROBED_NUMBERS`]); what is learned is remembered (`media_ids`).

use super::graph::{GraphCall, MetaAnswer};
use super::reply::no_such_object;
use super::state::App;
use super::tenants::Tenant;
use wagate_cloud_api::error::ApiError;
use wagate_rules::ids::PhoneNumberId;

/// A tenant's numbers asked in turn for an id wagate does not know; a tenant with more names
/// the number (`phone_number_id`) in its call, as Meta's API allows.
pub(crate) const PROBED_NUMBERS: usize = 16;

/// Whose a media id is, and Meta's answer to reading it (a media object, checked).
pub(crate) struct Owner {
    pub(crate) number: PhoneNumberId,
    pub(crate) read: MetaAnswer,
}

/// The number of the tenant's that `media_id` belongs to, by the caller's word (a
/// `phone_number_id` it owns), by what wagate learned, or by asking for each of its numbers;
/// in every case confirmed by Meta's answer, which must be the media object itself (with a
/// shared Meta token, a number, business or template id named with one's own
/// `phone_number_id` would otherwise read another tenant's object).
pub(crate) async fn owner(
    app: &App,
    tenant: &Tenant,
    media_id: &str,
    named: Option<&str>,
) -> Result<Owner, ApiError> {
    if another_kind_of_object(app, media_id) {
        return Err(no_such_object(media_id));
    }
    let candidates: Vec<u64> = match named {
        Some(named) => match named.parse::<u64>() {
            Ok(number) if tenant.owns(PhoneNumberId(number)) => vec![number],
            _ => return Err(no_such_object(named)),
        },
        None => match app.media_owners.known(media_id) {
            Some(number) if tenant.owns(PhoneNumberId(number)) => vec![number],
            _ => {
                let mut numbers: Vec<u64> = tenant.numbers.iter().copied().collect();
                numbers.sort_unstable();
                numbers.truncate(PROBED_NUMBERS);
                numbers
            }
        },
    };
    for number in candidates {
        let path = format!(
            "/{}/{media_id}?phone_number_id={number}",
            app.graph.api_version()
        );
        let answer = app
            .graph
            .call(
                &app.metrics,
                GraphCall::Media,
                tenant,
                axum::http::Method::GET,
                &path,
                None,
                bytes::Bytes::new(),
            )
            .await?;
        if answer.status.is_success() && is_media(&answer.body, media_id) {
            let number = PhoneNumberId(number);
            app.media_owners.remember(media_id, number);
            return Ok(Owner {
                number,
                read: answer,
            });
        }
    }
    Err(no_such_object(media_id))
}

/// Whether `id` is an object wagate knows as something else: a number, a business, a template.
fn another_kind_of_object(app: &App, id: &str) -> bool {
    let Ok(id) = id.parse::<u64>() else {
        return false;
    };
    let registry = app.wagate.registry();
    registry.number(PhoneNumberId(id)).is_some()
        || registry
            .numbers()
            .iter()
            .any(|number| number.account.0 == id)
        || registry.template_by_meta_id(id).is_some()
}

/// Whether Meta's answer is the media object `id` (its id, its type, its URL).
fn is_media(body: &[u8], id: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|json| {
        json["id"].as_str() == Some(id) && json["mime_type"].is_string() && json["url"].is_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_media_object_itself_is_taken_as_media() {
        let media = br#"{"id":"9","mime_type":"image/png","url":"https://x/y","messaging_product":"whatsapp"}"#;
        assert!(is_media(media, "9"));
        assert!(!is_media(media, "10"), "another id");
        assert!(!is_media(
            br#"{"id":"9","display_phone_number":"+1 555"}"#,
            "9"
        ));
        assert!(!is_media(b"not json", "9"));
    }
}
