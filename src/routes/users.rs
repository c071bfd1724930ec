use actix_web::{get, patch, post};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{nullable, Checks, JsonBody, Path, Query};
use crate::auth::{password, Caller};
use crate::commands;
use crate::db::{self, users::UserChanges, users::UserRecord, users::UserRow, DbConn};
use crate::domain::category::Category;
use crate::domain::matter::{parse_departments, Department};
use crate::domain::phone::parse_phone;
use crate::domain::user::{parse_display_name, Role, Username};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_user).service(list_users).service(get_user).service(update_user);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub site_ids: Vec<String>,
    /// Ticket categories this user handles.
    pub trades: Vec<String>,
    /// The departments whose matters (报事) this user answers (supervisors).
    #[schema(value_type = Vec<Department>)]
    pub departments: Vec<String>,
    pub phone: Option<String>,
    pub active: bool,
    /// New tickets in a technician's pool are pushed to their phones only while on duty
    /// (`POST /me/duty`); everyone starts on duty.
    pub on_duty: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
}

impl From<UserRecord> for UserView {
    fn from(r: UserRecord) -> Self {
        Self {
            role: Role::parse(&r.row.role).unwrap_or(Role::Technician),
            id: r.row.id,
            username: r.row.username,
            display_name: r.row.display_name,
            site_ids: r.site_ids,
            trades: r.trades,
            departments: r.departments,
            phone: r.row.phone,
            active: r.row.active,
            on_duty: r.row.on_duty,
            created_at: r.row.created_at.and_utc(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct NewUser {
    /// Letters, digits, `.`, `_` and `-`; stored lower-case.
    #[schema(min_length = 3, max_length = 64, pattern = r"^[A-Za-z0-9._-]{3,64}$")]
    pub username: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub display_name: String,
    #[schema(value_type = Role)]
    pub role: String,
    /// Sites that exist; at least one unless `role` is `admin`.
    #[serde(default)]
    pub site_ids: Vec<String>,
    /// Ticket categories this user handles.
    #[serde(default)]
    #[schema(value_type = Vec<Category>)]
    pub trades: Vec<String>,
    /// The departments whose matters (报事) this user answers; only a supervisor's count.
    #[serde(default)]
    #[schema(value_type = Vec<Department>)]
    pub departments: Vec<String>,
    /// Mainland mobile or E.164.
    #[schema(
        pattern = r"^(?:(?:\+86)?1[3-9][0-9]{9}|\+(?:[1-79][0-9]{7,14}|8[0-57-9][0-9]{6,13}|86[02-9][0-9]{5,12}))$"
    )]
    pub phone: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct UserPatch {
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub display_name: Option<String>,
    /// Not your own: an admin stays an admin.
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
    /// Sites that exist; at least one unless the user is (or becomes) an admin.
    pub site_ids: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<Category>>)]
    pub trades: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<Department>>)]
    pub departments: Option<Vec<String>>,
    /// Mainland mobile or E.164; `null` clears the phone.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = r"^(?:(?:\+86)?1[3-9][0-9]{9}|\+(?:[1-79][0-9]{7,14}|8[0-57-9][0-9]{6,13}|86[02-9][0-9]{5,12}))$")]
    pub phone: Option<Option<String>>,
    /// `false` deactivates the user and ends their logins at once (not yourself).
    pub active: Option<bool>,
    /// A password reset; ends the user's logins at once.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    /// Another value matches no one.
    #[param(value_type = Option<Role>)]
    pub role: Option<String>,
    pub site_id: Option<String>,
}

fn check_role(checks: &mut Checks, raw: &str) -> Option<Role> {
    checks.take("role", Role::parse(raw).ok_or_else(|| "must be admin, dispatcher, supervisor or technician".into()))
}

fn check_trades(checks: &mut Checks, raw: &[String]) -> Vec<String> {
    let mut trades: Vec<String> = Vec::new();
    for t in raw {
        match Category::parse(t) {
            Some(c) if !trades.iter().any(|x| x == c.as_str()) => trades.push(c.as_str().to_owned()),
            Some(_) => {}
            None => checks.fail("trades", format!("{t:?} is not one of {}", Category::names())),
        }
    }
    trades
}

fn check_departments(checks: &mut Checks, raw: &[String]) -> Vec<String> {
    checks.take("departments", parse_departments(raw)).unwrap_or_default()
}

fn dedup(ids: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.trim().to_owned()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Every listed site must exist; everyone but an admin belongs to at least one.
fn check_sites(conn: &mut DbConn, role: Role, site_ids: &[String]) -> Result<(), ApiError> {
    if role != Role::Admin && site_ids.is_empty() {
        return Err(ApiError::field("site_ids", "must name at least one site"));
    }
    if db::sites::count_existing(conn, site_ids)? != site_ids.len() as i64 {
        return Err(ApiError::field("site_ids", "names a site that does not exist"));
    }
    Ok(())
}

/// Create a user. Admins only.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = NewUser,
    responses(
        (status = 201, body = UserView),
        (status = 403, body = crate::error::Problem),
        (status = 409, description = "`username_taken`", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
#[post("/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<NewUser>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin])?;
    let new = body.0;
    let mut checks = Checks::default();
    let username = checks.take("username", Username::parse(&new.username));
    checks.take("password", password::check_rules(&new.password));
    let display_name = checks.take("display_name", parse_display_name(&new.display_name));
    let role = check_role(&mut checks, &new.role);
    let trades = check_trades(&mut checks, &new.trades);
    let departments = check_departments(&mut checks, &new.departments);
    let phone = match &new.phone {
        Some(p) => checks.take("phone", parse_phone(p)).map(Some),
        None => Some(None),
    };
    checks.finish()?;
    let (Some(username), Some(display_name), Some(role), Some(phone)) = (username, display_name, role, phone) else {
        unreachable!("checked above")
    };
    let site_ids = dedup(&new.site_ids);
    let hash = state.hasher.hash(new.password).await?;
    let at = db::now();
    let row = UserRow {
        id: db::new_id(),
        username: username.as_str().to_owned(),
        password_hash: hash,
        display_name,
        role: role.as_str().to_owned(),
        phone,
        active: true,
        created_at: at,
        updated_at: at,
        on_duty: true,
    };
    let record = db::transaction(&state.pool, move |conn| {
        check_sites(conn, role, &site_ids)?;
        if db::users::username_taken(conn, &row.username)? {
            return Err(ApiError::new(ErrorCode::UsernameTaken, format!("username {} is taken", row.username)));
        }
        db::users::insert(conn, &row, &site_ids, &trades, &departments)?;
        db::users::find(conn, &row.id)?.ok_or_else(|| ApiError::not_found("user"))
    })
    .await?;
    Ok(HttpResponse::Created().json(UserView::from(record)))
}

/// Users: all for admins; the users of one's sites for dispatchers and supervisors.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(UserFilter),
    responses((status = 200, body = UserList), (status = 403, body = crate::error::Problem))
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Caller,
    filter: Query<UserFilter>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let UserFilter { role, site_id } = filter.into_inner();
    let records = db::run(&state.pool, move |conn| {
        let mut sites = if caller.is_admin() { None } else { Some(db::users::site_ids(conn, &caller.user_id)?) };
        if let Some(site_id) = site_id {
            sites = Some(match sites {
                Some(own) => own.into_iter().filter(|s| *s == site_id).collect(),
                None => vec![site_id],
            });
        }
        Ok(db::users::list(conn, sites.as_deref())?)
    })
    .await?;
    let items = records
        .into_iter()
        .filter(|r| role.as_deref().is_none_or(|role| r.row.role == role))
        .map(UserView::from)
        .collect();
    Ok(HttpResponse::Ok().json(UserList { items }))
}

/// Loads a user the caller may see: themselves, anyone for an admin, the users of their sites for
/// the desk. Anyone else is "not found", never "forbidden", so ids can't be probed.
async fn visible_user(state: &AppState, caller: &Caller, id: String) -> ApiResult<UserRecord> {
    let caller = caller.clone();
    db::run(&state.pool, move |conn| {
        let record = db::users::find(conn, &id)?.ok_or_else(|| ApiError::not_found("user"))?;
        if caller.is_admin() || record.row.id == caller.user_id {
            return Ok(record);
        }
        if caller.role.is_desk() {
            let own = db::users::site_ids(conn, &caller.user_id)?;
            if record.site_ids.iter().any(|s| own.contains(s)) {
                return Ok(record);
            }
        }
        Err(ApiError::not_found("user"))
    })
    .await
}

/// One user.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 404, body = crate::error::Problem))
)]
#[get("/users/{id}")]
pub async fn get_user(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    let record = visible_user(&state, &caller, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(UserView::from(record)))
}

/// Change a user: any field of the creation request, `active`, or a password reset. Admins only.
/// Deactivating or resetting the password ends the user's logins at once. A technician moved off
/// a site, made anything but a technician, or deactivated lets go at once of the active tickets
/// they held there (all of them unless moved): each goes back to the pool with an `unassigned`
/// event naming the reason, and the desk gets a `technician_removed` escalation.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    request_body = UserPatch,
    responses(
        (status = 200, body = UserView),
        (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
#[patch("/users/{id}")]
pub async fn update_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<UserPatch>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin])?;
    let id = id.into_inner();
    let patch = body.0;
    let mut checks = Checks::default();
    let display_name = patch.display_name.as_deref().and_then(|n| checks.take("display_name", parse_display_name(n)));
    let role = patch.role.as_deref().and_then(|r| check_role(&mut checks, r));
    let trades = patch.trades.as_deref().map(|t| check_trades(&mut checks, t));
    let departments = patch.departments.as_deref().map(|d| check_departments(&mut checks, d));
    let phone = match &patch.phone {
        Some(Some(p)) => checks.take("phone", parse_phone(p)).map(|p| Some(Some(p))),
        Some(None) => Some(Some(None)),
        None => Some(None),
    };
    if let Some(p) = &patch.password {
        checks.take("password", password::check_rules(p));
    }
    if id == caller.user_id && patch.active == Some(false) {
        checks.fail("active", "you cannot deactivate yourself");
    }
    if id == caller.user_id && role.is_some_and(|r| r != Role::Admin) {
        checks.fail("role", "you cannot take away your own admin role");
    }
    checks.finish()?;
    let password_hash = match patch.password {
        Some(p) => Some(state.hasher.hash(p).await?),
        None => None,
    };
    let ends_logins = password_hash.is_some() || patch.active == Some(false);
    let site_ids = patch.site_ids.as_deref().map(dedup);
    let changes = UserChanges {
        display_name,
        role: role.map(|r| r.as_str().to_owned()),
        phone: phone.flatten(),
        active: patch.active,
        password_hash,
        on_duty: None,
        updated_at: Some(db::now()),
    };
    let admin_id = caller.user_id.clone();
    let record = db::transaction(&state.pool, move |conn| {
        let current = db::users::find(conn, &id)?.ok_or_else(|| ApiError::not_found("user"))?;
        let final_role = role.or_else(|| Role::parse(&current.row.role)).unwrap_or(Role::Technician);
        let final_sites = site_ids.clone().unwrap_or_else(|| current.site_ids.clone());
        check_sites(conn, final_role, &final_sites)?;
        db::users::update(conn, &id, &changes)?;
        if let Some(site_ids) = &site_ids {
            db::users::set_sites(conn, &id, site_ids)?;
        }
        if let Some(trades) = &trades {
            db::users::set_trades(conn, &id, trades)?;
        }
        if let Some(departments) = &departments {
            db::users::set_departments(conn, &id, departments)?;
        }
        if ends_logins {
            db::tokens::revoke_all_for_user(conn, &id)?;
        }
        let changed = db::users::find(conn, &id)?.ok_or_else(|| ApiError::not_found("user"))?;
        commands::release_removed_technician(conn, &admin_id, &current, &changed, db::now())?;
        Ok(changed)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(record)))
}
