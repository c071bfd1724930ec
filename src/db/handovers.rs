//! Shift handovers (交接班) and the tickets each one handed on, as they stood when it was written.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::dsl::count;
use diesel::prelude::*;

use super::schema::{escalations, handover_notes, handover_tickets, handovers, ticket_notes, tickets, users};
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = handovers)]
pub struct HandoverRow {
    pub id: String,
    pub site_id: String,
    pub shift: String,
    pub note: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<NaiveDateTime>,
    /// The site's previous handover's time: the notes passed on were written after it. None for
    /// the site's first handover, which passes on every note of its tickets.
    pub notes_since: Option<NaiveDateTime>,
}

/// One ticket of a handover, as it stood then. Never updated.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = handover_tickets)]
pub struct HandoverTicketRow {
    pub handover_id: String,
    pub ticket_id: String,
    pub number: String,
    pub status: String,
    pub assignee_id: Option<String>,
    pub open_escalations: i64,
}

/// A note passed on by a handover, with its author's name.
#[derive(Debug, Clone, Queryable)]
pub struct HandoverNote {
    pub ticket_id: String,
    pub id: String,
    pub author_id: String,
    pub author_name: String,
    pub body: String,
    pub created_at: NaiveDateTime,
}

/// A handover with its tickets and the notes written on them since the previous handover.
#[derive(Debug, Clone)]
pub struct Handover {
    pub row: HandoverRow,
    pub tickets: Vec<HandoverTicketRow>,
    /// In the order they were written.
    pub notes: Vec<HandoverNote>,
}

/// The most handovers a list holds.
pub const LIST_LIMIT: i64 = 100;

/// The site's tickets in `statuses` with their open escalations counted, in number order, read in
/// one statement, as rows of a handover `handover_id`.
pub fn snapshot(
    conn: &mut DbConn,
    handover_id: &str,
    site_id: &str,
    statuses: &[String],
) -> QueryResult<Vec<HandoverTicketRow>> {
    let rows: Vec<(String, String, String, Option<String>, i64)> = tickets::table
        .left_join(
            escalations::table.on(escalations::ticket_id.eq(tickets::id).and(escalations::resolved_at.is_null())),
        )
        .filter(tickets::site_id.eq(site_id))
        .filter(tickets::status.eq_any(statuses.to_vec()))
        .group_by((tickets::id, tickets::number, tickets::status, tickets::assignee_id))
        .select((
            tickets::id,
            tickets::number,
            tickets::status,
            tickets::assignee_id,
            count(escalations::id.nullable()),
        ))
        .order(tickets::number.asc())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(ticket_id, number, status, assignee_id, open_escalations)| HandoverTicketRow {
            handover_id: handover_id.to_owned(),
            ticket_id,
            number,
            status,
            assignee_id,
            open_escalations,
        })
        .collect())
}

/// When the site's newest handover was written, if it has one.
pub fn latest_at(conn: &mut DbConn, site_id: &str) -> QueryResult<Option<NaiveDateTime>> {
    handovers::table.filter(handovers::site_id.eq(site_id)).select(diesel::dsl::max(handovers::created_at)).first(conn)
}

/// Writes the handover with its tickets, then passes on the notes written on those tickets after
/// its `notes_since` (all of them when it has none), in one statement that copies their ids;
/// [`notes`] reads them back with their text and authors.
pub fn insert(conn: &mut DbConn, handover: &Handover) -> QueryResult<()> {
    let row = &handover.row;
    diesel::insert_into(handovers::table).values(row).execute(conn)?;
    for chunk in handover.tickets.chunks(200) {
        on_engine!(&mut *conn, |c| diesel::insert_into(handover_tickets::table).values(chunk).execute(c))?;
    }
    let mut notes = handover_tickets::table
        .inner_join(ticket_notes::table.on(ticket_notes::ticket_id.eq(handover_tickets::ticket_id)))
        .filter(handover_tickets::handover_id.eq(row.id.clone()))
        .select((handover_tickets::handover_id, ticket_notes::id, ticket_notes::ticket_id))
        .into_boxed();
    if let Some(since) = row.notes_since {
        notes = notes.filter(ticket_notes::created_at.gt(since));
    }
    diesel::insert_into(handover_notes::table)
        .values(notes)
        .into_columns((handover_notes::handover_id, handover_notes::note_id, handover_notes::ticket_id))
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<HandoverRow>> {
    handovers::table.find(id).select(HandoverRow::as_select()).first(conn).optional()
}

/// Records the incoming shift's acknowledgement, unless the handover was acknowledged already or
/// `by` wrote it; true when this call recorded it.
pub fn acknowledge(conn: &mut DbConn, id: &str, by: &str, at: NaiveDateTime) -> QueryResult<bool> {
    let updated = diesel::update(
        handovers::table
            .filter(handovers::id.eq(id))
            .filter(handovers::acknowledged_at.is_null())
            .filter(handovers::created_by.ne(by)),
    )
    .set((handovers::acknowledged_by.eq(by), handovers::acknowledged_at.eq(at)))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Handovers of `sites` (all sites when `None`), or the one `id`, newest first, with their
/// tickets and notes: three statements.
pub fn list(conn: &mut DbConn, sites: Option<&[String]>, id: Option<&str>) -> QueryResult<Vec<Handover>> {
    let mut query = handovers::table
        .select(HandoverRow::as_select())
        .order((handovers::created_at.desc(), handovers::id.desc()))
        .limit(LIST_LIMIT)
        .into_boxed();
    if let Some(sites) = sites {
        query = query.filter(handovers::site_id.eq_any(sites.to_vec()));
    }
    if let Some(id) = id {
        query = query.filter(handovers::id.eq(id.to_owned()));
    }
    let rows: Vec<HandoverRow> = query.load(conn)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut notes_of = notes(conn, ids.clone())?;
    let mut by_handover: HashMap<String, Vec<HandoverTicketRow>> = HashMap::new();
    let lines: Vec<HandoverTicketRow> = handover_tickets::table
        .filter(handover_tickets::handover_id.eq_any(ids))
        .order((handover_tickets::handover_id.asc(), handover_tickets::number.asc()))
        .select(HandoverTicketRow::as_select())
        .load(conn)?;
    for line in lines {
        by_handover.entry(line.handover_id.clone()).or_default().push(line);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let tickets = by_handover.remove(&row.id).unwrap_or_default();
            let notes = notes_of.remove(&row.id).unwrap_or_default();
            Handover { row, tickets, notes }
        })
        .collect())
}

/// The notes the handovers `ids` passed on, with their authors' names, each handover's in the
/// order they were written: one statement.
pub fn notes(conn: &mut DbConn, ids: Vec<String>) -> QueryResult<HashMap<String, Vec<HandoverNote>>> {
    let mut notes_of: HashMap<String, Vec<HandoverNote>> = HashMap::new();
    let rows: Vec<(String, HandoverNote)> = handover_notes::table
        .inner_join(ticket_notes::table)
        .inner_join(users::table.on(users::id.eq(ticket_notes::author_id)))
        .filter(handover_notes::handover_id.eq_any(ids))
        .order((handover_notes::handover_id.asc(), ticket_notes::created_at.asc(), ticket_notes::id.asc()))
        .select((
            handover_notes::handover_id,
            (
                ticket_notes::ticket_id,
                ticket_notes::id,
                ticket_notes::author_id,
                users::display_name,
                ticket_notes::body,
                ticket_notes::created_at,
            ),
        ))
        .load(conn)?;
    for (handover_id, note) in rows {
        notes_of.entry(handover_id).or_default().push(note);
    }
    Ok(notes_of)
}
