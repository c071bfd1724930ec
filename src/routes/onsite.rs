//! From the door to the callback: arrival with the resident's code, materials, paid quotes,
//! hold and resume, completion, inspection of public-area work, and the callback (回访).

use actix_web::{delete, get, patch, post};
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{JsonBody, Path, Query};
use crate::auth::Caller;
use crate::commands::{
    self, actable, AcceptQuoteBody, ArriveBody, CallbackBody, CompleteBody, DeclineBody, HoldBody, InspectBody,
    MaterialPatch, NewMaterial, NoteBody, PhoneVerification, QuoteBody, VersionQuery,
};
use crate::db;
use crate::db::matters::Matter;
use crate::domain::matter::MatterStatus;
use crate::domain::user::Role;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::{line_view, DueMatterView, MaterialLineView, MatterView, NoteView, TicketView, Viewer};
use chrono::{DateTime, Utc};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(arrive)
        .service(verify_by_phone)
        .service(resend_code)
        .service(add_material)
        .service(update_material)
        .service(remove_material)
        .service(propose_quote)
        .service(accept_quote)
        .service(decline_quote)
        .service(add_note)
        .service(hold)
        .service(resume)
        .service(complete)
        .service(inspect)
        .service(callback)
        .service(callbacks_due)
        .service(signature);
}

/// Check in at the door. In-home tickets need the resident's code.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = ArriveBody,
    responses(
        (status = 200, body = TicketView),
        (status = 403, description = "`forbidden`: technicians only", body = crate::error::Problem),
        (status = 409, description = "`invalid_transition`", body = crate::error::Problem),
        (status = 422, description = "`invalid_code` with `attempts_left`", body = crate::error::Problem),
        (status = 423, description = "`code_locked` after five wrong codes", body = crate::error::Problem),
    )
)]
#[post("/tickets/{id}/arrive")]
pub async fn arrive(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<ArriveBody>,
) -> ApiResult<HttpResponse> {
    let (ctx, id) = (state.commands(), id.into_inner());
    let outcome = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(match commands::arrive(conn, &ctx, &viewer, &id, body.0.clone(), db::now())? {
            Ok(t) => Ok(viewer.view_one(conn, t)?),
            // the wrong try was counted and must commit
            Err(refusal) => Err(refusal),
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(outcome?))
}

/// The desk called the resident and confirmed the technician is at the door (the seeds'
/// fallback when the code can't be given). Arrival then needs no code; a lock is lifted.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = PhoneVerification,
    responses((status = 200, body = TicketView), (status = 403, description = "`forbidden`: the desk only", body = crate::error::Problem), (status = 409, body = crate::error::Problem))
)]
#[post("/tickets/{id}/verify-by-phone")]
pub async fn verify_by_phone(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<PhoneVerification>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::verify_by_phone(conn, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Serialize, ToSchema)]
pub struct Resent {
    /// The outbox id of the new message.
    pub sms_id: String,
}

/// Send the resident a new arrival code (the old one stops working, a lock is lifted). At most 3
/// codes per ticket an hour, 60 s apart (`REPAIRDESK_SMS_CODES_PER_HOUR`,
/// `REPAIRDESK_SMS_CODE_INTERVAL_SECS`), and the ticket's messages in 24 hours stay below the
/// number's daily cap.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 202, body = Resent),
        (status = 403, description = "`forbidden`: the desk only", body = crate::error::Problem),
        (status = 409, body = crate::error::Problem),
        (status = 429, description = "`sms_rate_limited`, with Retry-After", body = crate::error::Problem),
    )
)]
#[post("/tickets/{id}/resend-code")]
pub async fn resend_code(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    let (ctx, id) = (state.commands(), id.into_inner());
    let outcome = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        // a refusal for reaching a cap comes back inside `Ok`: its escalation must commit
        Ok(commands::resend_code(conn, &ctx, &viewer, &id, db::now())?)
    })
    .await?;
    Ok(HttpResponse::Accepted().json(Resent { sms_id: outcome? }))
}

/// Record a material line.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = NewMaterial,
    responses(
        (status = 201, body = MaterialLineView),
        (status = 409, description = "`quote_required`, `version_conflict`, `invalid_transition`", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
#[post("/tickets/{id}/materials")]
pub async fn add_material(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<NewMaterial>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let line = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::add_material(conn, &viewer, &id, body.0.clone(), db::now())?)
    })
    .await?;
    Ok(HttpResponse::Created().json(line_view(line)))
}

/// Change a material line. A stale `version` answers 409 with the line as it stands.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path), ("line_id" = String, Path)),
    request_body = MaterialPatch,
    responses(
        (status = 200, body = MaterialLineView),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "`version_conflict` with `current`: the line as it stands", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
#[patch("/tickets/{id}/materials/{line_id}")]
pub async fn update_material(
    state: web::Data<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
    body: JsonBody<MaterialPatch>,
) -> ApiResult<HttpResponse> {
    let (ticket_id, line_id) = path.into_inner();
    let line = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::update_material(conn, &viewer, &ticket_id, &line_id, body.0.clone(), db::now())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(line_view(line)))
}

/// Remove a material line (it stays in the ticket's history).
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path), ("line_id" = String, Path), VersionQuery),
    responses(
        (status = 204, description = "removed"),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem),
    )
)]
#[delete("/tickets/{id}/materials/{line_id}")]
pub async fn remove_material(
    state: web::Data<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
    query: Query<VersionQuery>,
) -> ApiResult<HttpResponse> {
    let (ticket_id, line_id) = path.into_inner();
    let version = query.version;
    db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::remove_material(conn, &viewer, &ticket_id, &line_id, version, db::now())?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Propose the price of paid work and what it covers (`all`, the default: the whole price;
/// `labour`: chargeable materials are added to the bill); the resident gets a code by SMS to
/// accept it. Quoting again replaces a pending quote, or an accepted one whose bill has since
/// grown past what was accepted, and sends a new code (the old one stops working) under the
/// limits of resending an arrival code.
/// Wrong codes count for the ticket across quotes: after five the quote is locked until the desk
/// accepts it by phone (`via: phone`), and quoting again answers 423.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = QuoteBody,
    responses(
        (status = 201, body = TicketView),
        (status = 409, description = "`invalid_transition`: not paid work, or the quote is accepted and the bill within it", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
        (status = 423, description = "`code_locked`: five wrong codes for this ticket's quote; the desk accepts by phone", body = crate::error::Problem),
        (status = 429, description = "`sms_rate_limited`, with Retry-After: quoted again too soon or too often", body = crate::error::Problem),
    )
)]
#[post("/tickets/{id}/quote")]
pub async fn propose_quote(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<QuoteBody>,
) -> ApiResult<HttpResponse> {
    let (ctx, id) = (state.commands(), id.into_inner());
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::propose_quote(conn, &ctx, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// The resident accepts the quote: with the SMS code, or by phone to the desk (which also works
/// once five wrong codes locked the quote).
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = AcceptQuoteBody,
    responses(
        (status = 200, body = TicketView),
        (status = 403, description = "`forbidden`: the desk only", body = crate::error::Problem),
        (status = 409, body = crate::error::Problem),
        (status = 422, description = "`invalid_code` with `attempts_left`", body = crate::error::Problem),
        (status = 423, description = "`code_locked`: five wrong codes for this ticket, across quotes; the desk accepts by phone", body = crate::error::Problem),
    )
)]
#[post("/tickets/{id}/quote/accept")]
pub async fn accept_quote(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<AcceptQuoteBody>,
) -> ApiResult<HttpResponse> {
    let (ctx, id) = (state.commands(), id.into_inner());
    let outcome = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(match commands::accept_quote(conn, &ctx, &viewer, &id, body.0.clone(), db::now())? {
            Ok(t) => Ok(viewer.view_one(conn, t)?),
            // the wrong try was counted and must commit
            Err(refusal) => Err(refusal),
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(outcome?))
}

/// The resident turns the price down: the ticket ends as `declined`.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = DeclineBody,
    responses((status = 200, body = TicketView), (status = 409, body = crate::error::Problem))
)]
#[post("/tickets/{id}/quote/decline")]
pub async fn decline_quote(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<DeclineBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::decline_quote(conn, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Write a note on the ticket: the technician holding it, or the desk.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = NoteBody,
    responses((status = 201, body = NoteView), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
#[post("/tickets/{id}/notes")]
pub async fn add_note(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<NoteBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let note = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::add_note(conn, &viewer, &id, body.0.clone(), None, db::now())?)
    })
    .await?;
    Ok(HttpResponse::Created().json(NoteView::from(note)))
}

/// Work can't go on now (parts missing, longer job): the ticket stays open, on hold.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = HoldBody,
    responses((status = 200, body = TicketView), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
#[post("/tickets/{id}/hold")]
pub async fn hold(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<HoldBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::hold(conn, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Work goes on.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TicketView), (status = 409, body = crate::error::Problem))
)]
#[post("/tickets/{id}/resume")]
pub async fn resume(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::resume(conn, &viewer, &id, db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The job is done: in-home tickets go to `completed` (and the callback queue); public-area ones
/// to `awaiting_inspection`. A repeat of a job at the same place and trade within 30 days is
/// linked as rework (返修). Paid work needs an accepted quote, and a bill no larger than the
/// resident accepted: materials added to a `labour` quote past that need a new accepted quote.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = CompleteBody,
    responses(
        (status = 200, body = TicketView),
        (status = 403, description = "`forbidden`: technicians only", body = crate::error::Problem),
        (status = 409, description = "`quote_required` (no accepted quote, or the bill grew past it: with `bill_total_cents` and `accepted_total_cents`), `invalid_transition`", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
#[post("/tickets/{id}/complete")]
pub async fn complete(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<CompleteBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::complete(conn, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The desk inspects public-area work: passed completes it; failed sends it back to the technician.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = InspectBody,
    responses((status = 200, body = TicketView), (status = 403, description = "`forbidden`: the desk only", body = crate::error::Problem), (status = 409, body = crate::error::Problem))
)]
#[post("/tickets/{id}/inspect")]
pub async fn inspect(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<InspectBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::inspect(conn, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Record a callback (回访). Reaching the resident closes the ticket; otherwise it stays due.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = CallbackBody,
    responses((status = 200, body = TicketView), (status = 403, description = "`forbidden`: the desk only", body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
#[post("/tickets/{id}/callback")]
pub async fn callback(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<CallbackBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = commands::callback(conn, &viewer, &id, body.0.clone(), db::now())?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// One callback the desk owes: a ticket's or a matter's (报事), said by `kind`.
#[derive(Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DueCallback {
    /// A completed ticket: the ticket as `GET /tickets/{id}` shows it, plus `kind: ticket`.
    Ticket(Box<TicketView>),
    /// A matter its department replied to: the matter, plus `kind: matter` (its own kind is
    /// `matter_kind` here).
    Matter(Box<DueMatterView>),
}

#[derive(Serialize, ToSchema)]
pub struct DueCallbacks {
    pub items: Vec<DueCallback>,
    /// Always `null`: the list is not paged.
    pub next_cursor: Option<String>,
}

/// Completed tickets whose resident has not been reached yet, and matters (报事) replied to whose
/// reporter has not: each item says which by `kind` (`ticket | matter`); oldest first (a
/// ticket's completion, a matter's reply), at most 200 of each.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    responses((status = 200, body = DueCallbacks), (status = 403, body = crate::error::Problem))
)]
#[get("/callbacks/due")]
pub async fn callbacks_due(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let items = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let sites = (!viewer.caller.is_admin()).then(|| viewer.sites.clone());
        let rows = db::tickets::callbacks_due(conn, sites.as_deref(), 200)?;
        let tickets = viewer.views(conn, rows)?;
        let replied = MatterStatus::Replied.as_str();
        let matters = db::matters::callbacks_due(conn, sites.as_deref(), replied, 200)?;
        let ids: Vec<String> = matters.iter().map(|m| m.id.clone()).collect();
        let mut callbacks = db::matters::callbacks_of(conn, &ids)?;
        let mut items: Vec<(Option<DateTime<Utc>>, DueCallback)> =
            tickets.into_iter().map(|t| (t.completed_at, DueCallback::Ticket(Box::new(t)))).collect();
        for row in matters {
            let (mine, rest) = callbacks.into_iter().partition(|c| c.matter_id == row.id);
            callbacks = rest;
            let view = DueMatterView::from(MatterView::from(Matter { row, callbacks: mine }));
            items.push((view.replied_at, DueCallback::Matter(Box::new(view))));
        }
        // stable: tickets before matters due at the same moment
        items.sort_by_key(|(due, _)| *due);
        Ok::<_, ApiError>(items.into_iter().map(|(_, item)| item).collect::<Vec<_>>())
    })
    .await?;
    Ok(HttpResponse::Ok().json(DueCallbacks { items, next_cursor: None }))
}

/// The resident's signature, as signed on completion.
#[utoipa::path(
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, content_type = "image/png", body = Vec<u8>), (status = 404, body = crate::error::Problem))
)]
#[get("/tickets/{id}/signature")]
pub async fn signature(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let png = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &id)?;
        db::tickets::signature(conn, &t.id)?.ok_or_else(|| ApiError::not_found("signature"))
    })
    .await?;
    Ok(HttpResponse::Ok().content_type("image/png").body(png))
}
