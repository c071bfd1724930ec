//! What the desk (dispatchers, supervisors, admins of a site) does with a ticket: register it,
//! hand it to a technician, cancel it, stand in for the resident's code, inspect public-area work
//! and call the resident back.

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::error::Error;
use super::{actable, apply, back_to_pool, reason, require_move, text, transition, Ctx, ReasonBody};
use crate::db::{self, events::NewEvent, tickets::TicketChanges, tickets::TicketRow, users::UserRecord, DbConn};
use crate::domain::category::Category;
use crate::domain::code::Purpose;
use crate::domain::edit::{Changes, Intake, TicketEdit};
use crate::domain::messages;
use crate::domain::place::{place_key, search_text};
use crate::domain::site::parse_timezone;
use crate::domain::ticket::{
    local_day, ticket_number, Area, EscalationKind, Move, NewTicket, Status, TicketForm, Urgency,
};
use crate::domain::user::Role;
use crate::error::ErrorCode;
use crate::notify::{self, Queued};
use crate::views::{visible_for_update, Viewer};

/// The roles that make up a site's desk.
pub const DESK: [Role; 3] = [Role::Admin, Role::Dispatcher, Role::Supervisor];

/// Register a ticket from the intake form: numbered by the site's local day, assigned at once
/// when a technician is requested, and (in-home) the resident's code for the door queued in the
/// same transaction. `create_key` (the request's idempotency key) finds the ticket a lost answer
/// already created.
pub fn create_ticket(
    conn: &mut DbConn,
    ctx: &Ctx,
    viewer: &Viewer,
    form: &TicketForm,
    create_key: Option<&str>,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    viewer.caller.require(&DESK)?;
    let new: NewTicket = form.validate(now.and_utc()).map_err(Error::validation)?;
    if let Some(key) = create_key {
        // the same request again after a crash lost its stored answer: the ticket exists
        if let Some(existing) = db::tickets::find_created_with(conn, &viewer.caller.user_id, key)? {
            return Ok(existing);
        }
    }
    let site = db::sites::find(conn, &new.site_id)?
        .filter(|s| viewer.is_site_desk(&s.id))
        .ok_or_else(|| Error::field("site_id", "is not a site of yours"))?;
    if let Some(tech) = &new.requested_technician_id {
        if !db::tickets::is_site_technician(conn, tech, &site.id)? {
            return Err(Error::field("requested_technician_id", "is not an active technician of this site"));
        }
    }
    let tz = parse_timezone(&site.timezone).map_err(Error::internal)?;
    let day = local_day(now, tz);
    let n = db::tickets::next_number(conn, &site.id, &day)?;
    let number = ticket_number(&site.code, &day, n);
    let row = TicketRow::from_intake(new, number, viewer.caller.user_id.clone(), now);
    db::tickets::insert(conn, &row, create_key)?;
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
        let sms = notify::CodeSms {
            purpose: Purpose::Arrival,
            template: messages::ARRIVAL_CODE,
            extra: &[],
            first: true,
            new_number: false,
        };
        notify::issue_code(conn, &ctx.code_key, &ctx.sms_policy, &row, &site.name, sms, now)?;
    }
    super::push::announce(conn, None, &row, &viewer.caller.user_id, "created", now)?;
    // the history last (the lock order, `db` module doc)
    db::events::append(conn, events)?;
    Ok(row)
}

/// The ticket's intake fields, as [`crate::domain::edit`] reads them.
fn intake_of(t: &TicketRow) -> Result<Intake, Error> {
    let bad = |what: &str| Error::internal(format!("ticket {} has an unknown {what}", t.id));
    Ok(Intake {
        area: Area::parse(&t.area).ok_or_else(|| bad("area"))?,
        location: t.location.clone(),
        reporter_name: t.reporter_name.clone(),
        reporter_phone: t.reporter_phone.clone(),
        category: Category::parse(&t.category).ok_or_else(|| bad("category"))?,
        urgency: Urgency::parse(&t.urgency).ok_or_else(|| bad("urgency"))?,
        paid: t.paid,
        appointment_at: t.appointment_at,
        description: t.description.clone(),
        resident_supplies_parts: t.resident_supplies_parts,
    })
}

/// Correct a ticket's intake fields until it is completed, at the version the desk saw (a stale
/// one is refused with the ticket as it stands). One `edited` event names every changed field's
/// old and new value; what a change sets off is done in the same transaction: a new number gets
/// the resident's code (the old code stops working), another trade moves the ticket from one
/// pool to the other (its unclaimed clock starts again), a new appointment time restarts the
/// arrival clock, answers a `late_arrival` and texts the resident the time, and an emergency
/// runs on the emergency arrival limit from the edit on. Nothing changed: the ticket as it is.
pub fn edit(
    conn: &mut DbConn,
    ctx: &Ctx,
    viewer: &Viewer,
    id: &str,
    body: TicketEdit,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    viewer.caller.require(&DESK)?;
    let t = visible_for_update(conn, viewer, id)?;
    if body.version != t.version {
        let detail = format!("the ticket is at version {}, not {}: here it is as it stands", t.version, body.version);
        let current = t.version;
        let view = serde_json::to_value(viewer.view_one(conn, t)?).map_err(Error::internal)?;
        return Err(Error::new(ErrorCode::VersionConflict, detail)
            .with("current_version", current)
            .with("ticket", view));
    }
    require_move(&t, viewer, Move::Edit)?;
    let before = intake_of(&t)?;
    let after = body.apply(&before, now.and_utc()).map_err(Error::validation)?;
    let changes = Changes::between(&before, &after);
    if changes.is_empty() {
        return Ok(t);
    }
    let waiting = matches!(t.status, Status::Open | Status::Assigned);
    let mut set = TicketChanges {
        location: Some(after.location.clone()),
        reporter_name: Some(after.reporter_name.clone()),
        reporter_phone: Some(after.reporter_phone.clone()),
        category: Some(after.category.as_str().to_owned()),
        urgency: Some(after.urgency.as_str().to_owned()),
        paid: Some(after.paid),
        appointment_at: Some(after.appointment_at),
        description: Some(after.description.clone()),
        resident_supplies_parts: Some(after.resident_supplies_parts),
        location_key: Some(Some(place_key(&after.location))),
        search_text: Some(search_text(
            &t.number,
            &after.location,
            &after.reporter_name,
            &after.description,
            after.reporter_phone.as_deref(),
        )),
        ..Default::default()
    };
    if changes.new_trade && t.status == Status::Open {
        // new technicians see it now: their five minutes start now
        set.pooled_at = Some(Some(now));
    }
    if waiting && (changes.new_appointment || changes.now_emergency) {
        set.arrival_clock_at = Some(Some(now));
    }
    let reason = body.reason.as_deref().map(str::trim).map(str::to_owned);
    let data = json!({ "changes": changes.fields, "reason": reason });
    let edited = apply(conn, &t, &viewer.caller.user_id, "edited", None, set, data, now)?;
    if !waiting {
        return Ok(edited);
    }
    let site = db::sites::find(conn, &t.site_id)?.ok_or_else(|| Error::not_found("site"))?;
    if changes.new_phone && edited.area == Area::InHome.as_str() {
        let sms = notify::CodeSms {
            purpose: Purpose::Arrival,
            template: messages::ARRIVAL_CODE,
            extra: &[],
            first: false,
            new_number: true,
        };
        // a cap reached leaves the edit standing: the desk hears of it by an sms_failed escalation
        notify::issue_code(conn, &ctx.code_key, &ctx.sms_policy, &edited, &site.name, sms, now)?;
    }
    if changes.new_appointment {
        db::escalations::resolve_kind(conn, &t.id, EscalationKind::LateArrival.as_str(), now)?;
        if let Some(at) = edited.appointment_at {
            let tz = parse_timezone(&site.timezone).map_err(Error::internal)?;
            let time = at.and_utc().with_timezone(&tz).format("%-m月%-d日 %H:%M").to_string();
            let params = [("site", site.name.clone()), ("number", edited.number.clone()), ("time", time)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            notify::enqueue(conn, &ctx.sms_policy, &edited, messages::APPOINTMENT, params, now)?;
        }
    }
    Ok(edited)
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct AssignBody {
    /// An active technician of the ticket's site.
    pub technician_id: String,
    /// Why, when given.
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub reason: Option<String>,
}

/// Assign or reassign a ticket to a technician of its site. Assigning it to the technician who
/// already holds it (assigned or on site) changes nothing. Taking an `on_site` ticket from the technician at the door
/// needs a reason (`Move::needs_reason`); the new holder checks in again, with a code of their
/// own or the desk's phone verification, since the old holder's visit does not count for them.
pub fn assign(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: AssignBody,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    viewer.caller.require(&DESK)?;
    let AssignBody { technician_id, reason } = body;
    let reason = reason.as_deref().map(super::reason).transpose()?;
    let t = visible_for_update(conn, viewer, id)?;
    if !db::tickets::is_site_technician(conn, &technician_id, &t.site_id)? {
        return Err(Error::field("technician_id", "is not an active technician of this ticket's site"));
    }
    require_move(&t, viewer, Move::Assign)?;
    let holds_it = t.assignee_id.as_deref() == Some(technician_id.as_str());
    if holds_it && matches!(t.status, Status::Assigned | Status::OnSite) {
        return Ok(t);
    }
    if reason.is_none() && Move::Assign.needs_reason(t.status) {
        return Err(Error::field("reason", format!("is required to reassign a ticket that is {}", t.status)));
    }
    let previous = t.assignee_id.clone();
    let event = if previous.is_some() { "reassigned" } else { "assigned" };
    let mut changes = TicketChanges {
        assignee_id: Some(Some(technician_id.clone())),
        claimed_at: Some(Some(now)),
        pooled_at: Some(None),
        ..Default::default()
    };
    if t.status == Status::OnSite {
        changes.arrived_at = Some(None);
        changes.phone_verified_at = Some(None);
        changes.phone_verified_by = Some(None);
    }
    let data = json!({ "technician_id": technician_id, "previous_assignee_id": previous, "reason": reason });
    transition(conn, &t, &viewer.caller.user_id, event, Status::Assigned, changes, data, now)
}

/// Void a ticket before it is completed. It keeps its number and stays listed.
pub fn cancel(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: ReasonBody,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    viewer.caller.require(&DESK)?;
    let reason = reason(&body.reason)?;
    let t = visible_for_update(conn, viewer, id)?;
    require_move(&t, viewer, Move::Cancel)?;
    let changes = TicketChanges {
        cancelled_at: Some(Some(now)),
        cancel_reason: Some(Some(reason.clone())),
        pooled_at: Some(None),
        ..Default::default()
    };
    let data = json!({ "reason": reason, "previous_assignee_id": t.assignee_id });
    transition(conn, &t, &viewer.caller.user_id, "cancelled", Status::Cancelled, changes, data, now)
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct PhoneVerification {
    /// Who was called and what they said.
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub note: String,
}

/// The desk called the resident and confirmed the technician is at the door (the seeds'
/// fallback when the code can't be given). Arrival then needs no code.
pub fn verify_by_phone(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: PhoneVerification,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    viewer.caller.require(&DESK)?;
    let note = text("note", Some(&body.note), super::MAX_MOVE_NOTE, true)?;
    let t = actable(conn, viewer, id)?;
    require_move(&t, viewer, Move::VerifyByPhone)?;
    let changes = TicketChanges {
        phone_verified_at: Some(Some(now)),
        phone_verified_by: Some(Some(viewer.caller.user_id.clone())),
        ..Default::default()
    };
    apply(conn, &t, &viewer.caller.user_id, "verified_by_phone", None, changes, json!({ "note": note }), now)
}

/// Send the resident a new arrival code (the old one stops working). Answers the outbox id of the
/// message. Held back by the code limits (`notify::code_rate_limit`); reaching a daily cap is
/// refused inside `Ok`, because the escalation it records must commit.
pub fn resend_code(
    conn: &mut DbConn,
    ctx: &Ctx,
    viewer: &Viewer,
    id: &str,
    now: NaiveDateTime,
) -> Result<Result<String, Error>, Error> {
    viewer.caller.require(&DESK)?;
    let t = actable(conn, viewer, id)?;
    if t.area != Area::InHome.as_str() {
        return Err(Error::new(ErrorCode::InvalidTransition, "public-area tickets have no resident code"));
    }
    require_move(&t, viewer, Move::ResendCode)?;
    let site = db::sites::find(conn, &t.site_id)?.ok_or_else(|| Error::not_found("site"))?;
    let sms = notify::CodeSms {
        purpose: Purpose::Arrival,
        template: messages::ARRIVAL_CODE,
        extra: &[],
        first: false,
        new_number: false,
    };
    let sms_id = match notify::issue_code(conn, &ctx.code_key, &ctx.sms_policy, &t, &site.name, sms, now)? {
        Queued::Queued(id) => id,
        Queued::Capped(cap) => {
            return Ok(Err(Error::new(ErrorCode::SmsRateLimited, format!("SMS {cap} reached; the desk was told"))
                .retry_after(3600)));
        }
        Queued::NoPhone => return Err(Error::new(ErrorCode::InvalidTransition, "the ticket has no phone")),
    };
    let data = json!({ "sms_id": sms_id });
    apply(conn, &t, &viewer.caller.user_id, "code_resent", None, TicketChanges::default(), data, now)?;
    Ok(Ok(sms_id))
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct InspectBody {
    pub passed: bool,
    /// What must be done again: required (not blank) when `passed` is false.
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// The desk inspects public-area work: passed completes it; failed sends it back to the
/// technician, who must come again.
pub fn inspect(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: InspectBody,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    viewer.caller.require(&DESK)?;
    let InspectBody { passed, note } = body;
    let note = text("note", note.as_deref(), super::MAX_MOVE_NOTE, !passed)?;
    let t = actable(conn, viewer, id)?;
    require_move(&t, viewer, Move::Inspect)?;
    let (to, changes) = if passed {
        (Status::Completed, TicketChanges { completed_at: Some(Some(now)), ..Default::default() })
    } else {
        let changes = TicketChanges {
            completed_at: Some(None),
            arrived_at: Some(None),
            claimed_at: Some(Some(now)),
            ..Default::default()
        };
        (Status::Assigned, changes)
    };
    let data = json!({ "passed": passed, "note": note });
    transition(conn, &t, &viewer.caller.user_id, "inspected", to, changes, data, now)
}

/// The longest comment of a callback, in characters (trimmed).
pub const MAX_COMMENT: usize = 1000;

#[derive(Clone, Deserialize, ToSchema)]
pub struct CallbackBody {
    /// Whether the resident answered.
    pub reached: bool,
    /// 1 to 5 stars; only from a resident who was reached (`reached: true`).
    #[schema(minimum = 1, maximum = 5)]
    pub satisfaction: Option<i64>,
    #[schema(max_length = 1000)]
    pub comment: Option<String>,
}

/// Record a callback (回访). Reaching the resident closes the ticket; otherwise it stays due.
pub fn callback(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: CallbackBody,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    viewer.caller.require(&DESK)?;
    let CallbackBody { reached, satisfaction, comment } = body;
    if satisfaction.is_some_and(|s| !super::RATING.contains(&s)) {
        return Err(Error::field("satisfaction", "must be 1 to 5"));
    }
    if satisfaction.is_some() && !reached {
        return Err(Error::field("satisfaction", "only a resident who was reached can rate"));
    }
    let comment = text("comment", comment.as_deref(), MAX_COMMENT, false)?;
    let t = actable(conn, viewer, id)?;
    require_move(&t, viewer, Move::Callback)?;
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
    apply(conn, &t, &viewer.caller.user_id, "callback", to, changes, data, now)
}

/// Why an admin's change of a user took tickets away from them.
fn removal_reason(before: &UserRecord, after: &UserRecord) -> Option<&'static str> {
    if !after.row.active {
        Some("technician_deactivated")
    } else if after.row.role != Role::Technician.as_str() {
        Some("no_longer_a_technician")
    } else if before.site_ids.iter().any(|s| !after.site_ids.contains(s)) {
        Some("technician_removed_from_site")
    } else {
        None
    }
}

/// After an admin changed a user (`before` → `after`, inside the same transaction): the active
/// tickets they may no longer hold go back to the pool at once. A user deactivated or no longer a
/// technician lets go of all of them; a technician moved off sites, of those sites' tickets. Each
/// ticket gets an `unassigned` event with the reason, its `unclaimed` clock starts again, and the
/// desk gets a `technician_removed` escalation. Returns the tickets put back.
pub fn release_removed_technician(
    conn: &mut DbConn,
    admin_id: &str,
    before: &UserRecord,
    after: &UserRecord,
    now: NaiveDateTime,
) -> Result<Vec<TicketRow>, Error> {
    let Some(reason) = removal_reason(before, after) else { return Ok(Vec::new()) };
    let user_id = after.row.id.as_str();
    let keeps_all_but = reason == "technician_removed_from_site";
    let mut released = Vec::new();
    for id in db::tickets::active_of(conn, user_id)? {
        let Some(t) = db::tickets::find_for_update(conn, &id)? else { continue };
        let still_held = t.assignee_id.as_deref() == Some(user_id) && Status::ACTIVE.contains(&t.status);
        if !still_held || (keeps_all_but && after.site_ids.contains(&t.site_id)) {
            continue;
        }
        let changes = back_to_pool(now);
        let data = json!({ "reason": reason, "previous_assignee_id": user_id });
        let t = apply(conn, &t, admin_id, "unassigned", Some(Status::Open), changes, data, now)?;
        let kind = EscalationKind::TechnicianRemoved.as_str();
        let data = json!({ "reason": reason, "removed_technician_id": user_id });
        let occurrence = format!("{user_id}:{}", now.and_utc().timestamp_micros());
        db::escalations::record(conn, &t, kind, &occurrence, data, now)?;
        released.push(t);
    }
    Ok(released)
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct AcknowledgeBody {
    /// What the desk did or will do about it.
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// The event a ticket's history gets when someone of the desk takes one of its escalations.
pub const ESCALATION_ACKNOWLEDGED: &str = "escalation_acknowledged";

/// Someone of the desk of the escalation's site takes it: who, when and their note are kept. It
/// stays open until its ticket moves on. A ticket's escalation taken is an event of that ticket
/// ([`ESCALATION_ACKNOWLEDGED`], with the escalation, its kind and the note), so every stream that
/// follows the ticket hears of it: the other dispatchers' boards drop the button at once.
/// Acknowledged already, it is refused (`already_acknowledged`, naming who took it): the first
/// note stands.
pub fn acknowledge_escalation(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: AcknowledgeBody,
    now: NaiveDateTime,
) -> Result<db::escalations::DeskEscalation, Error> {
    viewer.caller.require(&DESK)?;
    let note = text("note", body.note.as_deref(), super::MAX_MOVE_NOTE, false)?;
    let me = viewer.caller.user_id.as_str();
    // a ticket's, else a matter's (报事): ids are UUIDs, so never both
    let ticket_escalation = db::escalations::find(conn, id)?.filter(|e| viewer.is_site_desk(&e.site_id));
    let of_ticket = ticket_escalation.is_some();
    let (acknowledged, recorded) = match ticket_escalation {
        Some(e) => {
            // an event is appended to the ticket: its row is locked first (the lock order, `db`)
            db::tickets::find_for_update(conn, &e.ticket_id)?;
            let recorded =
                e.acknowledged_at.is_none() && db::escalations::acknowledge(conn, id, me, note.as_deref(), now)?;
            if recorded {
                db::events::append(
                    conn,
                    vec![NewEvent {
                        ticket_id: e.ticket_id.clone(),
                        site_id: e.site_id.clone(),
                        event_type: ESCALATION_ACKNOWLEDGED,
                        actor_id: Some(me.to_owned()),
                        at: now,
                        from_status: None,
                        to_status: None,
                        data: json!({ "escalation_id": e.id, "kind": e.kind, "note": note }),
                    }],
                )?;
            }
            let taken = if recorded { None } else { db::escalations::find(conn, id)? };
            (taken.map(|t| (t.acknowledged_by, t.acknowledged_at)), recorded)
        }
        None => {
            let found = db::matters::find_escalation(conn, id)?.filter(|e| viewer.is_site_desk(&e.site_id));
            let e = found.ok_or_else(|| Error::not_found("escalation"))?;
            let recorded =
                e.acknowledged_at.is_none() && db::matters::acknowledge_escalation(conn, id, me, note.as_deref(), now)?;
            let taken = if recorded { None } else { db::matters::find_escalation(conn, id)? };
            (taken.map(|t| (t.acknowledged_by, t.acknowledged_at)), recorded)
        }
    };
    if !recorded {
        let (by, at) = acknowledged.unwrap_or((None, None));
        return Err(Error::new(
            ErrorCode::AlreadyAcknowledged,
            "someone of the desk acknowledged this escalation already",
        )
        .with("acknowledged_by", by)
        .with("acknowledged_at", at.map(|t| t.and_utc().to_rfc3339())));
    }
    let item = if of_ticket {
        let filter = db::escalations::EscalationFilter { id: Some(id.to_owned()), ..Default::default() };
        db::escalations::list(conn, &filter)?.pop().map(db::escalations::DeskEscalation::Ticket)
    } else {
        db::matters::escalations(conn, None, false, None, Some(id), 1)?
            .pop()
            .map(db::escalations::DeskEscalation::Matter)
    };
    item.ok_or_else(|| Error::not_found("escalation"))
}
