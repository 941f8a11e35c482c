//! Which Graph objects a tenant may reach through wagate: its numbers (the config's), the
//! businesses (accounts) of those numbers, and the templates of those businesses whose Meta id
//! wagate knows. (Media ids are asked of Meta: `media_owner`.)

use std::sync::Arc;

use super::state::App;
use super::tenants::Tenant;
use wagate_rules::ids::{AccountId, PhoneNumberId};
use wagate_rules::registered_template::Template;

/// Whether `id` is one of the tenant's numbers or the business (account) of one of them.
pub(crate) fn owns(app: &App, tenant: &Tenant, id: &str) -> bool {
    let Ok(id) = id.parse::<u64>() else {
        return false;
    };
    tenant.owns(PhoneNumberId(id)) || owns_account(app, tenant, AccountId(id))
}

/// Whether `account` is the business (WABA) of one of the tenant's numbers.
pub(crate) fn owns_account(app: &App, tenant: &Tenant, account: AccountId) -> bool {
    let registry = app.wagate.registry();
    tenant.numbers.iter().any(|&number| {
        registry
            .number(PhoneNumberId(number))
            .is_some_and(|state| state.account == account)
    })
}

/// The template of one of the tenant's businesses that Meta knows by `id`, if wagate knows it.
pub(crate) fn tenant_template(app: &App, tenant: &Tenant, id: &str) -> Option<Arc<Template>> {
    let template = app
        .wagate
        .registry()
        .template_by_meta_id(id.parse().ok()?)?;
    owns_account(app, tenant, template.definition.account).then_some(template)
}
