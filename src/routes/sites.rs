use actix_web::{get, post};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{Checks, JsonBody};
use crate::auth::Caller;
use crate::db::{self, sites::SiteRow};
use crate::domain::site::{parse_site_code, parse_timezone};
use crate::domain::user::Role;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_site).service(list_sites);
}

#[derive(Deserialize, ToSchema)]
pub struct NewSite {
    /// 2 to 16 letters or digits; prefixes ticket numbers.
    pub code: String,
    pub name: String,
    /// IANA time zone, e.g. `Asia/Shanghai`.
    pub timezone: String,
}

#[derive(Serialize, ToSchema)]
pub struct SiteView {
    pub id: String,
    pub code: String,
    pub name: String,
    pub timezone: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct SiteList {
    pub items: Vec<SiteView>,
}

impl From<SiteRow> for SiteView {
    fn from(r: SiteRow) -> Self {
        Self { id: r.id, code: r.code, name: r.name, timezone: r.timezone, created_at: r.created_at.and_utc() }
    }
}

/// Create a site (管理处). Admins only.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = NewSite,
    responses(
        (status = 201, body = SiteView),
        (status = 403, body = crate::error::Problem),
        (status = 409, description = "`site_code_taken`", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
#[post("/sites")]
pub async fn create_site(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<NewSite>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin])?;
    let NewSite { code, name, timezone } = body.0;
    let mut checks = Checks::default();
    let code = checks.take("code", parse_site_code(&code));
    let timezone = checks.take("timezone", parse_timezone(&timezone));
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        checks.fail("name", "must be 1 to 100 characters");
    }
    checks.finish()?;
    let (Some(code), Some(timezone)) = (code, timezone) else { unreachable!("checked above") };
    let row = SiteRow { id: db::new_id(), code, name, timezone: timezone.name().to_owned(), created_at: db::now() };
    let row = db::transaction(&state.pool, move |conn| {
        if db::sites::code_taken(conn, &row.code)? {
            return Err(ApiError::new(ErrorCode::SiteCodeTaken, format!("site code {} is taken", row.code)));
        }
        db::sites::insert(conn, &row)?;
        Ok(row.clone())
    })
    .await?;
    Ok(HttpResponse::Created().json(SiteView::from(row)))
}

/// Sites: all for admins, one's own for everyone else.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = SiteList))
)]
#[get("/sites")]
pub async fn list_sites(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let rows = db::run(&state.pool, move |conn| {
        if caller.is_admin() {
            return Ok(db::sites::list(conn, None)?);
        }
        let own = db::users::site_ids(conn, &caller.user_id)?;
        Ok(db::sites::list(conn, Some(&own))?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(SiteList { items: rows.into_iter().map(Into::into).collect() }))
}
