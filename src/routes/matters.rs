//! Matters that are not repairs (报事): complaints, inquiries, suggestions and praise.

use actix_web::{get, post};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{JsonBody, Path, Query};
use crate::auth::Caller;
use crate::commands::{self, CallbackBody, ReplyBody};
use crate::db;
use crate::domain::matter::{MatterForm, MatterStatus};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::views::{MatterView, Viewer};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_matter).service(list_matters).service(get_matter).service(reply_matter).service(callback_matter);
}

/// Register a matter (报事): the desk of the site (dispatchers, supervisors) or an admin. It is
/// numbered `{SITE_CODE}-BS-{YYYYMMDD}-{NNNN}`, a series apart from the tickets', and waits
/// (`open`) for the reply of its department's supervisors at the site.
#[utoipa::path(
    tag = "matters",
    security(("bearer" = [])),
    request_body = MatterForm,
    responses(
        (status = 201, body = MatterView),
        (status = 403, description = "`forbidden`: the desk only", body = crate::error::Problem),
        (status = 422, description = "`validation_failed` naming each bad field; `site_id` when it is not a site of the caller's desk", body = crate::error::Problem),
    )
)]
#[post("/matters")]
pub async fn create_matter(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<MatterForm>,
) -> ApiResult<HttpResponse> {
    let matter = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::create_matter(conn, &viewer, &body.0, db::now())?)
    })
    .await?;
    Ok(HttpResponse::Created().json(MatterView::from(matter)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MatterQuery {
    pub site_id: Option<String>,
    #[param(value_type = Option<MatterStatus>)]
    pub status: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MatterList {
    pub items: Vec<MatterView>,
}

/// Matters of the sites whose desk the caller is (an admin: all), newest first, at most 200;
/// without their callbacks (`GET /matters/{id}` has them).
#[utoipa::path(
    tag = "matters",
    security(("bearer" = [])),
    params(MatterQuery),
    responses(
        (status = 200, body = MatterList),
        (status = 403, body = crate::error::Problem),
        (status = 422, description = "`validation_failed`: `status` is not a matter's status", body = crate::error::Problem),
    )
)]
#[get("/matters")]
pub async fn list_matters(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<MatterQuery>,
) -> ApiResult<HttpResponse> {
    let MatterQuery { site_id, status } = query.into_inner();
    let rows = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::list_matters(conn, &viewer, site_id, status.as_deref())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(MatterList { items: rows.into_iter().map(MatterView::from).collect() }))
}

/// One matter with its callbacks.
#[utoipa::path(
    tag = "matters",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, body = MatterView),
        (status = 403, body = crate::error::Problem),
        (status = 404, description = "no such matter at a site of the caller's desk", body = crate::error::Problem),
    )
)]
#[get("/matters/{id}")]
pub async fn get_matter(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let matter = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::find_matter(conn, &viewer, &id)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(MatterView::from(matter)))
}

/// The department answers an open matter: a supervisor of its site whose `departments` include
/// the matter's, or an admin (dispatchers register and call back, they do not answer for a
/// department). The matter becomes `replied`, due for the desk's callback, and its `unreplied`
/// escalation is resolved.
#[utoipa::path(
    tag = "matters",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = ReplyBody,
    responses(
        (status = 200, body = MatterView),
        (status = 403, description = "`forbidden`: not a supervisor of the matter's department at its site", body = crate::error::Problem),
        (status = 404, description = "no such matter at a site of the caller's desk", body = crate::error::Problem),
        (status = 409, description = "`invalid_transition`: replied or closed already", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
#[post("/matters/{id}/reply")]
pub async fn reply_matter(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<ReplyBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let matter = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::reply_matter(conn, &viewer, &id, body.0.clone(), db::now())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(MatterView::from(matter)))
}

/// Call the reporter back (回访) on a replied matter: the desk of its site. Reaching them closes
/// it (`closed`); otherwise the attempt is kept and it stays due in `GET /callbacks/due`.
#[utoipa::path(
    tag = "matters",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = CallbackBody,
    responses(
        (status = 200, body = MatterView),
        (status = 403, description = "`forbidden`: the desk only", body = crate::error::Problem),
        (status = 404, description = "no such matter at a site of the caller's desk", body = crate::error::Problem),
        (status = 409, description = "`invalid_transition`: not replied yet, or closed", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
#[post("/matters/{id}/callback")]
pub async fn callback_matter(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<CallbackBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let matter = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::callback_matter(conn, &viewer, &id, body.0.clone(), db::now())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(MatterView::from(matter)))
}
