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

/// Whose a media id is, and Meta's answer to reading it, when that is how it was learned.
pub(crate) struct Owner {
    pub(crate) number: PhoneNumberId,
    pub(crate) read: Option<MetaAnswer>,
}

/// The number of the tenant's that `media_id` belongs to, by the caller's word (a
/// `phone_number_id` it owns: Meta checks it), by what wagate learned, or by asking Meta.
pub(crate) async fn owner(
    app: &App,
    tenant: &Tenant,
    media_id: &str,
    named: Option<&str>,
) -> Result<Owner, ApiError> {
    if let Some(named) = named {
        return match named.parse::<u64>() {
            Ok(number) if tenant.owns(PhoneNumberId(number)) => Ok(Owner {
                number: PhoneNumberId(number),
                read: None,
            }),
            _ => Err(no_such_object(named)),
        };
    }
    if let Some(number) = app.media_owners.known(media_id) {
        if tenant.owns(PhoneNumberId(number)) {
            return Ok(Owner {
                number: PhoneNumberId(number),
                read: None,
            });
        }
    }
    let mut numbers: Vec<u64> = tenant.numbers.iter().copied().collect();
    numbers.sort_unstable();
    for number in numbers.into_iter().take(PROBED_NUMBERS) {
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
        if answer.status.is_success() {
            let number = PhoneNumberId(number);
            app.media_owners.remember(media_id, number);
            return Ok(Owner {
                number,
                read: Some(answer),
            });
        }
    }
    Err(no_such_object(media_id))
}
