use actix_web::get;
use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::db;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    // the spec itself is served but not documented in it
    cfg.service(healthz).service(readyz).route("/openapi.json", web::get().to(openapi_json));
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is alive.
#[utoipa::path(tag = "operations", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    pub status: &'static str,
    /// `REPAIRDESK_SMS_PROVIDER`: `log`, `webhook`, `aliyun` or `twilio`. `log` sends nothing to
    /// residents; a production deployment should never show it.
    pub sms_provider: &'static str,
}

/// The database answers; says which SMS gateway this instance sends through.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = crate::error::Problem))
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    db::run(&state.pool, |conn| conn.batch_execute("SELECT 1").map_err(Into::into)).await?;
    Ok(HttpResponse::Ok().json(Readiness { status: "ready", sms_provider: state.settings.sms.provider.name() }))
}

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(crate::routes::openapi::spec_json())
}
