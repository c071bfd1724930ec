//! The OpenAPI document, generated from the handlers' annotations. `openapi/openapi.json` is this
//! document committed; a test fails when the two differ.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "repairdesk", description = "Repair desk and field technicians: tickets, the grab pool, on-site work, offline sync."),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::me,
        routes::auth::change_password,
        routes::sites::create_site,
        routes::sites::list_sites,
        routes::users::create_user,
        routes::users::list_users,
        routes::users::get_user,
        routes::users::update_user,
        routes::tickets::create_ticket,
        routes::tickets::list_tickets,
        routes::tickets::get_ticket,
        routes::tickets::ticket_events,
        routes::tickets::claim_ticket,
        routes::tickets::release_ticket,
        routes::tickets::assign_ticket,
        routes::tickets::cancel_ticket,
        routes::pool::pool,
        routes::pool::pool_stream,
        routes::escalations::list_escalations,
        routes::onsite::arrive,
        routes::onsite::verify_by_phone,
        routes::onsite::resend_code,
        routes::onsite::add_material,
        routes::onsite::update_material,
        routes::onsite::remove_material,
        routes::onsite::propose_quote,
        routes::onsite::accept_quote,
        routes::onsite::decline_quote,
        routes::onsite::add_note,
        routes::onsite::hold,
        routes::onsite::resume,
        routes::onsite::complete,
        routes::onsite::inspect,
        routes::onsite::callback,
        routes::onsite::callbacks_due,
        routes::onsite::signature,
        routes::catalogue::add_item,
        routes::catalogue::list_items,
        routes::sync::push,
        routes::sync::pull,
        routes::sync::rejections,
        routes::sync::stream,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The document as committed: pretty JSON with a final newline.
pub fn spec_json() -> String {
    let mut json = ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serialises");
    json.push('\n');
    json
}
