use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{escalations, tickets, users};
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = escalations)]
pub struct EscalationRow {
    pub id: String,
    pub ticket_id: String,
    pub site_id: String,
    pub kind: String,
    pub dedupe_key: String,
    pub created_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    /// Who of the desk took it, when, and what they said (`POST /escalations/{id}/ack`).
    pub acknowledged_at: Option<NaiveDateTime>,
    pub acknowledged_by: Option<String>,
    pub ack_note: Option<String>,
}

/// An escalation as the desk lists it: with what it needs to act on it, read from its ticket and
/// the ticket's holder in the same statement.
#[derive(Debug, Clone, Queryable)]
pub struct EscalationItem {
    pub row: EscalationRow,
    pub ticket_number: String,
    pub location: String,
    pub category: String,
    pub ticket_status: String,
    pub assignee_id: Option<String>,
    pub assignee_name: Option<String>,
}

/// An escalation of either table, as the desk lists and acknowledges them.
#[derive(Debug, Clone)]
pub enum DeskEscalation {
    Ticket(EscalationItem),
    Matter(super::matters::MatterEscalationItem),
}

impl DeskEscalation {
    pub fn created_at(&self) -> (NaiveDateTime, &str) {
        match self {
            DeskEscalation::Ticket(i) => (i.row.created_at, &i.row.id),
            DeskEscalation::Matter(i) => (i.row.created_at, &i.row.id),
        }
    }
}

/// Which escalations a list holds.
#[derive(Debug, Clone, Default)]
pub struct EscalationFilter {
    /// Of these sites only; all sites when `None`.
    pub sites: Option<Vec<String>>,
    /// Only those not yet resolved.
    pub open_only: bool,
    /// Only those acknowledged (`true`) or not (`false`).
    pub acknowledged: Option<bool>,
    /// Only this one.
    pub id: Option<String>,
}

/// Records the escalation unless one with the same key exists; true when this call recorded it.
/// Of several scanners racing, the unique key lets exactly one through.
pub fn insert_if_new(conn: &mut DbConn, row: &EscalationRow) -> QueryResult<bool> {
    let inserted = on_engine!(conn, |c| diesel::insert_into(escalations::table)
        .values(row)
        .on_conflict(escalations::dedupe_key)
        .do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// Resolves the open escalations of a ticket that moved on; the kinds left open are those the
/// move does not answer (a failed SMS stays the desk's business).
pub fn resolve_for_ticket(conn: &mut DbConn, ticket_id: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        escalations::table
            .filter(escalations::ticket_id.eq(ticket_id))
            .filter(escalations::resolved_at.is_null())
            .filter(escalations::kind.ne("sms_failed")),
    )
    .set(escalations::resolved_at.eq(at))
    .execute(conn)
}

/// Resolves the ticket's open escalations of `kind` (the desk answered them: a late arrival by a
/// new appointment time).
pub fn resolve_kind(conn: &mut DbConn, ticket_id: &str, kind: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        escalations::table
            .filter(escalations::ticket_id.eq(ticket_id))
            .filter(escalations::kind.eq(kind))
            .filter(escalations::resolved_at.is_null()),
    )
    .set(escalations::resolved_at.eq(at))
    .execute(conn)
}

pub fn for_ticket(conn: &mut DbConn, ticket_id: &str) -> QueryResult<Vec<EscalationRow>> {
    escalations::table
        .filter(escalations::ticket_id.eq(ticket_id))
        .order(escalations::created_at.asc())
        .select(EscalationRow::as_select())
        .load(conn)
}

pub fn for_tickets(conn: &mut DbConn, ticket_ids: &[String]) -> QueryResult<Vec<EscalationRow>> {
    let mut query = escalations::table
        .filter(escalations::ticket_id.eq_any(ticket_ids.to_vec()))
        .order((escalations::ticket_id.asc(), escalations::created_at.asc()))
        .select(EscalationRow::as_select())
        .into_boxed();
    if let Some((lo, hi)) = crate::db::id_range(ticket_ids) {
        query = query.filter(escalations::ticket_id.between(lo, hi));
    }
    query.load(conn)
}

/// The most a list holds.
pub const LIST_LIMIT: i64 = 500;

/// Escalations as the desk lists them, newest first, in one statement (the ticket and its
/// holder's name joined).
pub fn list(conn: &mut DbConn, filter: &EscalationFilter) -> QueryResult<Vec<EscalationItem>> {
    let mut query = escalations::table
        .inner_join(tickets::table)
        .left_join(users::table.on(tickets::assignee_id.eq(users::id.nullable())))
        .select((
            EscalationRow::as_select(),
            tickets::number,
            tickets::location,
            tickets::category,
            tickets::status,
            tickets::assignee_id,
            users::display_name.nullable(),
        ))
        .order((escalations::created_at.desc(), escalations::id.desc()))
        .limit(LIST_LIMIT)
        .into_boxed();
    if let Some(sites) = &filter.sites {
        query = query.filter(escalations::site_id.eq_any(sites.clone()));
    }
    if filter.open_only {
        query = query.filter(escalations::resolved_at.is_null());
    }
    match filter.acknowledged {
        Some(true) => query = query.filter(escalations::acknowledged_at.is_not_null()),
        Some(false) => query = query.filter(escalations::acknowledged_at.is_null()),
        None => {}
    }
    if let Some(id) = &filter.id {
        query = query.filter(escalations::id.eq(id.clone()));
    }
    query.load(conn)
}

/// The escalations of tickets and of matters (报事) as the desk lists them, newest first, at most
/// [`LIST_LIMIT`] in all: one statement each.
pub fn list_desk(conn: &mut DbConn, filter: &EscalationFilter) -> QueryResult<Vec<DeskEscalation>> {
    let mut items: Vec<DeskEscalation> = list(conn, filter)?.into_iter().map(DeskEscalation::Ticket).collect();
    let matters = super::matters::escalations(
        conn,
        filter.sites.as_deref(),
        filter.open_only,
        filter.acknowledged,
        filter.id.as_deref(),
        LIST_LIMIT,
    )?;
    items.extend(matters.into_iter().map(DeskEscalation::Matter));
    items.sort_by(|a, b| b.created_at().cmp(&a.created_at()));
    items.truncate(LIST_LIMIT as usize);
    Ok(items)
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<EscalationRow>> {
    escalations::table.find(id).select(EscalationRow::as_select()).first(conn).optional()
}

/// Records who took the escalation, unless someone already did; true when this call recorded it.
/// Only the escalation's own row is written (the command appends the ticket's event).
pub fn acknowledge(conn: &mut DbConn, id: &str, by: &str, note: Option<&str>, at: NaiveDateTime) -> QueryResult<bool> {
    let updated = diesel::update(
        escalations::table.filter(escalations::id.eq(id)).filter(escalations::acknowledged_at.is_null()),
    )
    .set((escalations::acknowledged_at.eq(at), escalations::acknowledged_by.eq(by), escalations::ack_note.eq(note)))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Records an escalation of `kind` for `ticket`, once per `occurrence` (what distinguishes this
/// time from the last, e.g. when the condition began), with its event on the ticket. True when
/// this call recorded it. Runs inside the caller's transaction.
pub fn record(
    conn: &mut DbConn,
    ticket: &super::tickets::TicketRow,
    kind: &str,
    occurrence: &str,
    data: serde_json::Value,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let row = EscalationRow {
        id: super::new_id(),
        ticket_id: ticket.id.clone(),
        site_id: ticket.site_id.clone(),
        kind: kind.to_owned(),
        dedupe_key: format!("{}:{kind}:{occurrence}", ticket.id),
        created_at: now,
        resolved_at: None,
        acknowledged_at: None,
        acknowledged_by: None,
        ack_note: None,
    };
    if !insert_if_new(conn, &row)? {
        return Ok(false);
    }
    let mut data = data;
    if let Some(map) = data.as_object_mut() {
        map.insert("escalation_id".into(), row.id.clone().into());
        map.insert("kind".into(), kind.into());
    }
    super::events::append(
        conn,
        vec![super::events::NewEvent {
            ticket_id: ticket.id.clone(),
            site_id: ticket.site_id.clone(),
            event_type: "escalated",
            actor_id: None,
            at: now,
            from_status: None,
            to_status: None,
            data,
        }],
    )?;
    Ok(true)
}
