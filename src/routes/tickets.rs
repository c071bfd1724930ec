use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::{JsonBody, Path, Query};
use crate::auth::Caller;
use crate::commands::{self, ReasonBody};
pub use crate::commands::{apply, claim_refusal, transition};
use crate::db::{self, events::NewEvent, tickets::TicketChanges, tickets::TicketFilter, tickets::TicketRow, DbConn};
use crate::domain::code::Purpose;
use crate::domain::messages;
use crate::domain::site::parse_timezone;
use crate::domain::ticket::{local_day, ticket_number, Area, Status, TicketForm};
use crate::domain::user::Role;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::notify;
use crate::state::AppState;
pub use crate::views::*;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tickets").route(web::post().to(create_ticket)).route(web::get().to(list_tickets)))
        .service(web::resource("/tickets/{id}").route(web::get().to(get_ticket)))
        .service(web::resource("/tickets/{id}/events").route(web::get().to(ticket_events)))
        .service(web::resource("/tickets/{id}/claim").route(web::post().to(claim_ticket)))
        .service(web::resource("/tickets/{id}/release").route(web::post().to(release_ticket)))
        .service(web::resource("/tickets/{id}/assign").route(web::post().to(assign_ticket)))
        .service(web::resource("/tickets/{id}/cancel").route(web::post().to(cancel_ticket)));
}

/// Register a ticket. Dispatchers, supervisors and admins of the ticket's site.
#[utoipa::path(
    post,
    path = "/api/v1/tickets",
    tag = "tickets",
    security(("bearer" = [])),
    request_body = TicketForm,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry safely: the same key and body answer the first response again")),
    responses(
        (status = 201, body = TicketView),
        (status = 403, body = crate::error::Problem),
        (status = 422, description = "`validation_failed` naming each bad field", body = crate::error::Problem),
    )
)]
pub async fn create_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody<TicketForm>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let create_key = req.headers().get(crate::idempotency::HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let now = db::now();
    let new = body.0.validate(now.and_utc()).map_err(ApiError::validation)?;
    let (code_key, policy) = (state.code_key.clone(), state.sms_policy.clone());
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        if let Some(key) = &create_key {
            // the same request again after a crash lost its stored answer: the ticket exists
            if let Some(existing) = db::tickets::find_created_with(conn, &viewer.caller.user_id, key)? {
                return viewer.view_one(conn, existing);
            }
        }
        let site = db::sites::find(conn, &new.site_id)?
            .filter(|s| viewer.is_site_desk(&s.id))
            .ok_or_else(|| ApiError::field("site_id", "is not a site of yours"))?;
        if let Some(tech) = &new.requested_technician_id {
            if !db::tickets::is_site_technician(conn, tech, &site.id)? {
                return Err(ApiError::field("requested_technician_id", "is not an active technician of this site"));
            }
        }
        let tz = parse_timezone(&site.timezone).map_err(ApiError::internal)?;
        let day = local_day(now, tz);
        let n = db::tickets::next_number(conn, &site.id, &day)?;
        let number = ticket_number(&site.code, &day, n);
        let row = TicketRow::from_intake(new.clone(), number, viewer.caller.user_id.clone(), now);
        db::tickets::insert(conn, &row, create_key.as_deref())?;
        let mut events = vec![NewEvent {
            ticket_id: row.id.clone(),
            site_id: row.site_id.clone(),
            event_type: "created",
            actor_id: Some(viewer.caller.user_id.clone()),
            at: now,
            from_status: None,
            to_status: Some(Status::Open.as_str()),
            data: json!({ "number": row.number, "area": row.area, "channel": row.channel }),
        }];
        if let Some(tech) = &row.assignee_id {
            events.push(NewEvent {
                event_type: "assigned",
                from_status: Some(Status::Open.as_str()),
                to_status: Some(Status::Assigned.as_str()),
                data: json!({ "technician_id": tech, "reason": "requested at intake" }),
                ..events[0].clone()
            });
        }
        if row.area == Area::InHome.as_str() {
            // the resident's code for the door goes out with the ticket, in its transaction
            let sms = notify::CodeSms { purpose: Purpose::Arrival, template: messages::ARRIVAL_CODE, extra: &[] };
            notify::issue_code(conn, &code_key, &policy, &row, &site.name, sms, now)?;
        }
        // the change counter last (the lock order, `db` module doc)
        db::events::append(conn, events)?;
        viewer.view_one(conn, row)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketQuery {
    /// One status, or several separated by commas.
    pub status: Option<String>,
    pub site_id: Option<String>,
    pub assignee_id: Option<String>,
    /// Created at or after this time (RFC 3339).
    #[serde(default, deserialize_with = "crate::domain::time::optional")]
    pub created_after: Option<DateTime<Utc>>,
    /// Created before this time (RFC 3339).
    #[serde(default, deserialize_with = "crate::domain::time::optional")]
    pub created_before: Option<DateTime<Utc>>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

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
    get,
    path = "/api/v1/tickets",
    tag = "tickets",
    security(("bearer" = [])),
    params(TicketQuery),
    responses((status = 200, body = TicketList), (status = 422, body = crate::error::Problem))
)]
pub async fn list_tickets(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<TicketQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let mut checks = super::Checks::default();
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        checks.fail("limit", "must be between 1 and 200");
    }
    let statuses: Vec<String> = q
        .status
        .as_deref()
        .map(|s| s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    for s in &statuses {
        if Status::parse(s).is_none() {
            checks.fail("status", format!("{s:?} is not one of {}", Status::names()));
        }
    }
    let after = match q.cursor.as_deref() {
        Some(c) => checks.take("cursor", decode_cursor(c).ok_or_else(|| "is not a cursor this server gave".into())),
        None => None,
    };
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
        let mut rows = db::tickets::list(conn, &filter)?;
        let next_cursor = (rows.len() as i64 > limit).then(|| {
            rows.truncate(limit as usize);
            rows.last().map(encode_cursor)
        });
        Ok(TicketList { items: viewer.views(conn, rows)?, next_cursor: next_cursor.flatten() })
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One ticket.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}",
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TicketView), (status = 404, body = crate::error::Problem))
)]
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
    get,
    path = "/api/v1/tickets/{id}/events",
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TicketEventList), (status = 404, body = crate::error::Problem))
)]
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
    post,
    path = "/api/v1/tickets/{id}/claim",
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
pub async fn claim_ticket(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Technician])?;
    let (ctx, id) = (state.commands(), id.into_inner());
    let view = db::run(&state.pool, move |conn| claim_and_view(conn, &ctx, caller, &id)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A claim as the route makes it, on one connection: the caller's sites and trades, the refusal
/// from a read, the claim's transaction, and the ticket as the answer shows it.
pub fn claim_and_view(
    conn: &mut DbConn,
    ctx: &commands::Ctx,
    caller: Caller,
    id: &str,
) -> Result<TicketView, ApiError> {
    let viewer = Viewer::load(conn, caller)?;
    // A ticket someone else already holds is refused from a plain read, so the losers of a race
    // don't queue for the write lock behind the winner; only within the caller's sites (elsewhere
    // the answer stays "not found"). Winning is still decided only by the conditional update
    // inside the transaction.
    let me = viewer.caller.user_id.as_str();
    if let Some(t) = db::tickets::find(conn, id)?.filter(|t| viewer.sites.contains(&t.site_id)) {
        let refusal = claim_refusal(&t);
        if refusal.code == ErrorCode::AlreadyClaimed && t.assignee_id.as_deref() != Some(me) {
            return Err(refusal);
        }
    }
    db::write_transaction(conn, |conn| {
        let t = commands::claim(conn, ctx, &viewer, id, db::now())?;
        viewer.view_one(conn, t)
    })
}

#[derive(Deserialize, ToSchema)]
pub struct AssignBody {
    pub technician_id: String,
    pub reason: Option<String>,
}

/// Put an assigned ticket back into the pool, with a reason: the technician holding it, or the desk.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/release",
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
    post,
    path = "/api/v1/tickets/{id}/assign",
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
pub async fn assign_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<AssignBody>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let AssignBody { technician_id, reason } = body.0;
    let reason = reason.as_deref().map(commands::reason).transpose()?;
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = visible_for_update(conn, &viewer, &id)?;
        if !db::tickets::is_site_technician(conn, &technician_id, &t.site_id)? {
            return Err(ApiError::field("technician_id", "is not an active technician of this ticket's site"));
        }
        let status = Status::parse(&t.status);
        if !status.is_some_and(Status::can_assign) {
            return Err(ApiError::new(
                ErrorCode::InvalidTransition,
                format!("a ticket that is {} cannot be assigned", t.status),
            ));
        }
        if t.assignee_id.as_deref() == Some(technician_id.as_str()) && status == Some(Status::Assigned) {
            return viewer.view_one(conn, t);
        }
        let now = db::now();
        let previous = t.assignee_id.clone();
        let event = if previous.is_some() { "reassigned" } else { "assigned" };
        let changes = TicketChanges {
            assignee_id: Some(Some(technician_id.clone())),
            claimed_at: Some(Some(now)),
            pooled_at: Some(None),
            ..Default::default()
        };
        let data = json!({ "technician_id": technician_id, "previous_assignee_id": previous, "reason": reason });
        let t = transition(conn, &t, &viewer.caller.user_id, event, Status::Assigned, changes, data, now)?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Void a ticket before it is completed. It keeps its number and stays listed.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/cancel",
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
pub async fn cancel_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<ReasonBody>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let reason = commands::reason(&body.0.reason)?;
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = visible_for_update(conn, &viewer, &id)?;
        if !Status::parse(&t.status).is_some_and(Status::can_cancel) {
            return Err(ApiError::new(
                ErrorCode::InvalidTransition,
                format!("a ticket that is {} cannot be cancelled", t.status),
            ));
        }
        let now = db::now();
        let changes = TicketChanges {
            cancelled_at: Some(Some(now)),
            cancel_reason: Some(Some(reason.clone())),
            pooled_at: Some(None),
            ..Default::default()
        };
        let data = json!({ "reason": reason, "previous_assignee_id": t.assignee_id });
        let t = transition(conn, &t, &viewer.caller.user_id, "cancelled", Status::Cancelled, changes, data, now)?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[cfg(test)]
mod tests {
    use super::ByTicket;

    #[test]
    fn rows_are_grouped_by_ticket_in_the_order_read() {
        let rows = vec![("a", 1), ("b", 2), ("a", 3), ("-", 4), ("b", 5), ("a", 6)];
        let mut groups = ByTicket::new(rows, |r| (r.0 != "-").then_some(r.0));
        assert_eq!(groups.take("a"), vec![("a", 1), ("a", 3), ("a", 6)]);
        assert_eq!(groups.take("b"), vec![("b", 2), ("b", 5)]);
        // taken once; rows without a ticket belong to none
        assert!(groups.take("a").is_empty());
        assert!(groups.take("-").is_empty());
        assert!(groups.take("c").is_empty());
    }
}
