use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{callbacks, quotes};
use super::DbConn;
use crate::domain::ticket::{Covers, QuoteStatus};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = quotes)]
pub struct QuoteRow {
    pub ticket_id: String,
    pub amount_cents: i64,
    pub note: Option<String>,
    pub status: QuoteStatus,
    pub proposed_by: String,
    pub proposed_at: NaiveDateTime,
    pub decided_at: Option<NaiveDateTime>,
    pub decided_by: Option<String>,
    pub decided_via: Option<String>,
    pub decision_note: Option<String>,
    pub covers: Covers,
    /// The bill's total when the resident accepted.
    pub accepted_total_cents: Option<i64>,
}

pub fn replace(conn: &mut DbConn, row: &QuoteRow) -> QueryResult<()> {
    diesel::delete(quotes::table.find(&row.ticket_id)).execute(conn)?;
    diesel::insert_into(quotes::table).values(row).execute(conn).map(|_| ())
}

pub fn find(conn: &mut DbConn, ticket_id: &str) -> QueryResult<Option<QuoteRow>> {
    quotes::table.find(ticket_id).select(QuoteRow::as_select()).first(conn).optional()
}

pub fn of(conn: &mut DbConn, ticket_ids: &[String]) -> QueryResult<Vec<QuoteRow>> {
    let mut query =
        quotes::table.filter(quotes::ticket_id.eq_any(ticket_ids.to_vec())).select(QuoteRow::as_select()).into_boxed();
    if let Some((lo, hi)) = crate::db::id_range(ticket_ids) {
        query = query.filter(quotes::ticket_id.between(lo, hi));
    }
    query.load(conn)
}

/// Decides a pending quote, recording the bill's total an acceptance agreed to; false if it
/// was no longer pending.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    conn: &mut DbConn,
    ticket_id: &str,
    status: QuoteStatus,
    by: &str,
    via: &str,
    note: Option<String>,
    accepted_total_cents: Option<i64>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(quotes::table.find(ticket_id).filter(quotes::status.eq(QuoteStatus::Pending)))
        .set((
            quotes::status.eq(status),
            quotes::decided_at.eq(at),
            quotes::decided_by.eq(by),
            quotes::decided_via.eq(via),
            quotes::decision_note.eq(note),
            quotes::accepted_total_cents.eq(accepted_total_cents),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = callbacks)]
pub struct CallbackRow {
    pub id: String,
    pub ticket_id: String,
    pub made_by: String,
    pub made_at: NaiveDateTime,
    pub reached: bool,
    pub satisfaction: Option<i64>,
    pub comment: Option<String>,
}

pub fn insert_callback(conn: &mut DbConn, row: &CallbackRow) -> QueryResult<()> {
    diesel::insert_into(callbacks::table).values(row).execute(conn).map(|_| ())
}

pub fn callbacks_of(conn: &mut DbConn, ticket_ids: &[String]) -> QueryResult<Vec<CallbackRow>> {
    let mut query = callbacks::table
        .filter(callbacks::ticket_id.eq_any(ticket_ids.to_vec()))
        .order((callbacks::ticket_id.asc(), callbacks::made_at.asc()))
        .select(CallbackRow::as_select())
        .into_boxed();
    if let Some((lo, hi)) = crate::db::id_range(ticket_ids) {
        query = query.filter(callbacks::ticket_id.between(lo, hi));
    }
    query.load(conn)
}
