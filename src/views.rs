//! The read model: what a ticket looks like to a caller, and who may see it.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db::tickets::Present;
use crate::db::{self, escalations::EscalationRow, tickets::TicketRow, DbConn};
use crate::domain::access::{Reach, TicketFacts};
use crate::domain::bill::{self, Bill};
use crate::domain::phone::mask_phone;
use crate::domain::ticket::{Covers, QuoteStatus, Status};
use crate::domain::user::Role;
use crate::error::ApiError;

#[derive(Debug, Clone, Serialize, ToSchema)]
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

/// An escalation as the desk lists it: with its ticket's number, place, trade, status and
/// holder, and who of the desk took it. A matter's (报事, kind `unreplied`) has no ticket: its
/// ticket fields are `null` and `matter_id`, `matter_number`, `matter_status` say which matter.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EscalationItemView {
    pub id: String,
    /// `null` for a matter's escalation.
    pub ticket_id: Option<String>,
    pub site_id: String,
    /// `unclaimed | late_arrival | stalled | sms_failed | technician_removed` (tickets),
    /// `unreplied` (matters)
    pub kind: String,
    pub created_at: DateTime<Utc>,
    /// Set when the ticket moved on (a matter: when its department replied); acknowledging does
    /// not resolve an escalation.
    pub resolved_at: Option<DateTime<Utc>>,
    pub ticket_number: Option<String>,
    /// The ticket's place, or the matter's (when it has one).
    pub location: Option<String>,
    pub category: Option<String>,
    pub ticket_status: Option<String>,
    pub assignee_id: Option<String>,
    pub assignee_name: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The user id of whoever of the desk acknowledged it.
    pub acknowledged_by: Option<String>,
    /// What they noted when they acknowledged it.
    pub note: Option<String>,
    /// The matter's, for a matter's escalation; otherwise `null`.
    pub matter_id: Option<String>,
    pub matter_number: Option<String>,
    pub matter_status: Option<String>,
}

impl From<db::escalations::DeskEscalation> for EscalationItemView {
    fn from(e: db::escalations::DeskEscalation) -> Self {
        match e {
            db::escalations::DeskEscalation::Ticket(i) => {
                let r = i.row;
                Self {
                    id: r.id,
                    ticket_id: Some(r.ticket_id),
                    site_id: r.site_id,
                    kind: r.kind,
                    created_at: r.created_at.and_utc(),
                    resolved_at: utc(r.resolved_at),
                    ticket_number: Some(i.ticket_number),
                    location: Some(i.location),
                    category: Some(i.category),
                    ticket_status: Some(i.ticket_status),
                    assignee_id: i.assignee_id,
                    assignee_name: i.assignee_name,
                    acknowledged_at: utc(r.acknowledged_at),
                    acknowledged_by: r.acknowledged_by,
                    note: r.ack_note,
                    matter_id: None,
                    matter_number: None,
                    matter_status: None,
                }
            }
            db::escalations::DeskEscalation::Matter(i) => {
                let r = i.row;
                Self {
                    id: r.id,
                    ticket_id: None,
                    site_id: r.site_id,
                    kind: r.kind,
                    created_at: r.created_at.and_utc(),
                    resolved_at: utc(r.resolved_at),
                    ticket_number: None,
                    location: i.location,
                    category: None,
                    ticket_status: None,
                    assignee_id: None,
                    assignee_name: None,
                    acknowledged_at: utc(r.acknowledged_at),
                    acknowledged_by: r.acknowledged_by,
                    note: r.ack_note,
                    matter_id: Some(r.matter_id),
                    matter_number: Some(i.number),
                    matter_status: Some(i.status),
                }
            }
        }
    }
}

/// A matter that is not a repair (报事), with the callbacks made for it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MatterView {
    pub id: String,
    /// `{SITE_CODE}-BS-{YYYYMMDD}-{NNNN}`: the site's own series of matters, by local day.
    pub number: String,
    pub site_id: String,
    #[schema(value_type = crate::domain::matter::MatterKind)]
    pub kind: String,
    #[schema(value_type = crate::domain::matter::Department)]
    pub department: String,
    #[schema(value_type = crate::domain::matter::MatterStatus)]
    pub status: String,
    pub description: String,
    pub reporter_name: String,
    pub reporter_phone: Option<String>,
    pub location: Option<String>,
    #[schema(value_type = crate::domain::ticket::Channel)]
    pub channel: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The department's answer.
    pub reply: Option<String>,
    pub replied_by: Option<String>,
    pub replied_at: Option<DateTime<Utc>>,
    /// When a callback reached the reporter.
    pub closed_at: Option<DateTime<Utc>>,
    pub callbacks: Vec<CallbackView>,
}

/// A matter in `GET /callbacks/due`: the matter's view with its own kind as `matter_kind`, since
/// the item's `kind` says `matter` (as against `ticket`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DueMatterView {
    pub id: String,
    pub number: String,
    pub site_id: String,
    /// The matter's `kind` (`complaint | inquiry | suggestion | praise`).
    #[schema(value_type = crate::domain::matter::MatterKind)]
    pub matter_kind: String,
    #[schema(value_type = crate::domain::matter::Department)]
    pub department: String,
    #[schema(value_type = crate::domain::matter::MatterStatus)]
    pub status: String,
    pub description: String,
    pub reporter_name: String,
    pub reporter_phone: Option<String>,
    pub location: Option<String>,
    #[schema(value_type = crate::domain::ticket::Channel)]
    pub channel: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub reply: Option<String>,
    pub replied_by: Option<String>,
    pub replied_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub callbacks: Vec<CallbackView>,
}

impl From<MatterView> for DueMatterView {
    fn from(m: MatterView) -> Self {
        Self {
            id: m.id,
            number: m.number,
            site_id: m.site_id,
            matter_kind: m.kind,
            department: m.department,
            status: m.status,
            description: m.description,
            reporter_name: m.reporter_name,
            reporter_phone: m.reporter_phone,
            location: m.location,
            channel: m.channel,
            created_by: m.created_by,
            created_at: m.created_at,
            reply: m.reply,
            replied_by: m.replied_by,
            replied_at: m.replied_at,
            closed_at: m.closed_at,
            callbacks: m.callbacks,
        }
    }
}

impl From<db::matters::Matter> for MatterView {
    fn from(m: db::matters::Matter) -> Self {
        let callbacks = m
            .callbacks
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
        MatterView { callbacks, ..MatterView::from(m.row) }
    }
}

impl From<db::matters::MatterRow> for MatterView {
    fn from(r: db::matters::MatterRow) -> Self {
        Self {
            id: r.id,
            number: r.number,
            site_id: r.site_id,
            kind: r.kind,
            department: r.department,
            status: r.status,
            description: r.description,
            reporter_name: r.reporter_name,
            reporter_phone: r.reporter_phone,
            location: r.location,
            channel: r.channel,
            created_by: r.created_by,
            created_at: r.created_at.and_utc(),
            reply: r.reply,
            replied_by: r.replied_by,
            replied_at: utc(r.replied_at),
            closed_at: utc(r.closed_at),
            callbacks: Vec::new(),
        }
    }
}

/// A shift handover (交接班) and the tickets it handed on, as they stood when it was written.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandoverView {
    pub id: String,
    pub site_id: String,
    /// `day | night`: the outgoing shift.
    pub shift: String,
    pub note: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The site's tickets not yet completed, closed, cancelled or declined, in number order.
    pub tickets: Vec<HandoverTicketView>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The site's previous handover's time: each ticket's `notes` were written after it. Null for
    /// the site's first handover, which passes on every note of its tickets.
    pub notes_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandoverTicketView {
    /// The ticket's id.
    pub id: String,
    pub number: String,
    pub status: String,
    pub assignee_id: Option<String>,
    /// Its escalations not yet resolved, then.
    pub open_escalations: i64,
    /// The notes written on it since the site's previous handover, oldest first.
    pub notes: Vec<HandoverNoteView>,
}

/// A note on a ticket (a technician's finding, the desk's remark), passed on by a handover.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandoverNoteView {
    pub id: String,
    pub author_id: String,
    pub author_name: String,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

impl From<db::handovers::Handover> for HandoverView {
    fn from(h: db::handovers::Handover) -> Self {
        let r = h.row;
        let mut notes_of: HashMap<String, Vec<HandoverNoteView>> = HashMap::new();
        for n in h.notes {
            let note = HandoverNoteView {
                id: n.id,
                author_id: n.author_id,
                author_name: n.author_name,
                note: n.body,
                created_at: n.created_at.and_utc(),
            };
            notes_of.entry(n.ticket_id).or_default().push(note);
        }
        Self {
            id: r.id,
            site_id: r.site_id,
            shift: r.shift,
            note: r.note,
            created_by: r.created_by,
            created_at: r.created_at.and_utc(),
            tickets: h
                .tickets
                .into_iter()
                .map(|t| HandoverTicketView {
                    notes: notes_of.remove(&t.ticket_id).unwrap_or_default(),
                    id: t.ticket_id,
                    number: t.number,
                    status: t.status,
                    assignee_id: t.assignee_id,
                    open_escalations: t.open_escalations,
                })
                .collect(),
            acknowledged_by: r.acknowledged_by,
            acknowledged_at: utc(r.acknowledged_at),
            notes_since: utc(r.notes_since),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
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
    pub status: Status,
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
    /// What the resident is billed: the accepted quote, and the chargeable materials on top when
    /// it covers `labour` only. Without an accepted quote (or for unpaid work): the chargeable
    /// materials alone, `quote_cents` 0.
    pub bill: Bill,
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
    /// The push messages about the ticket to technicians' phones, oldest first; shown to the
    /// desk only (a technician's list is empty).
    pub push: Vec<PushView>,
    pub callbacks: Vec<CallbackView>,
    pub notes: Vec<NoteView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
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

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuoteView {
    pub amount_cents: i64,
    /// `all`: the amount is the whole price (materials inside it); `labour`: labour only,
    /// chargeable materials are added.
    pub covers: Covers,
    pub note: Option<String>,
    pub status: QuoteStatus,
    pub proposed_by: String,
    pub proposed_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// `code` (the resident's SMS code) or `phone` (the desk recorded consent by phone).
    pub decided_via: Option<String>,
    pub decision_note: Option<String>,
    /// The bill's total the resident accepted; completing with a larger bill needs a new accepted
    /// quote. `null` until accepted (and for quotes accepted before it was recorded).
    pub accepted_total_cents: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Totals {
    /// Company-supplied materials, as listed (inside the price when the quote covers `all`).
    pub materials_cents: i64,
    /// Resident-supplied materials at their stated price: shown, never billed.
    pub resident_supplied_cents: i64,
    /// The accepted quote's amount of a paid job (labour only, or the whole price: see `quote.covers`).
    pub labour_cents: i64,
    /// What is billed: the same as `bill.total_cents`.
    pub billable_cents: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
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

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PushView {
    pub id: String,
    pub kind: crate::domain::push::Kind,
    /// The technician it is for.
    pub user_id: String,
    pub device_id: String,
    /// The device's push service: `fcm | apns | jpush | webhook`.
    pub provider: String,
    /// `high` (an emergency) or `normal`.
    pub priority: String,
    /// `pending | sending | sent | failed | superseded` (the ticket left the pool before a
    /// `pool_added` went out) `| unregistered` (the device was removed, or its token refused)
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

impl From<db::push::PushRow> for PushView {
    fn from(m: db::push::PushRow) -> Self {
        Self {
            kind: crate::domain::push::Kind::parse(&m.kind).unwrap_or(crate::domain::push::Kind::PoolAdded),
            id: m.id,
            user_id: m.user_id,
            device_id: m.device_id,
            provider: m.provider,
            priority: m.priority,
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error,
            created_at: m.created_at.and_utc(),
            sent_at: utc(m.sent_at),
            failed_at: utc(m.failed_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
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
    push: ByTicket<db::push::PushRow>,
    callbacks: ByTicket<db::quotes::CallbackRow>,
    notes: ByTicket<db::sync::NoteRow>,
}

impl Extras {
    pub fn load(conn: &mut DbConn, ids: &[String]) -> Result<Self, ApiError> {
        Self::load_present(conn, ids, Present::ALL)
    }

    /// [`Extras::load`], reading only the kinds `present` says exist.
    pub fn load_present(conn: &mut DbConn, ids: &[String], present: Present) -> Result<Self, ApiError> {
        fn read<T>(wanted: bool, rows: impl FnOnce() -> diesel::QueryResult<Vec<T>>) -> diesel::QueryResult<Vec<T>> {
            if wanted {
                rows()
            } else {
                Ok(Vec::new())
            }
        }
        Ok(Self {
            escalations: ByTicket::new(read(present.escalations, || db::escalations::for_tickets(conn, ids))?, |e| {
                Some(&e.ticket_id)
            }),
            lines: ByTicket::new(read(present.lines, || db::materials::lines_of(conn, ids))?, |l| Some(&l.ticket_id)),
            quotes: ByTicket::new(read(present.quote, || db::quotes::of(conn, ids))?, |q| Some(&q.ticket_id)),
            sms: ByTicket::new(read(present.sms, || db::outbox::for_tickets(conn, ids))?, |m| m.ticket_id.as_deref()),
            push: ByTicket::new(read(present.push, || db::push::for_tickets(conn, ids))?, |m| Some(&m.ticket_id)),
            callbacks: ByTicket::new(read(present.callbacks, || db::quotes::callbacks_of(conn, ids))?, |c| {
                Some(&c.ticket_id)
            }),
            notes: ByTicket::new(read(present.notes, || db::sync::notes_of(conn, ids))?, |n| Some(&n.ticket_id)),
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

#[derive(Debug, Clone, Serialize, ToSchema)]
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
    /// The event's details; what they hold depends on its type. `v` is the version of their
    /// shape (1; events written before it existed have none and the same shape).
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
    /// The caller with their sites and trades: as read with the session when they were, else
    /// read now.
    pub fn load(conn: &mut DbConn, caller: Caller) -> Result<Self, ApiError> {
        if let Some(m) = &caller.membership {
            let (sites, trades) = (m.sites.clone(), m.trades.clone());
            return Ok(Self { caller, sites, trades });
        }
        let sites = db::users::site_ids(conn, &caller.user_id)?;
        let trades = db::tickets::trades_of(conn, &caller.user_id)?;
        Ok(Self { caller, sites, trades })
    }

    fn holds(&self, t: &TicketRow) -> bool {
        t.assignee_id.as_deref() == Some(self.caller.user_id.as_str())
    }

    /// The facts the access rules (`domain::access`) decide on.
    pub fn reach(&self) -> Reach<'_> {
        Reach { user_id: &self.caller.user_id, role: self.caller.role, sites: &self.sites, trades: &self.trades }
    }

    /// Whether the viewer may see the ticket ([`Reach::can_see`]).
    pub fn can_see(&self, t: &TicketRow) -> bool {
        self.reach().can_see(TicketFacts {
            site_id: &t.site_id,
            category: &t.category,
            status: t.status,
            assignee_id: t.assignee_id.as_deref(),
        })
    }

    pub fn is_site_desk(&self, site_id: &str) -> bool {
        self.reach().is_site_desk(site_id)
    }

    /// The sites whose desk records (escalations, handovers) a list shows: `only` when given, of
    /// the viewer's own sites (an admin's: any; `None`: all).
    pub fn desk_sites(&self, only: Option<String>) -> Option<Vec<String>> {
        if self.caller.role == Role::Admin {
            return only.map(|s| vec![s]);
        }
        Some(self.sites.iter().filter(|s| only.as_ref().is_none_or(|o| o == *s)).cloned().collect())
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
        let accepted = quote.as_ref().filter(|q| q.status == QuoteStatus::Accepted).map(|q| (q.amount_cents, q.covers));
        let bill = bill::bill(accepted, totals.materials_cents);
        totals.labour_cents = bill.quote_cents;
        totals.billable_cents = bill.total_cents;
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
        let push = extras.push.take(&id).into_iter().map(Into::into).collect();
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
                covers: q.covers,
                note: q.note,
                status: q.status,
                proposed_by: q.proposed_by,
                proposed_at: q.proposed_at.and_utc(),
                decided_at: utc(q.decided_at),
                decided_via: q.decided_via,
                decision_note: q.decision_note,
                accepted_total_cents: q.accepted_total_cents,
            }),
            totals,
            bill,
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
            push,
            callbacks,
            notes,
        }
    }

    /// Of the rows `present`, those this viewer is shown: the push messages to the desk only.
    fn shown(&self, present: Present) -> Present {
        Present { push: present.push && self.caller.role != Role::Technician, ..present }
    }

    /// Views of many tickets, with what they show beside the row read in one query per kind.
    pub fn views(&self, conn: &mut DbConn, rows: Vec<TicketRow>) -> Result<Vec<TicketView>, ApiError> {
        let ids: Vec<String> = rows.iter().map(|t| t.id.clone()).collect();
        let mut extras = Extras::load_present(conn, &ids, self.shown(Present::ALL))?;
        Ok(rows.into_iter().map(|t| self.view(t, &mut extras)).collect())
    }

    /// One ticket's view: which of its own rows exist in one read, then only those.
    pub fn view_one(&self, conn: &mut DbConn, t: TicketRow) -> Result<TicketView, ApiError> {
        let present = db::tickets::present(conn, &t.id)?;
        self.view_one_with(conn, t, present)
    }

    /// [`Viewer::view_one`] for a ticket whose other rows are known to be only those `present`
    /// names.
    pub fn view_one_with(&self, conn: &mut DbConn, t: TicketRow, present: Present) -> Result<TicketView, ApiError> {
        let mut extras = Extras::load_present(conn, std::slice::from_ref(&t.id), self.shown(present))?;
        Ok(self.view(t, &mut extras))
    }
}

/// The ticket if the viewer may see it; anything else is "not found", never its data.
pub fn visible(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<TicketRow, ApiError> {
    db::tickets::find(conn, id)?.filter(|t| viewer.can_see(t)).ok_or_else(|| ApiError::not_found("ticket"))
}

/// [`visible`] by the ticket's number.
pub fn visible_by_number(conn: &mut DbConn, viewer: &Viewer, number: &str) -> Result<TicketRow, ApiError> {
    db::tickets::find_by_number(conn, number)?
        .filter(|t| viewer.can_see(t))
        .ok_or_else(|| ApiError::not_found("ticket"))
}

/// [`visible`], locked for a change (see [`db::tickets::find_for_update`]).
pub fn visible_for_update(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<TicketRow, ApiError> {
    db::tickets::find_for_update(conn, id)?.filter(|t| viewer.can_see(t)).ok_or_else(|| ApiError::not_found("ticket"))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NoteView {
    pub id: String,
    pub author_id: String,
    pub note: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub device_time: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<db::sync::NoteRow> for NoteView {
    fn from(n: db::sync::NoteRow) -> Self {
        Self {
            id: n.id,
            author_id: n.author_id,
            note: n.body,
            created_at: n.created_at.and_utc(),
            device_time: n.device_time.map(|t| t.and_utc()),
        }
    }
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
