use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::{JsonBody, Path, Query};
use crate::auth::Caller;
use crate::commands::{self, ReasonBody};
use crate::db::{
    self, escalations::EscalationRow, events::NewEvent, tickets::TicketChanges, tickets::TicketFilter,
    tickets::TicketRow, DbConn,
};
use crate::domain::code::Purpose;
use crate::domain::messages;
use crate::domain::phone::mask_phone;
use crate::domain::site::parse_timezone;
use crate::domain::ticket::{local_day, ticket_number, Area, Status, TicketForm};
use crate::domain::user::Role;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::notify;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tickets").route(web::post().to(create_ticket)).route(web::get().to(list_tickets)))
        .service(web::resource("/tickets/{id}").route(web::get().to(get_ticket)))
        .service(web::resource("/tickets/{id}/events").route(web::get().to(ticket_events)))
        .service(web::resource("/tickets/{id}/claim").route(web::post().to(claim_ticket)))
        .service(web::resource("/tickets/{id}/release").route(web::post().to(release_ticket)))
        .service(web::resource("/tickets/{id}/assign").route(web::post().to(assign_ticket)))
        .service(web::resource("/tickets/{id}/cancel").route(web::post().to(cancel_ticket)));
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EscalationView {
    pub id: String,
    pub ticket_id: String,
    pub site_id: String,
    /// `unclaimed | late_arrival | stalled | sms_failed | technician_removed`
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<EscalationRow> for EscalationView {
    fn from(r: EscalationRow) -> Self {
        Self {
            id: r.id,
            ticket_id: r.ticket_id,
            site_id: r.site_id,
            kind: r.kind,
            created_at: r.created_at.and_utc(),
            resolved_at: r.resolved_at.map(|t| t.and_utc()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    pub id: String,
    /// `{SITE_CODE}-{YYYYMMDD}-{NNNN}`, consecutive per site and local day.
    pub number: String,
    pub site_id: String,
    pub area: String,
    pub location: String,
    pub category: String,
    pub urgency: String,
    pub paid: bool,
    pub description: String,
    pub reporter_name: String,
    /// Masked for technicians who do not hold the ticket.
    pub reporter_phone: Option<String>,
    pub appointment_at: Option<DateTime<Utc>>,
    pub resident_supplies_parts: bool,
    pub channel: String,
    pub requested_technician_id: Option<String>,
    /// `open | assigned | on_site | on_hold | awaiting_inspection | completed | closed | cancelled`
    pub status: String,
    pub assignee_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub arrived_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    /// Bumped by every change; send it back to refuse lost updates.
    pub version: i64,
    pub materials: Vec<MaterialLineView>,
    pub quote: Option<QuoteView>,
    pub totals: Totals,
    pub escalations: Vec<EscalationView>,
    /// The earlier ticket this one is rework (返修) of.
    pub rework_of: Option<String>,
    /// Whether the arrival was within the clock's limit (device time when plausible).
    pub arrival_on_time: Option<bool>,
    pub arrival_device_time: Option<DateTime<Utc>>,
    /// `code`, `phone` (the desk verified by calling) or `not_required` (public area).
    pub arrival_verified_via: Option<String>,
    pub phone_verified_at: Option<DateTime<Utc>>,
    /// `awaiting_parts | needs_assessment | resident_absent | other`
    pub hold_reason: Option<String>,
    pub hold_note: Option<String>,
    pub resume_at: Option<DateTime<Utc>>,
    pub result: Option<String>,
    pub resident_rating: Option<i64>,
    pub fee_collected_cents: Option<i64>,
    pub sms: Vec<SmsView>,
    pub callbacks: Vec<CallbackView>,
    pub notes: Vec<super::onsite::NoteView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MaterialLineView {
    pub id: String,
    pub catalogue_item_id: Option<String>,
    pub name: String,
    pub spec: Option<String>,
    pub model: Option<String>,
    /// A decimal string such as `"1.5"`.
    pub quantity: String,
    pub unit: String,
    pub unit_price_cents: i64,
    /// `company` or `resident` (材料为业主提供: never billed).
    pub supplied_by: String,
    pub total_cents: i64,
    pub billable: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteView {
    pub amount_cents: i64,
    pub note: Option<String>,
    /// `pending | accepted | declined`
    pub status: String,
    pub proposed_by: String,
    pub proposed_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// `code` (the resident's SMS code) or `phone` (the desk recorded consent by phone).
    pub decided_via: Option<String>,
    pub decision_note: Option<String>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Totals {
    /// Company-supplied materials.
    pub materials_cents: i64,
    /// Resident-supplied materials at their stated price: shown, never billed.
    pub resident_supplied_cents: i64,
    /// The accepted quote of a paid job.
    pub labour_cents: i64,
    pub billable_cents: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SmsView {
    pub id: String,
    pub template: String,
    /// `pending | sending | sent | failed | superseded` (a newer code replaced it before it went)
    pub status: String,
    pub attempts: i64,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub provider_status: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackView {
    pub id: String,
    pub made_by: String,
    pub made_at: DateTime<Utc>,
    pub reached: bool,
    pub satisfaction: Option<i64>,
    pub comment: Option<String>,
}

/// Rows read for many tickets at once, grouped by ticket in one pass, each ticket's in the order
/// read. Taking one ticket's rows costs the same however many tickets were read.
pub struct ByTicket<T>(HashMap<String, Vec<T>>);

impl<T> ByTicket<T> {
    pub fn new(rows: Vec<T>, ticket_of: impl Fn(&T) -> Option<&str>) -> Self {
        let mut groups: HashMap<String, Vec<T>> = HashMap::new();
        for row in rows {
            if let Some(id) = ticket_of(&row) {
                match groups.get_mut(id) {
                    Some(group) => group.push(row),
                    None => {
                        let id = id.to_owned();
                        groups.insert(id, vec![row]);
                    }
                }
            }
        }
        Self(groups)
    }

    pub fn take(&mut self, ticket_id: &str) -> Vec<T> {
        self.0.remove(ticket_id).unwrap_or_default()
    }
}

/// What a ticket view shows beside the ticket row, read in one query per kind for many tickets.
pub struct Extras {
    escalations: ByTicket<EscalationRow>,
    lines: ByTicket<db::materials::LineRow>,
    quotes: ByTicket<db::quotes::QuoteRow>,
    sms: ByTicket<db::outbox::OutboxRow>,
    callbacks: ByTicket<db::quotes::CallbackRow>,
    notes: ByTicket<db::sync::NoteRow>,
}

impl Extras {
    pub fn load(conn: &mut DbConn, ids: &[String]) -> Result<Self, ApiError> {
        Ok(Self {
            escalations: ByTicket::new(db::escalations::for_tickets(conn, ids)?, |e| Some(&e.ticket_id)),
            lines: ByTicket::new(db::materials::lines_of(conn, ids)?, |l| Some(&l.ticket_id)),
            quotes: ByTicket::new(db::quotes::of(conn, ids)?, |q| Some(&q.ticket_id)),
            sms: ByTicket::new(db::outbox::for_tickets(conn, ids)?, |m| m.ticket_id.as_deref()),
            callbacks: ByTicket::new(db::quotes::callbacks_of(conn, ids)?, |c| Some(&c.ticket_id)),
            notes: ByTicket::new(db::sync::notes_of(conn, ids)?, |n| Some(&n.ticket_id)),
        })
    }
}

pub fn line_view(l: db::materials::LineRow) -> MaterialLineView {
    let billable = l.supplied_by == "company";
    MaterialLineView {
        total_cents: crate::domain::material::line_total_cents(l.quantity_milli, l.unit_price_cents),
        billable,
        id: l.id,
        catalogue_item_id: l.catalogue_item_id,
        name: l.name,
        spec: l.spec,
        model: l.model,
        quantity: l.quantity,
        unit: l.unit,
        unit_price_cents: l.unit_price_cents,
        supplied_by: l.supplied_by,
        created_at: l.created_at.and_utc(),
        updated_at: l.updated_at.and_utc(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct TicketList {
    pub items: Vec<TicketView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketEvent {
    pub id: String,
    /// Position in the history of all tickets; later events have larger numbers.
    pub seq: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub actor_id: Option<String>,
    pub at: DateTime<Utc>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    /// The event's details; what they hold depends on its type.
    // passed on as stored, not parsed again: a pull carries thousands
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

impl From<db::events::EventRow> for TicketEvent {
    fn from(e: db::events::EventRow) -> Self {
        Self {
            id: e.id,
            seq: e.seq,
            event_type: e.event_type,
            actor_id: e.actor_id,
            at: e.at.and_utc(),
            from_status: e.from_status,
            to_status: e.to_status,
            data: RawValue::from_string(e.data).unwrap_or_else(|_| RawValue::NULL.to_owned()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TicketEventList {
    pub items: Vec<TicketEvent>,
}

fn utc(t: Option<NaiveDateTime>) -> Option<DateTime<Utc>> {
    t.map(|t| t.and_utc())
}

/// Who is looking, with the sites and trades that decide what they may see.
pub struct Viewer {
    pub caller: Caller,
    pub sites: Vec<String>,
    pub trades: Vec<String>,
}

impl Viewer {
    pub fn load(conn: &mut DbConn, caller: Caller) -> Result<Self, ApiError> {
        let sites = db::users::site_ids(conn, &caller.user_id)?;
        let trades = db::tickets::trades_of(conn, &caller.user_id)?;
        Ok(Self { caller, sites, trades })
    }

    fn holds(&self, t: &TicketRow) -> bool {
        t.assignee_id.as_deref() == Some(self.caller.user_id.as_str())
    }

    /// A ticket of the technician's sites and trades: theirs to grab when open.
    fn in_reach(&self, t: &TicketRow) -> bool {
        self.sites.contains(&t.site_id) && self.trades.contains(&t.category)
    }

    /// Technicians see their own tickets and their pool, of their sites only (moved off a site,
    /// they see none of its tickets); the desk its sites'; admins all.
    pub fn can_see(&self, t: &TicketRow) -> bool {
        match self.caller.role {
            Role::Admin => true,
            Role::Dispatcher | Role::Supervisor => self.sites.contains(&t.site_id),
            Role::Technician => {
                self.sites.contains(&t.site_id)
                    && (self.holds(t) || (t.status == Status::Open.as_str() && self.in_reach(t)))
            }
        }
    }

    fn is_site_desk(&self, site_id: &str) -> bool {
        self.caller.is_admin() || (self.caller.role.is_desk() && self.sites.iter().any(|s| s == site_id))
    }

    pub fn view(&self, t: TicketRow, extras: &mut Extras) -> TicketView {
        let masked = self.caller.role == Role::Technician && !self.holds(&t);
        let id = t.id.clone();
        let escalations = extras.escalations.take(&id);
        let materials: Vec<MaterialLineView> = extras.lines.take(&id).into_iter().map(line_view).collect();
        let quote = extras.quotes.take(&id).pop();
        let mut totals = Totals::default();
        for line in &materials {
            if line.billable {
                totals.materials_cents += line.total_cents;
            } else {
                totals.resident_supplied_cents += line.total_cents;
            }
        }
        totals.labour_cents = quote.as_ref().filter(|q| q.status == "accepted").map_or(0, |q| q.amount_cents);
        totals.billable_cents = totals.materials_cents + totals.labour_cents;
        let sms = extras
            .sms
            .take(&id)
            .into_iter()
            .map(|m| SmsView {
                id: m.id,
                template: m.template,
                status: m.status,
                attempts: m.attempts,
                provider: m.provider,
                provider_message_id: m.provider_message_id,
                provider_status: m.provider_status,
                last_error: m.last_error,
                created_at: m.created_at.and_utc(),
                sent_at: utc(m.sent_at),
                failed_at: utc(m.failed_at),
            })
            .collect();
        let callbacks = extras
            .callbacks
            .take(&id)
            .into_iter()
            .map(|c| CallbackView {
                id: c.id,
                made_by: c.made_by,
                made_at: c.made_at.and_utc(),
                reached: c.reached,
                satisfaction: c.satisfaction,
                comment: c.comment,
            })
            .collect();
        let notes = extras.notes.take(&id).into_iter().map(Into::into).collect();
        TicketView {
            reporter_phone: t.reporter_phone.map(|p| if masked { mask_phone(&p) } else { p }),
            id: t.id,
            number: t.number,
            site_id: t.site_id,
            area: t.area,
            location: t.location,
            category: t.category,
            urgency: t.urgency,
            paid: t.paid,
            description: t.description,
            reporter_name: t.reporter_name,
            appointment_at: utc(t.appointment_at),
            resident_supplies_parts: t.resident_supplies_parts,
            channel: t.channel,
            requested_technician_id: t.requested_technician_id,
            status: t.status,
            assignee_id: t.assignee_id,
            created_by: t.created_by,
            created_at: t.created_at.and_utc(),
            claimed_at: utc(t.claimed_at),
            arrived_at: utc(t.arrived_at),
            completed_at: utc(t.completed_at),
            closed_at: utc(t.closed_at),
            cancelled_at: utc(t.cancelled_at),
            cancel_reason: t.cancel_reason,
            version: t.version,
            materials,
            quote: quote.map(|q| QuoteView {
                amount_cents: q.amount_cents,
                note: q.note,
                status: q.status,
                proposed_by: q.proposed_by,
                proposed_at: q.proposed_at.and_utc(),
                decided_at: utc(q.decided_at),
                decided_via: q.decided_via,
                decision_note: q.decision_note,
            }),
            totals,
            escalations: escalations.into_iter().map(Into::into).collect(),
            rework_of: t.rework_of,
            arrival_on_time: t.arrival_on_time,
            arrival_device_time: utc(t.arrival_device_time),
            arrival_verified_via: t.arrival_verified_via,
            phone_verified_at: utc(t.phone_verified_at),
            hold_reason: t.hold_reason,
            hold_note: t.hold_note,
            resume_at: utc(t.resume_at),
            result: t.result,
            resident_rating: t.resident_rating,
            fee_collected_cents: t.fee_collected_cents,
            sms,
            callbacks,
            notes,
        }
    }

    /// Views of many tickets, with what they show beside the row read in one query per kind.
    pub fn views(&self, conn: &mut DbConn, rows: Vec<TicketRow>) -> Result<Vec<TicketView>, ApiError> {
        let ids: Vec<String> = rows.iter().map(|t| t.id.clone()).collect();
        let mut extras = Extras::load(conn, &ids)?;
        Ok(rows.into_iter().map(|t| self.view(t, &mut extras)).collect())
    }

    pub fn view_one(&self, conn: &mut DbConn, t: TicketRow) -> Result<TicketView, ApiError> {
        let mut extras = Extras::load(conn, std::slice::from_ref(&t.id))?;
        Ok(self.view(t, &mut extras))
    }
}

/// The ticket if the viewer may see it; anything else is "not found", never its data.
fn visible(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<TicketRow, ApiError> {
    db::tickets::find(conn, id)?.filter(|t| viewer.can_see(t)).ok_or_else(|| ApiError::not_found("ticket"))
}

/// [`visible`], locked for a change (see [`db::tickets::find_for_update`]).
fn visible_for_update(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<TicketRow, ApiError> {
    db::tickets::find_for_update(conn, id)?.filter(|t| viewer.can_see(t)).ok_or_else(|| ApiError::not_found("ticket"))
}

/// Applies a change if the ticket is still as read and appends its event; a change of status
/// also resolves the ticket's open escalations (it moved on). Returns the ticket as it now stands.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    conn: &mut DbConn,
    t: &TicketRow,
    actor: &str,
    event_type: &'static str,
    to: Option<Status>,
    mut changes: TicketChanges,
    data: Value,
    now: NaiveDateTime,
) -> Result<TicketRow, ApiError> {
    let from = Status::parse(&t.status);
    changes.status = to.map(|s| s.as_str().to_owned());
    changes.last_activity_at = Some(now);
    let Some(changed) = db::tickets::update_at_version(conn, &t.id, t.version, &changes, 1)? else {
        return Err(ApiError::new(ErrorCode::TicketChanged, "the ticket changed meanwhile; reload it and try again"));
    };
    if to.is_some() && to != from {
        db::escalations::resolve_for_ticket(conn, &t.id, now)?;
    }
    // the update above holds the ticket's row
    db::events::append_for_locked(
        conn,
        vec![NewEvent {
            ticket_id: t.id.clone(),
            site_id: t.site_id.clone(),
            event_type,
            actor_id: Some(actor.to_owned()),
            at: now,
            from_status: from.map(Status::as_str),
            to_status: to.or(from).map(Status::as_str),
            data,
        }],
    )?;
    Ok(changed)
}

/// [`apply`] with a change of status.
#[allow(clippy::too_many_arguments)]
fn transition(
    conn: &mut DbConn,
    t: &TicketRow,
    actor: &str,
    event_type: &'static str,
    to: Status,
    changes: TicketChanges,
    data: Value,
    now: NaiveDateTime,
) -> Result<TicketRow, ApiError> {
    apply(conn, t, actor, event_type, Some(to), changes, data, now)
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
    let (code_key, policy) = (state.code_key.clone(), state.settings.sms_policy.clone());
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

pub fn claim_refusal(t: &TicketRow) -> ApiError {
    if t.assignee_id.is_some() && Status::parse(&t.status).is_some_and(|s| Status::ACTIVE.contains(&s)) {
        ApiError::new(ErrorCode::AlreadyClaimed, "another technician claimed this ticket first")
    } else {
        ApiError::new(ErrorCode::NotClaimable, format!("the ticket is {}, not open", t.status))
    }
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
