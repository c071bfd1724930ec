use actix_web::{get, post};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{Checks, JsonBody};
use crate::auth::Caller;
use crate::db::{self, sites::SiteRow};
use crate::domain::site::{parse_site_code, parse_timezone, timezone_names, MAX_NAME};
use crate::domain::user::Role;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_site).service(list_sites);
}

#[derive(Deserialize, ToSchema)]
pub struct NewSite {
    /// 2 to 16 letters or digits, stored upper-case; prefixes ticket numbers.
    #[schema(min_length = 2, max_length = 16, pattern = r"^[A-Za-z0-9]{2,16}$")]
    pub code: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub name: String,
    #[schema(schema_with = timezone)]
    pub timezone: String,
}

/// The time zones a site may be in: those [`parse_timezone`] takes.
fn timezone() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(timezone_names()))
        .description(Some("IANA time zone, e.g. `Asia/Shanghai`; ticket numbers count the site's local days."))
        .build()
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
    if name.is_empty() || name.chars().count() > MAX_NAME {
        checks.fail("name", format!("must be 1 to {MAX_NAME} characters"));
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
