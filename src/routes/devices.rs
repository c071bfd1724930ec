//! Push notifications: the caller's phones registered for them, and going on or off duty.

use actix_web::{delete, get, post};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::auth::no_store;
use super::users::UserView;
use super::{JsonBody, Path};
use crate::auth::Caller;
use crate::commands::{self, DeviceBody, DutyBody};
use crate::db::{self, devices::DeviceRow};
use crate::domain::push::{Platform, Provider};
use crate::error::ApiResult;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(register_device).service(list_devices).service(remove_device).service(set_duty);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub id: String,
    #[schema(value_type = Provider)]
    pub provider: String,
    pub token: String,
    #[schema(value_type = Platform)]
    pub platform: String,
    pub app_version: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<DeviceRow> for DeviceView {
    fn from(d: DeviceRow) -> Self {
        Self {
            id: d.id,
            provider: d.provider,
            token: d.token,
            platform: d.platform,
            app_version: d.app_version,
            created_at: d.created_at.and_utc(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeviceList {
    pub items: Vec<DeviceView>,
}

/// Register this phone for push notifications (`docs/push.md`). The same token again refreshes
/// the caller's registration; a token another user registered moves to the caller (a phone
/// shared between shifts). Only the services this server is configured for are taken: another
/// `provider` is `422` naming `provider`. At most 10 devices a user: another forgets the least
/// recently registered.
#[utoipa::path(
    tag = "push",
    security(("bearer" = [])),
    request_body = DeviceBody,
    responses(
        (status = 201, body = DeviceView),
        (status = 422, description = "`validation_failed` naming each bad field; `provider` also when this server does not deliver through it", body = crate::error::Problem),
    )
)]
#[post("/devices")]
pub async fn register_device(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<DeviceBody>,
) -> ApiResult<HttpResponse> {
    let accepted = state.push_providers.accepted();
    let device = db::transaction(&state.pool, move |conn| {
        Ok(commands::register_device(conn, &caller.user_id, &accepted, body.0.clone(), db::now())?)
    })
    .await?;
    Ok(HttpResponse::Created().json(DeviceView::from(device)))
}

/// The caller's registered devices, most recently registered first.
#[utoipa::path(
    tag = "push",
    security(("bearer" = [])),
    responses((status = 200, body = DeviceList))
)]
#[get("/devices")]
pub async fn list_devices(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let devices = db::run(&state.pool, move |conn| Ok(commands::devices(conn, &caller.user_id)?)).await?;
    Ok(HttpResponse::Ok().json(DeviceList { items: devices.into_iter().map(DeviceView::from).collect() }))
}

/// Forget one of the caller's devices (log out on that phone): nothing more is pushed to it,
/// messages still waiting included.
#[utoipa::path(
    tag = "push",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "removed"),
        (status = 404, description = "no such device of the caller's", body = crate::error::Problem),
    )
)]
#[delete("/devices/{id}")]
pub async fn remove_device(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    db::transaction(&state.pool, move |conn| Ok(commands::remove_device(conn, &caller.user_id, &id)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Go on or off duty. Off duty, no new ticket in the caller's pool is pushed to their phones;
/// what concerns tickets they hold still is. Answers the caller.
#[utoipa::path(
    tag = "push",
    security(("bearer" = [])),
    request_body = DutyBody,
    responses((status = 200, body = UserView), (status = 422, body = crate::error::Problem))
)]
#[post("/me/duty", wrap = "no_store()")]
pub async fn set_duty(state: web::Data<AppState>, caller: Caller, body: JsonBody<DutyBody>) -> ApiResult<HttpResponse> {
    let record = db::transaction(&state.pool, move |conn| {
        Ok(commands::set_duty(conn, &caller.user_id, body.0.clone(), db::now())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(record)))
}
