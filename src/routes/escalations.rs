use actix_web::get;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::Query;
use crate::auth::Caller;
use crate::db;
use crate::domain::user::Role;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::views::EscalationView;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_escalations);
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EscalationQuery {
    pub site_id: Option<String>,
    /// `true`: only those not yet resolved.
    pub open: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct EscalationList {
    pub items: Vec<EscalationView>,
}

/// Tickets past a service level, for the desk of their sites; newest first.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(EscalationQuery),
    responses((status = 200, body = EscalationList), (status = 403, body = crate::error::Problem))
)]
#[get("/escalations")]
pub async fn list_escalations(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<EscalationQuery>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let EscalationQuery { site_id, open } = query.into_inner();
    let rows = db::run(&state.pool, move |conn| {
        let sites = if caller.is_admin() {
            site_id.map(|s| vec![s])
        } else {
            let own = db::users::site_ids(conn, &caller.user_id)?;
            Some(own.into_iter().filter(|s| site_id.as_ref().is_none_or(|f| f == s)).collect())
        };
        Ok(db::escalations::list(conn, sites.as_deref(), open.unwrap_or(false))?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(EscalationList { items: rows.into_iter().map(Into::into).collect() }))
}
