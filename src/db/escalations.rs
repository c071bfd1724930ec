use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::escalations;
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

/// Escalations of `sites` (all sites when `None`), newest first.
pub fn list(conn: &mut DbConn, sites: Option<&[String]>, open_only: bool) -> QueryResult<Vec<EscalationRow>> {
    let mut query = escalations::table
        .select(EscalationRow::as_select())
        .order((escalations::created_at.desc(), escalations::id.desc()))
        .limit(500)
        .into_boxed();
    if let Some(sites) = sites {
        query = query.filter(escalations::site_id.eq_any(sites.to_vec()));
    }
    if open_only {
        query = query.filter(escalations::resolved_at.is_null());
    }
    query.load(conn)
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
