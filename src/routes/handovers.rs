use actix_web::{get, post};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{JsonBody, Path, Query};
use crate::auth::Caller;
use crate::commands::{self, desk::DESK, HandoverBody};
use crate::db;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::views::{HandoverView, Viewer};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_handover).service(acknowledge_handover).service(list_handovers);
}

/// Hand the shift over (交接班): the site's tickets not yet completed, closed, cancelled or
/// declined, as they stand now. The desk of the site (dispatchers, supervisors) or an admin.
#[utoipa::path(
    tag = "handovers",
    security(("bearer" = [])),
    request_body = HandoverBody,
    responses(
        (status = 201, body = HandoverView),
        (status = 403, body = crate::error::Problem),
        (status = 422, description = "`validation_failed` naming each bad field; `site_id` when it is not a site of the caller's desk", body = crate::error::Problem),
    )
)]
#[post("/handovers")]
pub async fn create_handover(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<HandoverBody>,
) -> ApiResult<HttpResponse> {
    let handover = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::create_handover(conn, &viewer, body.0.clone(), db::now())?)
    })
    .await?;
    Ok(HttpResponse::Created().json(HandoverView::from(handover)))
}

/// Take a handover over: someone of the site's desk other than its writer. It never changes
/// afterwards.
#[utoipa::path(
    tag = "handovers",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, body = HandoverView),
        (status = 403, body = crate::error::Problem),
        (status = 404, description = "no such handover at a site of the caller's desk", body = crate::error::Problem),
        (status = 409, description = "`own_handover`: the caller wrote it; `already_acknowledged`", body = crate::error::Problem),
    )
)]
#[post("/handovers/{id}/ack")]
pub async fn acknowledge_handover(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let handover = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::acknowledge_handover(conn, &viewer, &id, db::now())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(HandoverView::from(handover)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HandoverQuery {
    pub site_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HandoverList {
    pub items: Vec<HandoverView>,
}

/// Handovers of the sites whose desk the caller is (an admin: all), newest first, at most 100.
#[utoipa::path(
    tag = "handovers",
    security(("bearer" = [])),
    params(HandoverQuery),
    responses((status = 200, body = HandoverList), (status = 403, body = crate::error::Problem))
)]
#[get("/handovers")]
pub async fn list_handovers(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<HandoverQuery>,
) -> ApiResult<HttpResponse> {
    caller.require(&DESK)?;
    let site_id = query.into_inner().site_id;
    let items = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(db::handovers::list(conn, viewer.desk_sites(site_id).as_deref(), None)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(HandoverList { items: items.into_iter().map(Into::into).collect() }))
}
