//! A site's materials catalogue: what lines may refer to, with default prices.

use actix_web::{get, post};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{Checks, JsonBody, Path};
use crate::auth::Caller;
use crate::db::{self, materials::CatalogueItem};
use crate::domain::material::{MAX_CENTS, MAX_NAME, MAX_SPEC, MAX_UNIT};
use crate::domain::user::Role;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(add_item).service(list_items);
}

#[derive(Deserialize, ToSchema)]
pub struct NewItem {
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub name: String,
    #[schema(max_length = 100)]
    pub spec: Option<String>,
    #[schema(max_length = 100)]
    pub model: Option<String>,
    #[schema(min_length = 1, max_length = 20, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub unit: String,
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub default_price_cents: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ItemView {
    pub id: String,
    pub site_id: String,
    pub name: String,
    pub spec: Option<String>,
    pub model: Option<String>,
    pub unit: String,
    pub default_price_cents: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct ItemList {
    pub items: Vec<ItemView>,
}

impl From<CatalogueItem> for ItemView {
    fn from(i: CatalogueItem) -> Self {
        Self {
            id: i.id,
            site_id: i.site_id,
            name: i.name,
            spec: i.spec,
            model: i.model,
            unit: i.unit,
            default_price_cents: i.default_price_cents,
            created_at: i.created_at.and_utc(),
        }
    }
}

/// Whether the caller belongs to the site (admins belong everywhere).
fn member(conn: &mut db::DbConn, caller: &Caller, site_id: &str) -> Result<(), ApiError> {
    let known = db::sites::find(conn, site_id)?.is_some();
    if known && (caller.is_admin() || db::users::site_ids(conn, &caller.user_id)?.iter().any(|s| s == site_id)) {
        return Ok(());
    }
    Err(ApiError::not_found("site"))
}

fn optional(checks: &mut Checks, field: &str, raw: Option<String>) -> Option<String> {
    let value = raw.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if value.as_ref().is_some_and(|v| v.chars().count() > MAX_SPEC) {
        checks.fail(field, format!("must be at most {MAX_SPEC} characters"));
    }
    value
}

/// Add an item to a site's catalogue. The desk of the site and admins.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "site id")),
    request_body = NewItem,
    responses((status = 201, body = ItemView), (status = 403, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
#[post("/sites/{id}/materials")]
pub async fn add_item(
    state: web::Data<AppState>,
    caller: Caller,
    site_id: Path<String>,
    body: JsonBody<NewItem>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let n = body.0;
    let mut checks = Checks::default();
    let name = n.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        checks.fail("name", format!("must be 1 to {MAX_NAME} characters"));
    }
    let unit = n.unit.trim().to_owned();
    if unit.is_empty() || unit.chars().count() > MAX_UNIT {
        checks.fail("unit", format!("must be 1 to {MAX_UNIT} characters"));
    }
    if !(0..=MAX_CENTS).contains(&n.default_price_cents) {
        checks.fail("default_price_cents", format!("must be 0 to {MAX_CENTS}"));
    }
    let spec = optional(&mut checks, "spec", n.spec);
    let model = optional(&mut checks, "model", n.model);
    checks.finish()?;
    let site_id = site_id.into_inner();
    let item = db::transaction(&state.pool, move |conn| {
        member(conn, &caller, &site_id)?;
        let item = CatalogueItem {
            id: db::new_id(),
            site_id: site_id.clone(),
            name: name.clone(),
            spec: spec.clone(),
            model: model.clone(),
            unit: unit.clone(),
            default_price_cents: n.default_price_cents,
            created_at: db::now(),
        };
        db::materials::insert_item(conn, &item)?;
        Ok(item)
    })
    .await?;
    Ok(HttpResponse::Created().json(ItemView::from(item)))
}

/// A site's catalogue, by name. Everyone of the site.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "site id")),
    responses((status = 200, body = ItemList), (status = 404, body = crate::error::Problem))
)]
#[get("/sites/{id}/materials")]
pub async fn list_items(state: web::Data<AppState>, caller: Caller, site_id: Path<String>) -> ApiResult<HttpResponse> {
    let site_id = site_id.into_inner();
    let items = db::run(&state.pool, move |conn| {
        member(conn, &caller, &site_id)?;
        Ok(db::materials::catalogue(conn, &site_id)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ItemList { items: items.into_iter().map(Into::into).collect() }))
}
