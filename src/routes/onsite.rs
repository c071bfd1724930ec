//! From the door to the callback: arrival with the resident's code, materials, paid quotes,
//! hold and resume, completion, inspection of public-area work, and the callback (回访).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::tickets::{apply, line_view, MaterialLineView, TicketList, TicketView, Viewer};
use super::{JsonBody, Path, Query};
use crate::auth::Caller;
use crate::commands::{
    self, actable, check_code, code_locked, code_refusal, require_status, text, ArriveBody, CompleteBody, HoldBody,
    MaterialPatch, NewMaterial, NoteBody, VersionQuery,
};
use crate::db::{self, tickets::TicketChanges};
use crate::domain::code::{Purpose, MAX_FAILED_ATTEMPTS};
use crate::domain::messages::{self, yuan};
use crate::domain::ticket::{Area, Status};
use crate::domain::user::Role;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::notify::{self, Queued};
use crate::state::AppState;
use crate::views::NoteView;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let post = |path: &str, to| web::resource(path.to_owned()).route(to);
    cfg.service(post("/tickets/{id}/arrive", web::post().to(arrive)))
        .service(post("/tickets/{id}/verify-by-phone", web::post().to(verify_by_phone)))
        .service(post("/tickets/{id}/resend-code", web::post().to(resend_code)))
        .service(post("/tickets/{id}/materials", web::post().to(add_material)))
        .service(
            web::resource("/tickets/{id}/materials/{line_id}")
                .route(web::patch().to(update_material))
                .route(web::delete().to(remove_material)),
        )
        .service(post("/tickets/{id}/quote", web::post().to(propose_quote)))
        .service(post("/tickets/{id}/quote/accept", web::post().to(accept_quote)))
        .service(post("/tickets/{id}/quote/decline", web::post().to(decline_quote)))
        .service(post("/tickets/{id}/notes", web::post().to(add_note)))
        .service(post("/tickets/{id}/hold", web::post().to(hold)))
        .service(post("/tickets/{id}/resume", web::post().to(resume)))
        .service(post("/tickets/{id}/complete", web::post().to(complete)))
        .service(post("/tickets/{id}/inspect", web::post().to(inspect)))
        .service(post("/tickets/{id}/callback", web::post().to(callback)))
        .service(web::resource("/tickets/{id}/signature").route(web::get().to(signature)))
        .service(web::resource("/callbacks/due").route(web::get().to(callbacks_due)));
}

/// Check in at the door. In-home tickets need the resident's code.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/arrive",
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

#[derive(Deserialize, ToSchema)]
pub struct PhoneVerification {
    /// Who was called and what they said.
    pub note: String,
}

/// The desk called the resident and confirmed the technician is at the door (the seeds'
/// fallback when the code can't be given). Arrival then needs no code; a lock is lifted.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/verify-by-phone",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = PhoneVerification,
    responses((status = 200, body = TicketView), (status = 403, description = "`forbidden`: the desk only", body = crate::error::Problem), (status = 409, body = crate::error::Problem))
)]
pub async fn verify_by_phone(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<PhoneVerification>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let note = text("note", Some(&body.0.note), 500, true)?;
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = actable(conn, &viewer, &id)?;
        require_status(&t, &[Status::Open, Status::Assigned], "verify the arrival of")?;
        let now = db::now();
        let changes = TicketChanges {
            phone_verified_at: Some(Some(now)),
            phone_verified_by: Some(Some(viewer.caller.user_id.clone())),
            ..Default::default()
        };
        let data = json!({ "note": note });
        let t = apply(conn, &t, &viewer.caller.user_id, "verified_by_phone", None, changes, data, now)?;
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
    post,
    path = "/api/v1/tickets/{id}/resend-code",
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
pub async fn resend_code(state: web::Data<AppState>, caller: Caller, id: Path<String>) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let (key, policy, id) = (state.code_key.clone(), state.sms_policy.clone(), id.into_inner());
    let outcome = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = actable(conn, &viewer, &id)?;
        if t.area != Area::InHome.as_str() {
            return Err(ApiError::new(ErrorCode::InvalidTransition, "public-area tickets have no resident code"));
        }
        require_status(&t, &[Status::Open, Status::Assigned], "resend the code of")?;
        let now = db::now();
        let site = db::sites::find(conn, &t.site_id)?.ok_or_else(|| ApiError::not_found("site"))?;
        let sms = notify::CodeSms { purpose: Purpose::Arrival, template: messages::ARRIVAL_CODE, extra: &[] };
        let queued = notify::issue_code(conn, &key, &policy, &t, &site.name, sms, now)?;
        let sms_id = match queued {
            Queued::Queued(id) => id,
            Queued::Capped(cap) => {
                // the escalation is recorded and must commit
                return Ok(Err(ApiError::new(
                    ErrorCode::SmsRateLimited,
                    format!("SMS {cap} reached; the desk was told"),
                )
                .retry_after(3600)));
            }
            Queued::NoPhone => return Err(ApiError::new(ErrorCode::InvalidTransition, "the ticket has no phone")),
        };
        apply(
            conn,
            &t,
            &viewer.caller.user_id,
            "code_resent",
            None,
            TicketChanges::default(),
            json!({ "sms_id": sms_id }),
            now,
        )?;
        Ok(Ok(Resent { sms_id }))
    })
    .await?;
    Ok(HttpResponse::Accepted().json(outcome?))
}

/// Record a material line.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/materials",
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
pub async fn add_material(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<NewMaterial>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let line = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        commands::add_material(conn, &viewer, &id, body.0.clone(), db::now())
    })
    .await?;
    Ok(HttpResponse::Created().json(line_view(line)))
}

/// Change a material line. A stale `version` answers 409 with the line as it stands.
#[utoipa::path(
    patch,
    path = "/api/v1/tickets/{id}/materials/{line_id}",
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
pub async fn update_material(
    state: web::Data<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
    body: JsonBody<MaterialPatch>,
) -> ApiResult<HttpResponse> {
    let (ticket_id, line_id) = path.into_inner();
    let line = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        commands::update_material(conn, &viewer, &ticket_id, &line_id, body.0.clone(), db::now())
    })
    .await?;
    Ok(HttpResponse::Ok().json(line_view(line)))
}

/// Remove a material line (it stays in the ticket's history).
#[utoipa::path(
    delete,
    path = "/api/v1/tickets/{id}/materials/{line_id}",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path), ("line_id" = String, Path), VersionQuery),
    responses(
        (status = 204, description = "removed"),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem),
    )
)]
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
        commands::remove_material(conn, &viewer, &ticket_id, &line_id, version, db::now())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
pub struct QuoteBody {
    pub amount_cents: i64,
    pub note: Option<String>,
}

/// Propose the price of paid work; the resident gets a code by SMS to accept it. Quoting again
/// sends a new code (the old one stops working) under the limits of resending an arrival code.
/// Wrong codes count for the ticket across quotes: after five the quote is locked until the desk
/// accepts it by phone (`via: phone`), and quoting again answers 423.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/quote",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = QuoteBody,
    responses(
        (status = 201, body = TicketView),
        (status = 409, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
        (status = 423, description = "`code_locked`: five wrong codes for this ticket's quote; the desk accepts by phone", body = crate::error::Problem),
        (status = 429, description = "`sms_rate_limited`, with Retry-After: quoted again too soon or too often", body = crate::error::Problem),
    )
)]
pub async fn propose_quote(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<QuoteBody>,
) -> ApiResult<HttpResponse> {
    let QuoteBody { amount_cents, note } = body.0;
    if !(1..=100_000_000).contains(&amount_cents) {
        return Err(ApiError::field("amount_cents", "must be 1 to 100000000"));
    }
    let note = text("note", note.as_deref(), 500, false)?;
    let (key, policy, id) = (state.code_key.clone(), state.sms_policy.clone(), id.into_inner());
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = actable(conn, &viewer, &id)?;
        if !t.paid {
            return Err(ApiError::new(ErrorCode::InvalidTransition, "only paid work (特约维修) is quoted"));
        }
        require_status(&t, &[Status::Assigned, Status::OnSite, Status::OnHold], "quote")?;
        if db::quotes::find(conn, &t.id)?.is_some_and(|q| q.status == "accepted") {
            return Err(ApiError::new(ErrorCode::InvalidTransition, "the quote is already accepted"));
        }
        // wrong codes count for the ticket, not for one quote: a new quote is no new set of guesses
        if db::codes::find(conn, &t.id, Purpose::Quote.as_str())?
            .is_some_and(|c| c.failed_attempts >= MAX_FAILED_ATTEMPTS)
        {
            return Err(code_locked(Purpose::Quote));
        }
        let now = db::now();
        db::quotes::replace(
            conn,
            &db::quotes::QuoteRow {
                ticket_id: t.id.clone(),
                amount_cents,
                note: note.clone(),
                status: "pending".into(),
                proposed_by: viewer.caller.user_id.clone(),
                proposed_at: now,
                decided_at: None,
                decided_by: None,
                decided_via: None,
                decision_note: None,
            },
        )?;
        let site = db::sites::find(conn, &t.site_id)?.ok_or_else(|| ApiError::not_found("site"))?;
        let amount = [("amount", yuan(amount_cents))];
        let sms = notify::CodeSms { purpose: Purpose::Quote, template: messages::QUOTE_CODE, extra: &amount };
        notify::issue_code(conn, &key, &policy, &t, &site.name, sms, now)?;
        let data = json!({ "amount_cents": amount_cents, "note": note });
        let t = apply(conn, &t, &viewer.caller.user_id, "quoted", None, TicketChanges::default(), data, now)?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Deserialize, ToSchema)]
pub struct AcceptQuoteBody {
    /// The code the resident received by SMS.
    pub code: Option<String>,
    /// `code` (default) or `phone`: the desk recorded the resident's consent by phone.
    pub via: Option<String>,
    pub note: Option<String>,
}

/// The resident accepts the quote: with the SMS code, or by phone to the desk (which also works
/// once five wrong codes locked the quote).
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/quote/accept",
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
pub async fn accept_quote(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<AcceptQuoteBody>,
) -> ApiResult<HttpResponse> {
    let AcceptQuoteBody { code, via, note } = body.0;
    let via = match via.as_deref().unwrap_or("code") {
        "code" => "code",
        "phone" => "phone",
        _ => return Err(ApiError::field("via", "must be code or phone")),
    };
    if via == "phone" {
        caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    }
    let note = text("note", note.as_deref(), 500, via == "phone")?;
    let (key, id) = (state.code_key.clone(), id.into_inner());
    let outcome = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = actable(conn, &viewer, &id)?;
        let quote = db::quotes::find(conn, &t.id)?
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidTransition, "there is no quote"))?;
        if quote.status != "pending" {
            return Err(ApiError::new(ErrorCode::InvalidTransition, format!("the quote is {}", quote.status)));
        }
        let now = db::now();
        if via == "code" {
            let given = code.as_deref().map(str::trim).filter(|c| !c.is_empty());
            let Some(given) = given else { return Err(ApiError::field("code", "the resident's code is required")) };
            if let Some(refusal) = code_refusal(check_code(conn, &key, &t, Purpose::Quote, given, now)?, Purpose::Quote)
            {
                return Ok(Err(refusal));
            }
        }
        db::quotes::decide(conn, &t.id, "accepted", &viewer.caller.user_id, via, note.clone(), now)?;
        let data = json!({ "amount_cents": quote.amount_cents, "via": via, "note": note });
        let t = apply(conn, &t, &viewer.caller.user_id, "quote_accepted", None, TicketChanges::default(), data, now)?;
        Ok(Ok(viewer.view_one(conn, t)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(outcome?))
}

#[derive(Deserialize, ToSchema)]
pub struct DeclineBody {
    pub note: Option<String>,
}

/// The resident turns the price down: the ticket ends as `declined`.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/quote/decline",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = DeclineBody,
    responses((status = 200, body = TicketView), (status = 409, body = crate::error::Problem))
)]
pub async fn decline_quote(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<DeclineBody>,
) -> ApiResult<HttpResponse> {
    let note = text("note", body.0.note.as_deref(), 500, false)?;
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = actable(conn, &viewer, &id)?;
        let now = db::now();
        if !db::quotes::decide(conn, &t.id, "declined", &viewer.caller.user_id, "declined", note.clone(), now)? {
            return Err(ApiError::new(ErrorCode::InvalidTransition, "there is no pending quote"));
        }
        let data = json!({ "note": note });
        let t = apply(
            conn,
            &t,
            &viewer.caller.user_id,
            "quote_declined",
            Some(Status::Declined),
            TicketChanges::default(),
            data,
            now,
        )?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Write a note on the ticket: the technician holding it, or the desk.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/notes",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = NoteBody,
    responses((status = 201, body = NoteView), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
pub async fn add_note(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<NoteBody>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let note = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        commands::add_note(conn, &viewer, &id, body.0.clone(), None, db::now())
    })
    .await?;
    Ok(HttpResponse::Created().json(NoteView::from(note)))
}

/// Work can't go on now (parts missing, longer job): the ticket stays open, on hold.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/hold",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = HoldBody,
    responses((status = 200, body = TicketView), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
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
    post,
    path = "/api/v1/tickets/{id}/resume",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TicketView), (status = 409, body = crate::error::Problem))
)]
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
/// linked as rework (返修).
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/complete",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = CompleteBody,
    responses(
        (status = 200, body = TicketView),
        (status = 403, description = "`forbidden`: technicians only", body = crate::error::Problem),
        (status = 409, description = "`quote_required`, `invalid_transition`", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
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

#[derive(Deserialize, ToSchema)]
pub struct InspectBody {
    pub passed: bool,
    pub note: Option<String>,
}

/// The desk inspects public-area work: passed completes it; failed sends it back to the technician.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/inspect",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = InspectBody,
    responses((status = 200, body = TicketView), (status = 403, description = "`forbidden`: the desk only", body = crate::error::Problem), (status = 409, body = crate::error::Problem))
)]
pub async fn inspect(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<InspectBody>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let InspectBody { passed, note } = body.0;
    let note = text("note", note.as_deref(), 500, !passed)?;
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = actable(conn, &viewer, &id)?;
        require_status(&t, &[Status::AwaitingInspection], "inspect")?;
        let now = db::now();
        let (to, changes) = if passed {
            (Status::Completed, TicketChanges { completed_at: Some(Some(now)), ..Default::default() })
        } else {
            // back to the technician, who must come again
            let changes = TicketChanges {
                completed_at: Some(None),
                arrived_at: Some(None),
                claimed_at: Some(Some(now)),
                ..Default::default()
            };
            (Status::Assigned, changes)
        };
        let data = json!({ "passed": passed, "note": note });
        let t = apply(conn, &t, &viewer.caller.user_id, "inspected", Some(to), changes, data, now)?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize, ToSchema)]
pub struct CallbackBody {
    /// Whether the resident answered.
    pub reached: bool,
    /// 1 to 5.
    pub satisfaction: Option<i64>,
    pub comment: Option<String>,
}

/// Record a callback (回访). Reaching the resident closes the ticket; otherwise it stays due.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/callback",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = CallbackBody,
    responses((status = 200, body = TicketView), (status = 403, description = "`forbidden`: the desk only", body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
pub async fn callback(
    state: web::Data<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody<CallbackBody>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let CallbackBody { reached, satisfaction, comment } = body.0;
    if satisfaction.is_some_and(|s| !(1..=5).contains(&s)) {
        return Err(ApiError::field("satisfaction", "must be 1 to 5"));
    }
    if satisfaction.is_some() && !reached {
        return Err(ApiError::field("satisfaction", "only a resident who was reached can rate"));
    }
    let comment = text("comment", comment.as_deref(), 1000, false)?;
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let t = actable(conn, &viewer, &id)?;
        require_status(&t, &[Status::Completed], "call back")?;
        let now = db::now();
        db::quotes::insert_callback(
            conn,
            &db::quotes::CallbackRow {
                id: db::new_id(),
                ticket_id: t.id.clone(),
                made_by: viewer.caller.user_id.clone(),
                made_at: now,
                reached,
                satisfaction,
                comment: comment.clone(),
            },
        )?;
        let (to, changes) = if reached {
            (Some(Status::Closed), TicketChanges { closed_at: Some(Some(now)), ..Default::default() })
        } else {
            (None, TicketChanges::default())
        };
        let data = json!({ "reached": reached, "satisfaction": satisfaction, "comment": comment });
        let t = apply(conn, &t, &viewer.caller.user_id, "callback", to, changes, data, now)?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Completed tickets whose resident has not been reached yet, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/callbacks/due",
    tag = "on site",
    security(("bearer" = [])),
    responses((status = 200, body = TicketList), (status = 403, body = crate::error::Problem))
)]
pub async fn callbacks_due(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let items = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let sites = (!viewer.caller.is_admin()).then(|| viewer.sites.clone());
        let rows = db::tickets::callbacks_due(conn, sites.as_deref(), 200)?;
        viewer.views(conn, rows)
    })
    .await?;
    Ok(HttpResponse::Ok().json(TicketList { items, next_cursor: None }))
}

/// The resident's signature, as signed on completion.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/signature",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, content_type = "image/png", body = Vec<u8>), (status = 404, body = crate::error::Problem))
)]
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
