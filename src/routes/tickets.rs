use actix_web::{get, patch, post};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{JsonBody, Path, Query};
use crate::auth::Caller;
use crate::commands::{self, AssignBody, ReasonBody};
use crate::db::{self, tickets::TicketFilter, tickets::TicketRow};
use crate::domain::category::Category;
use crate::domain::edit::TicketEdit;
use crate::domain::place::search_terms;
use crate::domain::ticket::{Area, Status, TicketForm, Urgency};
use crate::domain::user::Role;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::views::{visible, visible_by_number, TicketEvent, TicketEventList, TicketList, TicketView, Viewer};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_ticket)
        .service(list_tickets)
        .service(get_ticket_by_number)
        .service(get_ticket)
        .service(edit_ticket)
        .service(ticket_events)
        .service(claim_ticket)
        .service(release_ticket)
        .service(assign_ticket)
        .service(cancel_ticket);
}

/// Register a ticket. Dispatchers, supervisors and admins of the ticket's site.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    request_body = TicketForm,
    responses(
        (status = 201, body = TicketView),
        (status = 403, body = crate::error::Problem),
        (status = 422, description = "`validation_failed` naming each bad field", body = crate::error::Problem),
    )
)]
#[post("/tickets")]
pub async fn create_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody<TicketForm>,
) -> ApiResult<HttpResponse> {
    let create_key = req.headers().get(crate::idempotency::HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let ctx = state.commands();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::create_ticket(conn, &ctx, &viewer, &body.0, create_key.as_deref(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketQuery {
    /// One status, or several separated by commas.
    #[param(value_type = Option<Vec<Status>>, style = Form, explode = false)]
    pub status: Option<String>,
    pub site_id: Option<String>,
    pub assignee_id: Option<String>,
    /// Created at or after this time (RFC 3339).
    #[serde(default, deserialize_with = "crate::domain::time::optional")]
    pub created_after: Option<DateTime<Utc>>,
    /// Created before this time (RFC 3339).
    #[serde(default, deserialize_with = "crate::domain::time::optional")]
    pub created_before: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// Text to find in the number, the place (however its spaces, full-width digits, 幢/栋/号楼
    /// and 室 were typed), the reporter's name, the description or the phone's digits; a ticket
    /// whose number it is comes first.
    #[param(max_length = 200)]
    pub q: Option<String>,
    #[param(value_type = Option<Category>)]
    pub category: Option<String>,
    #[param(value_type = Option<Area>)]
    pub area: Option<String>,
    #[param(value_type = Option<Urgency>)]
    pub urgency: Option<String>,
    pub paid: Option<bool>,
    /// With (`true`) or without (`false`) an open escalation.
    pub escalated: Option<bool>,
    /// Completed at or after this time (RFC 3339).
    #[serde(default, deserialize_with = "crate::domain::time::optional")]
    pub completed_after: Option<DateTime<Utc>>,
    /// Completed before this time (RFC 3339).
    #[serde(default, deserialize_with = "crate::domain::time::optional")]
    pub completed_before: Option<DateTime<Utc>>,
}

/// A query's one-of value, or a failed check naming its field.
fn one_of<T>(
    checks: &mut super::Checks,
    field: &str,
    raw: Option<&str>,
    parse: fn(&str) -> Option<T>,
    names: String,
) -> Option<String> {
    let raw = raw?;
    if parse(raw).is_none() {
        checks.fail(field, format!("must be one of {names}"));
    }
    Some(raw.to_owned())
}

/// How many tickets a page may hold, and how many it holds unless asked.
pub const LIMIT: std::ops::RangeInclusive<i64> = 1..=200;
pub const DEFAULT_LIMIT: i64 = 50;

fn encode_cursor(t: &TicketRow) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", t.created_at.and_utc().timestamp_micros(), t.id))
}

fn decode_cursor(raw: &str) -> Option<(NaiveDateTime, String)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let (micros, id) = text.split_once('|')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
    Some((at, id.to_owned()))
}

/// Tickets the caller may see, newest first, a page at a time.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(TicketQuery),
    responses((status = 200, body = TicketList), (status = 422, body = crate::error::Problem))
)]
#[get("/tickets")]
pub async fn list_tickets(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<TicketQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let mut checks = super::Checks::default();
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !LIMIT.contains(&limit) {
        checks.fail("limit", format!("must be between {} and {}", LIMIT.start(), LIMIT.end()));
    }
    let mut statuses = Vec::new();
    for s in q.status.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match Status::parse(s) {
            Some(status) => statuses.push(status),
            None => checks.fail("status", format!("{s:?} is not one of {}", Status::names())),
        }
    }
    let after = match q.cursor.as_deref() {
        Some(c) => checks.take("cursor", decode_cursor(c).ok_or_else(|| "is not a cursor this server gave".into())),
        None => None,
    };
    let category = one_of(&mut checks, "category", q.category.as_deref(), Category::parse, Category::names());
    let area = one_of(&mut checks, "area", q.area.as_deref(), Area::parse, Area::names());
    let urgency = one_of(&mut checks, "urgency", q.urgency.as_deref(), Urgency::parse, Urgency::names());
    if q.q.as_ref().is_some_and(|text| text.chars().count() > 200) {
        checks.fail("q", "must be at most 200 characters");
    }
    let search = q.q.as_deref().and_then(search_terms);
    checks.finish()?;
    let page = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let mut filter = TicketFilter {
            statuses,
            sites: None,
            assignee_id: q.assignee_id,
            created_after: q.created_after.map(|t| t.naive_utc()),
            created_before: q.created_before.map(|t| t.naive_utc()),
            after,
            limit: limit + 1,
            search: search.clone(),
            category,
            area,
            urgency,
            paid: q.paid,
            escalated: q.escalated,
            completed_after: q.completed_after.map(|t| t.naive_utc()),
            completed_before: q.completed_before.map(|t| t.naive_utc()),
            except_id: None,
            only_id: None,
        };
        match viewer.caller.role {
            Role::Admin => filter.sites = q.site_id.map(|s| vec![s]),
            Role::Dispatcher | Role::Supervisor => {
                filter.sites =
                    Some(viewer.sites.iter().filter(|s| q.site_id.as_ref().is_none_or(|f| f == *s)).cloned().collect());
            }
            Role::Technician => {
                filter.assignee_id = Some(viewer.caller.user_id.clone());
                filter.sites = Some(viewer.sites.clone());
            }
        }
        // the ticket whose number was typed comes first, on the first page, once
        let exact = match (&q.q, &filter.after) {
            (Some(text), None) if search.is_some() => {
                match db::tickets::find_by_number(conn, &text.trim().to_uppercase())? {
                    // shown only if it passes the other filters too
                    Some(t) => {
                        let only = TicketFilter { only_id: Some(t.id), limit: 1, ..filter.clone() };
                        db::tickets::list(conn, &only)?.pop()
                    }
                    None => None,
                }
            }
            _ => None,
        };
        filter.except_id = exact.as_ref().map(|t| t.id.clone());
        let mut rows = db::tickets::list(conn, &filter)?;
        let next_cursor = (rows.len() as i64 > limit).then(|| {
            rows.truncate(limit as usize);
            rows.last().map(encode_cursor)
        });
        if let Some(t) = exact {
            rows.insert(0, t);
        }
        Ok(TicketList { items: viewer.views(conn, rows)?, next_cursor: next_cursor.flatten() })
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One ticket.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TicketView), (status = 404, body = crate::error::Problem))
)]
#[get("/tickets/{id}")]
pub async fn get_ticket(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = visible(conn, &viewer, &id)?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A ticket's history, oldest first. Events never change or disappear.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TicketEventList), (status = 404, body = crate::error::Problem))
)]
#[get("/tickets/{id}/events")]
pub async fn ticket_events(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let rows = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        visible(conn, &viewer, &id)?;
        Ok(db::events::for_ticket(conn, &id)?)
    })
    .await?;
    let items = rows.into_iter().map(TicketEvent::from).collect();
    Ok(HttpResponse::Ok().json(TicketEventList { items }))
}

/// Grab a ticket from the pool (抢单). Of any number of technicians racing, exactly one wins.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, body = TicketView),
        (status = 403, description = "`forbidden`: technicians only", body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "`already_claimed`, `not_claimable` or `too_many_active`", body = crate::error::Problem),
    )
)]
#[post("/tickets/{id}/claim")]
pub async fn claim_ticket(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Technician])?;
    let (ctx, id) = (state.commands(), id.into_inner());
    let view = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::claim_and_view(conn, &ctx, &viewer, &id, db::now())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Put an assigned ticket back into the pool, with a reason: the technician holding it, or the desk.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = ReasonBody,
    responses(
        (status = 200, body = TicketView),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "`invalid_transition`", body = crate::error::Problem),
    )
)]
#[post("/tickets/{id}/release")]
pub async fn release_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<ReasonBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::release(conn, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Assign or reassign a ticket to a technician of its site. Dispatchers, supervisors, admins.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = AssignBody,
    responses(
        (status = 200, body = TicketView),
        (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "`invalid_transition`", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
#[post("/tickets/{id}/assign")]
pub async fn assign_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<AssignBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::assign(conn, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A ticket by its number (`GY-20261130-0001`, as the resident quotes it on the phone), as
/// `GET /tickets/{id}` shows it: 404 when there is none the caller may see.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(("number" = String, Path, description = "the ticket's number")),
    responses((status = 200, body = TicketView), (status = 404, body = crate::error::Problem))
)]
#[get("/tickets/by-number/{number}")]
pub async fn get_ticket_by_number(
    state: web::Data<AppState>,
    caller: Caller,
    number: Path<String>,
) -> ApiResult<HttpResponse> {
    let number = number.into_inner().trim().to_owned();
    let view = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = visible_by_number(conn, &viewer, &number)?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Correct a ticket's intake until it is completed: the desk of its site, at the version it saw.
/// One `edited` event names each changed field's old and new value. What a change sets off
/// happens with it: a new phone number gets a new door code by SMS (the old one stops working);
/// another category moves the ticket from the old trade's pool to the new one's; a new
/// appointment restarts the arrival clock, answers a `late_arrival` escalation and texts the
/// resident the time; urgency raised to emergency runs the emergency arrival limit from now.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = TicketEdit,
    responses(
        (status = 200, body = TicketView),
        (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "`version_conflict` with `ticket` as it stands and `current_version`; `invalid_transition` once completed or cancelled", body = crate::error::Problem),
        (status = 422, description = "`validation_failed` naming each bad field", body = crate::error::Problem),
    )
)]
#[patch("/tickets/{id}")]
pub async fn edit_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<TicketEdit>,
) -> ApiResult<HttpResponse> {
    let (id, ctx) = (id.into_inner(), state.commands());
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::edit(conn, &ctx, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Void a ticket before it is completed. It keeps its number and stays listed.
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = ReasonBody,
    responses(
        (status = 200, body = TicketView),
        (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "`invalid_transition`", body = crate::error::Problem),
    )
)]
#[post("/tickets/{id}/cancel")]
pub async fn cancel_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<ReasonBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::cancel(conn, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}
