//! From the door to the callback: arrival with the resident's code, materials, paid quotes,
//! hold and resume, completion, inspection of public-area work, and the callback (回访).

use actix_web::{web, HttpResponse};
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::tickets::{apply, line_view, MaterialLineView, TicketList, TicketView, Viewer};
use super::{nullable, Checks, JsonBody};
use crate::auth::Caller;
use crate::db::{self, materials::LineChanges, materials::LineRow, tickets::TicketChanges, tickets::TicketRow, DbConn};
use crate::domain::code::{self, Purpose, MAX_FAILED_ATTEMPTS};
use crate::domain::material::{parse_quantity, SuppliedBy};
use crate::domain::messages::{self, yuan};
use crate::domain::ticket::{Area, HoldReason, Status, Urgency};
use crate::domain::user::Role;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::notify::{self, Queued};
use crate::startup::AppState;

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
        .service(post("/tickets/{id}/hold", web::post().to(hold)))
        .service(post("/tickets/{id}/resume", web::post().to(resume)))
        .service(post("/tickets/{id}/complete", web::post().to(complete)))
        .service(post("/tickets/{id}/inspect", web::post().to(inspect)))
        .service(post("/tickets/{id}/callback", web::post().to(callback)))
        .service(web::resource("/tickets/{id}/signature").route(web::get().to(signature)))
        .service(web::resource("/callbacks/due").route(web::get().to(callbacks_due)));
}

/// A ticket the caller may act on: the technician holding it, or the desk of its site.
fn actable(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<TicketRow, ApiError> {
    let t = db::tickets::find(conn, id)?.filter(|t| viewer.can_see(t)).ok_or_else(|| ApiError::not_found("ticket"))?;
    if viewer.caller.role == Role::Technician && t.assignee_id.as_deref() != Some(viewer.caller.user_id.as_str()) {
        return Err(ApiError::not_found("ticket"));
    }
    Ok(t)
}

fn require_status(t: &TicketRow, allowed: &[Status], doing: &str) -> Result<(), ApiError> {
    if Status::parse(&t.status).is_some_and(|s| allowed.contains(&s)) {
        return Ok(());
    }
    Err(ApiError::new(ErrorCode::InvalidTransition, format!("cannot {doing} a ticket that is {}", t.status)))
}

fn require_version(expected: Option<i64>, t: &TicketRow) -> Result<(), ApiError> {
    match expected {
        Some(v) if v != t.version => Err(ApiError::new(
            ErrorCode::VersionConflict,
            format!("the ticket is at version {}, not {v}: reload it", t.version),
        )
        .with("current_version", t.version)),
        _ => Ok(()),
    }
}

/// Work on a paid job waits for an accepted quote (特约维修: the price is agreed first).
fn require_accepted_quote(conn: &mut DbConn, t: &TicketRow) -> Result<(), ApiError> {
    if !t.paid {
        return Ok(());
    }
    match db::quotes::find(conn, &t.id)? {
        Some(q) if q.status == "accepted" => Ok(()),
        _ => Err(ApiError::new(ErrorCode::QuoteRequired, "this is paid work: the resident must accept a quote first")),
    }
}

fn text(field: &str, raw: Option<&str>, max: usize, required: bool) -> Result<Option<String>, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None if required => Err(ApiError::field(field, "is required")),
        None => Ok(None),
        Some(s) if s.chars().count() > max => Err(ApiError::field(field, format!("must be at most {max} characters"))),
        Some(s) => Ok(Some(s.to_owned())),
    }
}

enum CodeCheck {
    Good,
    Wrong { attempts_left: i64 },
    Locked,
    Unusable,
}

/// Checks a resident's code; a wrong try is counted (the caller must commit even when it answers
/// an error). The code is used up when it matches.
fn check_code(
    conn: &mut DbConn,
    key: &[u8],
    t: &TicketRow,
    purpose: Purpose,
    given: &str,
    now: NaiveDateTime,
) -> Result<CodeCheck, ApiError> {
    let Some(row) = db::codes::find(conn, &t.id, purpose.as_str())? else { return Ok(CodeCheck::Unusable) };
    if row.used_at.is_some() || row.expires_at <= now {
        return Ok(CodeCheck::Unusable);
    }
    if row.failed_attempts >= MAX_FAILED_ATTEMPTS {
        return Ok(CodeCheck::Locked);
    }
    if code::code_matches(key, &t.id, purpose, given, &row.code_hash) {
        return Ok(if db::codes::mark_used(conn, &t.id, purpose.as_str(), now)? {
            CodeCheck::Good
        } else {
            CodeCheck::Unusable
        });
    }
    let failures = db::codes::record_failure(conn, &t.id, purpose.as_str())?;
    Ok(CodeCheck::Wrong { attempts_left: (MAX_FAILED_ATTEMPTS - failures).max(0) })
}

fn code_refusal(check: CodeCheck) -> Option<ApiError> {
    match check {
        CodeCheck::Good => None,
        CodeCheck::Wrong { attempts_left } => Some(
            ApiError::new(ErrorCode::InvalidCode, format!("wrong code; {attempts_left} tries left"))
                .with("attempts_left", attempts_left),
        ),
        CodeCheck::Locked => Some(ApiError::new(
            ErrorCode::CodeLocked,
            "five wrong codes: ask the desk to resend the code or verify by phone",
        )),
        CodeCheck::Unusable => Some(
            ApiError::new(ErrorCode::InvalidCode, "this code is used or expired: ask the desk to resend it")
                .with("attempts_left", 0),
        ),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ArriveBody {
    /// The resident's SMS code; not needed for public-area tickets or after the desk verified by phone.
    pub code: Option<String>,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    /// When the phone says it arrived (kept beside the server time; used for the on-time check
    /// when plausible).
    pub device_time: Option<DateTime<Utc>>,
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
        (status = 409, description = "`invalid_transition`", body = crate::error::Problem),
        (status = 422, description = "`invalid_code` with `attempts_left`", body = crate::error::Problem),
        (status = 423, description = "`code_locked` after five wrong codes", body = crate::error::Problem),
    )
)]
pub async fn arrive(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: JsonBody<ArriveBody>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Technician])?;
    let ArriveBody { code, lat, lng, device_time } = body.0;
    if lat.is_some_and(|v| !(-90.0..=90.0).contains(&v)) || lng.is_some_and(|v| !(-180.0..=180.0).contains(&v)) {
        return Err(ApiError::field("lat", "lat must be within ±90 and lng within ±180"));
    }
    let (key, clock, id) = (state.code_key.clone(), state.settings.clock, id.into_inner());
    let outcome = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &id)?;
        if t.status == Status::OnSite.as_str() {
            return Ok(Ok(viewer.view_one(conn, t)?));
        }
        require_status(&t, &[Status::Assigned], "check in at")?;
        let now = db::now();
        let verified_via = if t.area == Area::Public.as_str() {
            "not_required"
        } else if t.phone_verified_at.is_some() {
            "phone"
        } else {
            let given = code.as_deref().map(str::trim).filter(|c| !c.is_empty());
            let Some(given) = given else { return Err(ApiError::field("code", "the resident's code is required")) };
            if let Some(refusal) = code_refusal(check_code(conn, &key, &t, Purpose::Arrival, given, now)?) {
                return Ok(Err(refusal));
            }
            "code"
        };
        let claimed_at = t.claimed_at.unwrap_or(t.created_at);
        // the device's clock counts only when plausible: not ahead of ours, not before the claim
        let device = device_time.map(|d| d.naive_utc());
        let counted = device
            .filter(|d| *d <= now + Duration::minutes(2) && *d >= claimed_at - Duration::minutes(1))
            .unwrap_or(now);
        let urgency = Urgency::parse(&t.urgency).unwrap_or(Urgency::Normal);
        let on_time = counted <= clock.arrival_deadline(claimed_at, urgency, t.appointment_at);
        let changes = TicketChanges {
            arrived_at: Some(Some(now)),
            arrival_device_time: Some(device),
            arrival_on_time: Some(Some(on_time)),
            arrival_verified_via: Some(Some(verified_via.to_owned())),
            arrival_lat: Some(lat),
            arrival_lng: Some(lng),
            ..Default::default()
        };
        let data = json!({ "on_time": on_time, "device_time": device_time, "verified_via": verified_via,
            "lat": lat, "lng": lng });
        let t = apply(conn, &t, &viewer.caller.user_id, "arrived", Some(Status::OnSite), changes, data, now)?;
        Ok(Ok(viewer.view_one(conn, t)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(outcome?))
}

#[derive(Deserialize, ToSchema)]
pub struct NoteBody {
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
    request_body = NoteBody,
    responses((status = 200, body = TicketView), (status = 409, body = crate::error::Problem))
)]
pub async fn verify_by_phone(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: JsonBody<NoteBody>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let note = text("note", Some(&body.0.note), 500, true)?;
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
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
/// sends per ticket an hour, 60 s apart.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/resend-code",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 202, body = Resent),
        (status = 409, body = crate::error::Problem),
        (status = 429, description = "`sms_rate_limited`, with Retry-After", body = crate::error::Problem),
    )
)]
pub async fn resend_code(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let (key, policy, id) = (state.code_key.clone(), state.settings.sms_policy.clone(), id.into_inner());
    let outcome = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &id)?;
        if t.area != Area::InHome.as_str() {
            return Err(ApiError::new(ErrorCode::InvalidTransition, "public-area tickets have no resident code"));
        }
        require_status(&t, &[Status::Open, Status::Assigned], "resend the code of")?;
        let now = db::now();
        let sends = db::outbox::ticket_sends_since(conn, &t.id, messages::ARRIVAL_CODE, now - Duration::hours(1))?;
        if let Some(last) = sends.first() {
            let wait = policy.code_interval_secs - (now - *last).num_seconds();
            if wait > 0 {
                let detail = format!("codes go out at most every {} seconds", policy.code_interval_secs);
                return Err(ApiError::new(ErrorCode::SmsRateLimited, detail).retry_after(wait as u64));
            }
        }
        if sends.len() as i64 >= policy.codes_per_hour {
            let oldest = sends.last().copied().unwrap_or(now);
            let wait = (oldest + Duration::hours(1) - now).num_seconds().max(1) as u64;
            let detail = format!("at most {} codes an hour per ticket", policy.codes_per_hour);
            return Err(ApiError::new(ErrorCode::SmsRateLimited, detail).retry_after(wait));
        }
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

#[derive(Deserialize, ToSchema)]
pub struct NewMaterial {
    /// Made by the phone (UUID), so a line added offline keeps its id; sending it again is harmless.
    pub id: Option<String>,
    /// Fills name, spec, model, unit and price from the site's catalogue when those are absent.
    pub catalogue_item_id: Option<String>,
    pub name: Option<String>,
    pub spec: Option<String>,
    pub model: Option<String>,
    /// A decimal string such as `"1.5"`.
    pub quantity: String,
    pub unit: Option<String>,
    pub unit_price_cents: Option<i64>,
    /// `company` or `resident`.
    pub supplied_by: String,
    /// The ticket version the phone last saw; a different one answers 409 `version_conflict`.
    pub version: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct MaterialPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub spec: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
    pub quantity: Option<String>,
    pub unit: Option<String>,
    pub unit_price_cents: Option<i64>,
    pub supplied_by: Option<String>,
    /// The ticket version the phone last saw; a different one answers 409 with the current line.
    pub version: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
pub struct VersionQuery {
    pub version: Option<i64>,
}

fn check_price(checks: &mut Checks, cents: i64) {
    if !(0..=100_000_000).contains(&cents) {
        checks.fail("unit_price_cents", "must be 0 to 100000000");
    }
}

fn materials_allowed(conn: &mut DbConn, t: &TicketRow) -> Result<(), ApiError> {
    require_status(t, &[Status::OnSite, Status::OnHold], "record materials on")?;
    require_accepted_quote(conn, t)
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
    id: web::Path<String>,
    body: JsonBody<NewMaterial>,
) -> ApiResult<HttpResponse> {
    let m = body.0;
    let mut checks = Checks::default();
    let line_id = match m.id.as_deref().map(str::trim) {
        Some(raw) => {
            checks.take("id", uuid::Uuid::parse_str(raw).map(|u| u.to_string()).map_err(|_| "must be a UUID".into()))
        }
        None => Some(db::new_id()),
    };
    let quantity = checks.take("quantity", parse_quantity(&m.quantity));
    let supplied_by = checks
        .take("supplied_by", SuppliedBy::parse(&m.supplied_by).ok_or_else(|| "must be company or resident".to_owned()));
    if let Some(price) = m.unit_price_cents {
        check_price(&mut checks, price);
    }
    checks.finish()?;
    let (Some(line_id), Some((quantity, quantity_milli)), Some(supplied_by)) = (line_id, quantity, supplied_by) else {
        unreachable!("checked above")
    };
    let ticket_id = id.into_inner();
    let line = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &ticket_id)?;
        if let Some(existing) = db::materials::find_line(conn, &line_id)? {
            // the same add sent again (a retry, a replayed offline queue): answer what stands
            if existing.ticket_id != t.id {
                return Err(ApiError::field("id", "belongs to another ticket's line"));
            }
            return Ok(existing);
        }
        materials_allowed(conn, &t)?;
        require_version(m.version, &t)?;
        let item = match &m.catalogue_item_id {
            Some(item_id) => Some(
                db::materials::find_item(conn, item_id)?
                    .filter(|i| i.site_id == t.site_id)
                    .ok_or_else(|| ApiError::field("catalogue_item_id", "is not in this site's catalogue"))?,
            ),
            None => None,
        };
        let name =
            text("name", m.name.as_deref().or(item.as_ref().map(|i| i.name.as_str())), 100, true)?.unwrap_or_default();
        let unit =
            text("unit", m.unit.as_deref().or(item.as_ref().map(|i| i.unit.as_str())), 20, true)?.unwrap_or_default();
        let unit_price_cents = m
            .unit_price_cents
            .or(item.as_ref().map(|i| i.default_price_cents))
            .ok_or_else(|| ApiError::field("unit_price_cents", "is required"))?;
        let now = db::now();
        let line = LineRow {
            id: line_id,
            ticket_id: t.id.clone(),
            catalogue_item_id: item.as_ref().map(|i| i.id.clone()),
            name,
            spec: text("spec", m.spec.as_deref(), 100, false)?.or(item.as_ref().and_then(|i| i.spec.clone())),
            model: text("model", m.model.as_deref(), 100, false)?.or(item.as_ref().and_then(|i| i.model.clone())),
            quantity,
            quantity_milli,
            unit,
            unit_price_cents,
            supplied_by: supplied_by.as_str().to_owned(),
            created_by: viewer.caller.user_id.clone(),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        db::materials::insert_line(conn, &line)?;
        let data = json!({ "line": line_view(line.clone()) });
        apply(conn, &t, &viewer.caller.user_id, "material_added", None, TicketChanges::default(), data, now)?;
        Ok(line)
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
    path: web::Path<(String, String)>,
    body: JsonBody<MaterialPatch>,
) -> ApiResult<HttpResponse> {
    let p = body.0;
    let mut checks = Checks::default();
    let quantity = p.quantity.as_deref().and_then(|q| checks.take("quantity", parse_quantity(q)));
    let supplied_by = p.supplied_by.as_deref().and_then(|s| {
        checks.take("supplied_by", SuppliedBy::parse(s).ok_or_else(|| "must be company or resident".to_owned()))
    });
    if let Some(price) = p.unit_price_cents {
        check_price(&mut checks, price);
    }
    checks.finish()?;
    let name = text("name", p.name.as_deref(), 100, false)?;
    let unit = text("unit", p.unit.as_deref(), 20, false)?;
    let spec = p.spec.map(|s| text("spec", s.as_deref(), 100, false)).transpose()?;
    let model = p.model.map(|s| text("model", s.as_deref(), 100, false)).transpose()?;
    let (ticket_id, line_id) = path.into_inner();
    let line = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &ticket_id)?;
        let before = db::materials::find_line(conn, &line_id)?
            .filter(|l| l.ticket_id == t.id && l.deleted_at.is_none())
            .ok_or_else(|| ApiError::not_found("material line"))?;
        materials_allowed(conn, &t)?;
        if let Err(e) = require_version(p.version, &t) {
            return Err(e.with("current", serde_json::to_value(line_view(before)).unwrap_or(Value::Null)));
        }
        let now = db::now();
        let changes = LineChanges {
            name,
            spec,
            model,
            quantity: quantity.as_ref().map(|q| q.0.clone()),
            quantity_milli: quantity.as_ref().map(|q| q.1),
            unit,
            unit_price_cents: p.unit_price_cents,
            supplied_by: supplied_by.map(|s| s.as_str().to_owned()),
            updated_at: Some(now),
            deleted_at: None,
        };
        db::materials::update_line(conn, &line_id, &changes)?;
        let after = db::materials::find_line(conn, &line_id)?.ok_or_else(|| ApiError::not_found("material line"))?;
        // the overwritten values stay in the history
        let data = json!({ "line_id": line_id, "before": line_view(before), "after": line_view(after.clone()) });
        apply(conn, &t, &viewer.caller.user_id, "material_updated", None, TicketChanges::default(), data, now)?;
        Ok(after)
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
    path: web::Path<(String, String)>,
    query: web::Query<VersionQuery>,
) -> ApiResult<HttpResponse> {
    let (ticket_id, line_id) = path.into_inner();
    let version = query.version;
    db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &ticket_id)?;
        let line = db::materials::find_line(conn, &line_id)?
            .filter(|l| l.ticket_id == t.id)
            .ok_or_else(|| ApiError::not_found("material line"))?;
        if line.deleted_at.is_some() {
            return Ok(());
        }
        materials_allowed(conn, &t)?;
        require_version(version, &t)?;
        let now = db::now();
        let changes = LineChanges { deleted_at: Some(Some(now)), updated_at: Some(now), ..Default::default() };
        db::materials::update_line(conn, &line_id, &changes)?;
        let data = json!({ "line_id": line_id, "line": line_view(line) });
        apply(conn, &t, &viewer.caller.user_id, "material_removed", None, TicketChanges::default(), data, now)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
pub struct QuoteBody {
    pub amount_cents: i64,
    pub note: Option<String>,
}

/// Propose the price of paid work; the resident gets a code by SMS to accept it.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/quote",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = QuoteBody,
    responses((status = 201, body = TicketView), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
pub async fn propose_quote(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: JsonBody<QuoteBody>,
) -> ApiResult<HttpResponse> {
    let QuoteBody { amount_cents, note } = body.0;
    if !(1..=100_000_000).contains(&amount_cents) {
        return Err(ApiError::field("amount_cents", "must be 1 to 100000000"));
    }
    let note = text("note", note.as_deref(), 500, false)?;
    let (key, policy, id) = (state.code_key.clone(), state.settings.sms_policy.clone(), id.into_inner());
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &id)?;
        if !t.paid {
            return Err(ApiError::new(ErrorCode::InvalidTransition, "only paid work (特约维修) is quoted"));
        }
        require_status(&t, &[Status::Assigned, Status::OnSite, Status::OnHold], "quote")?;
        if db::quotes::find(conn, &t.id)?.is_some_and(|q| q.status == "accepted") {
            return Err(ApiError::new(ErrorCode::InvalidTransition, "the quote is already accepted"));
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

/// The resident accepts the quote: with the SMS code, or by phone to the desk.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/quote/accept",
    tag = "on site",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = AcceptQuoteBody,
    responses(
        (status = 200, body = TicketView),
        (status = 409, body = crate::error::Problem),
        (status = 422, description = "`invalid_code` with `attempts_left`", body = crate::error::Problem),
        (status = 423, description = "`code_locked`", body = crate::error::Problem),
    )
)]
pub async fn accept_quote(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
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
        let viewer = Viewer::load(conn, caller)?;
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
            if let Some(refusal) = code_refusal(check_code(conn, &key, &t, Purpose::Quote, given, now)?) {
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
    id: web::Path<String>,
    body: JsonBody<DeclineBody>,
) -> ApiResult<HttpResponse> {
    let note = text("note", body.0.note.as_deref(), 500, false)?;
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
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

#[derive(Deserialize, ToSchema)]
pub struct HoldBody {
    /// `awaiting_parts | needs_assessment | resident_absent | other`
    pub reason: String,
    pub note: Option<String>,
    /// When work should go on; the stalled clock waits for it.
    pub resume_at: Option<DateTime<Utc>>,
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
    id: web::Path<String>,
    body: JsonBody<HoldBody>,
) -> ApiResult<HttpResponse> {
    let HoldBody { reason, note, resume_at } = body.0;
    let reason = HoldReason::parse(&reason)
        .ok_or_else(|| ApiError::field("reason", format!("must be one of {}", HoldReason::names())))?;
    let note = text("note", note.as_deref(), 500, reason == HoldReason::Other)?;
    if resume_at.is_some_and(|r| r < Utc::now()) {
        return Err(ApiError::field("resume_at", "must be in the future"));
    }
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &id)?;
        require_status(&t, &[Status::OnSite], "hold")?;
        let now = db::now();
        let changes = TicketChanges {
            hold_reason: Some(Some(reason.as_str().to_owned())),
            hold_note: Some(note.clone()),
            resume_at: Some(resume_at.map(|r| r.naive_utc())),
            ..Default::default()
        };
        let data = json!({ "reason": reason.as_str(), "note": note, "resume_at": resume_at });
        let t = apply(conn, &t, &viewer.caller.user_id, "held", Some(Status::OnHold), changes, data, now)?;
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
pub async fn resume(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &id)?;
        require_status(&t, &[Status::OnHold], "resume")?;
        let now = db::now();
        let changes = TicketChanges {
            hold_reason: Some(None),
            hold_note: Some(None),
            resume_at: Some(None),
            ..Default::default()
        };
        let t = apply(conn, &t, &viewer.caller.user_id, "resumed", Some(Status::OnSite), changes, json!({}), now)?;
        viewer.view_one(conn, t)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize, ToSchema)]
pub struct CompleteBody {
    pub result: String,
    /// 1 to 5.
    pub resident_rating: Option<i64>,
    /// A PNG, at most 256 KB.
    pub resident_signature_png_base64: Option<String>,
    pub fee_collected_cents: Option<i64>,
}

pub const MAX_SIGNATURE_BYTES: usize = 256 * 1024;
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Decodes the signature and checks it is a PNG: the magic bytes, then an IHDR chunk first.
fn parse_signature(raw: &str) -> Result<Vec<u8>, String> {
    let raw = raw.trim();
    let raw = raw.strip_prefix("data:image/png;base64,").unwrap_or(raw);
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|_| "is not base64".to_owned())?;
    if bytes.len() > MAX_SIGNATURE_BYTES {
        return Err("must be at most 256 KB".into());
    }
    if bytes.len() < 33 || !bytes.starts_with(PNG_MAGIC) || &bytes[12..16] != b"IHDR" {
        return Err("must be a PNG image".into());
    }
    Ok(bytes)
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
        (status = 409, description = "`quote_required`, `invalid_transition`", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
pub async fn complete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: JsonBody<CompleteBody>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Technician])?;
    let b = body.0;
    let mut checks = Checks::default();
    let result = checks.take("result", text("result", Some(&b.result), 2000, true).map_err(|e| e.detail));
    if b.resident_rating.is_some_and(|r| !(1..=5).contains(&r)) {
        checks.fail("resident_rating", "must be 1 to 5");
    }
    if b.fee_collected_cents.is_some_and(|f| !(0..=100_000_000).contains(&f)) {
        checks.fail("fee_collected_cents", "must be 0 to 100000000");
    }
    let signature = match &b.resident_signature_png_base64 {
        Some(raw) => checks.take("resident_signature_png_base64", parse_signature(raw)),
        None => None,
    };
    checks.finish()?;
    let result = result.flatten();
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &id)?;
        require_status(&t, &[Status::OnSite], "complete")?;
        require_accepted_quote(conn, &t)?;
        let now = db::now();
        let in_home = t.area == Area::InHome.as_str();
        let rework_of = if in_home { db::tickets::rework_candidate(conn, &t, now - Duration::days(30))? } else { None };
        let changes = TicketChanges {
            result: Some(result.clone()),
            resident_rating: Some(b.resident_rating),
            fee_collected_cents: Some(b.fee_collected_cents),
            signature_png: signature.map(Some),
            completed_at: Some(Some(now)),
            rework_of: rework_of.clone().map(Some),
            hold_reason: Some(None),
            hold_note: Some(None),
            resume_at: Some(None),
            ..Default::default()
        };
        let to = if in_home { Status::Completed } else { Status::AwaitingInspection };
        let data = json!({ "result": result, "resident_rating": b.resident_rating,
            "fee_collected_cents": b.fee_collected_cents, "rework_of": rework_of });
        let t = apply(conn, &t, &viewer.caller.user_id, "completed", Some(to), changes, data, now)?;
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
    responses((status = 200, body = TicketView), (status = 409, body = crate::error::Problem))
)]
pub async fn inspect(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: JsonBody<InspectBody>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let InspectBody { passed, note } = body.0;
    let note = text("note", note.as_deref(), 500, !passed)?;
    let id = id.into_inner();
    let view = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
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
    responses((status = 200, body = TicketView), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
pub async fn callback(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
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
        let viewer = Viewer::load(conn, caller)?;
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
pub async fn signature(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let png = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let t = actable(conn, &viewer, &id)?;
        db::tickets::signature(conn, &t.id)?.ok_or_else(|| ApiError::not_found("signature"))
    })
    .await?;
    Ok(HttpResponse::Ok().content_type("image/png").body(png))
}
