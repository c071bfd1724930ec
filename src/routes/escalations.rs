use actix_web::{get, post};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{JsonBody, Path, Query};
use crate::auth::Caller;
use crate::commands::{self, desk::DESK, AcknowledgeBody};
use crate::db::{self, escalations::EscalationFilter};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::views::{EscalationItemView, Viewer};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_escalations).service(acknowledge_escalation);
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EscalationQuery {
    pub site_id: Option<String>,
    /// `true`: only those not yet resolved.
    pub open: Option<bool>,
    /// `false`: only those no one of the desk has acknowledged; `true`: only those acknowledged.
    pub acknowledged: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct EscalationList {
    pub items: Vec<EscalationItemView>,
}

/// Tickets past a service level, and matters (报事) left without their department's reply
/// (`unreplied`), for the desk of their sites; newest first, at most 500.
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
    caller.require(&DESK)?;
    let EscalationQuery { site_id, open, acknowledged } = query.into_inner();
    let rows = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let filter = EscalationFilter {
            sites: viewer.desk_sites(site_id),
            open_only: open.unwrap_or(false),
            acknowledged,
            id: None,
        };
        Ok(db::escalations::list_desk(conn, &filter)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(EscalationList { items: rows.into_iter().map(Into::into).collect() }))
}

/// Take an escalation: the desk of its ticket's site records who, when and a note. It stays open
/// until the ticket moves on. Acknowledged already: `409 already_acknowledged`, with
/// `acknowledged_by` and `acknowledged_at` (the first note stands).
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = AcknowledgeBody,
    responses(
        (status = 200, body = EscalationItemView),
        (status = 403, body = crate::error::Problem),
        (status = 404, description = "no such escalation at a site of the caller's desk", body = crate::error::Problem),
        (status = 409, description = "`already_acknowledged`", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
#[post("/escalations/{id}/ack")]
pub async fn acknowledge_escalation(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<AcknowledgeBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let item = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::acknowledge_escalation(conn, &viewer, &id, body.0.clone(), db::now())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(EscalationItemView::from(item)))
}
