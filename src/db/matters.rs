//! Matters that are not repairs (报事), their callbacks and their escalations.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{matter_callbacks, matter_escalations, matters, ticket_counters, user_departments};
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = matters)]
pub struct MatterRow {
    pub id: String,
    pub site_id: String,
    pub number: String,
    pub kind: String,
    pub department: String,
    pub status: String,
    pub description: String,
    pub reporter_name: String,
    pub reporter_phone: Option<String>,
    pub location: Option<String>,
    pub channel: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub reply: Option<String>,
    pub replied_by: Option<String>,
    pub replied_at: Option<NaiveDateTime>,
    pub closed_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = matter_callbacks)]
pub struct MatterCallbackRow {
    pub id: String,
    pub matter_id: String,
    pub made_by: String,
    pub made_at: NaiveDateTime,
    pub reached: bool,
    pub satisfaction: Option<i64>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = matter_escalations)]
pub struct MatterEscalationRow {
    pub id: String,
    pub matter_id: String,
    pub site_id: String,
    pub kind: String,
    pub dedupe_key: String,
    pub created_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    pub acknowledged_at: Option<NaiveDateTime>,
    pub acknowledged_by: Option<String>,
    pub ack_note: Option<String>,
}

/// A matter with the callbacks made for it, oldest first.
#[derive(Debug, Clone)]
pub struct Matter {
    pub row: MatterRow,
    pub callbacks: Vec<MatterCallbackRow>,
}

/// A matter's escalation as the desk lists it: with the matter's number, place and status.
#[derive(Debug, Clone, Queryable)]
pub struct MatterEscalationItem {
    pub row: MatterEscalationRow,
    pub number: String,
    pub location: Option<String>,
    pub status: String,
}

/// The most matters a list holds.
pub const LIST_LIMIT: i64 = 200;

/// The next number of the matters' series `key` at `site_id`: the tickets' counter table, under a
/// key of its own, so it is taken and held the same way (until the creating transaction ends).
pub fn next_number(conn: &mut DbConn, site_id: &str, key: &str) -> QueryResult<i64> {
    on_engine!(conn, |c| diesel::insert_into(ticket_counters::table)
        .values((
            ticket_counters::site_id.eq(site_id),
            ticket_counters::day.eq(key),
            ticket_counters::last_value.eq(1i64),
        ))
        .on_conflict((ticket_counters::site_id, ticket_counters::day))
        .do_update()
        .set(ticket_counters::last_value.eq(ticket_counters::last_value + 1i64))
        .returning(ticket_counters::last_value)
        .get_result(c))
}

pub fn insert(conn: &mut DbConn, row: &MatterRow) -> QueryResult<()> {
    diesel::insert_into(matters::table).values(row).execute(conn).map(|_| ())
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<MatterRow>> {
    matters::table.find(id).select(MatterRow::as_select()).first(conn).optional()
}

/// Matters of `sites` (all when `None`), optionally in one status, newest first.
pub fn list(conn: &mut DbConn, sites: Option<&[String]>, status: Option<&str>) -> QueryResult<Vec<MatterRow>> {
    let mut query = matters::table
        .select(MatterRow::as_select())
        .order((matters::created_at.desc(), matters::id.desc()))
        .limit(LIST_LIMIT)
        .into_boxed();
    if let Some(sites) = sites {
        query = query.filter(matters::site_id.eq_any(sites.to_vec()));
    }
    if let Some(status) = status {
        query = query.filter(matters::status.eq(status.to_owned()));
    }
    query.load(conn)
}

/// Records the department's reply if the matter is still `from`; true when this call did.
pub fn reply(
    conn: &mut DbConn,
    id: &str,
    from: &str,
    to: &str,
    reply: &str,
    by: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(matters::table.filter(matters::id.eq(id)).filter(matters::status.eq(from)))
        .set((matters::status.eq(to), matters::reply.eq(reply), matters::replied_by.eq(by), matters::replied_at.eq(at)))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Closes the matter if it is still `from`; true when this call did.
pub fn close(conn: &mut DbConn, id: &str, from: &str, to: &str, at: NaiveDateTime) -> QueryResult<bool> {
    let updated = diesel::update(matters::table.filter(matters::id.eq(id)).filter(matters::status.eq(from)))
        .set((matters::status.eq(to), matters::closed_at.eq(at)))
        .execute(conn)?;
    Ok(updated == 1)
}

pub fn insert_callback(conn: &mut DbConn, row: &MatterCallbackRow) -> QueryResult<()> {
    diesel::insert_into(matter_callbacks::table).values(row).execute(conn).map(|_| ())
}

/// The callbacks of the matters `ids`, oldest first.
pub fn callbacks_of(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<MatterCallbackRow>> {
    matter_callbacks::table
        .filter(matter_callbacks::matter_id.eq_any(ids.to_vec()))
        .order((matter_callbacks::matter_id.asc(), matter_callbacks::made_at.asc()))
        .select(MatterCallbackRow::as_select())
        .load(conn)
}

/// Replied matters of `sites` (all when `None`): due for a callback, oldest reply first.
pub fn callbacks_due(
    conn: &mut DbConn,
    sites: Option<&[String]>,
    replied: &str,
    limit: i64,
) -> QueryResult<Vec<MatterRow>> {
    let mut query = matters::table
        .filter(matters::status.eq(replied.to_owned()))
        .order((matters::replied_at.asc(), matters::id.asc()))
        .limit(limit)
        .select(MatterRow::as_select())
        .into_boxed();
    if let Some(sites) = sites {
        query = query.filter(matters::site_id.eq_any(sites.to_vec()));
    }
    query.load(conn)
}

/// Matters still `open` (no reply) registered at or before `since`.
pub fn unreplied_since(conn: &mut DbConn, open: &str, since: NaiveDateTime) -> QueryResult<Vec<MatterRow>> {
    matters::table
        .filter(matters::status.eq(open))
        .filter(matters::created_at.le(since))
        .order(matters::created_at.asc())
        .select(MatterRow::as_select())
        .load(conn)
}

/// Records the escalation unless one with the same key exists; true when this call did.
pub fn escalate_if_new(conn: &mut DbConn, row: &MatterEscalationRow) -> QueryResult<bool> {
    let inserted = on_engine!(conn, |c| diesel::insert_into(matter_escalations::table)
        .values(row)
        .on_conflict(matter_escalations::dedupe_key)
        .do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// Resolves the matter's open escalations (it was answered).
pub fn resolve_escalations(conn: &mut DbConn, matter_id: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        matter_escalations::table
            .filter(matter_escalations::matter_id.eq(matter_id))
            .filter(matter_escalations::resolved_at.is_null()),
    )
    .set(matter_escalations::resolved_at.eq(at))
    .execute(conn)
}

/// The matters' escalations as the desk lists them, newest first, with their matter's number,
/// location and status, in one statement.
pub fn escalations(
    conn: &mut DbConn,
    sites: Option<&[String]>,
    open_only: bool,
    acknowledged: Option<bool>,
    id: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<MatterEscalationItem>> {
    let mut query = matter_escalations::table
        .inner_join(matters::table)
        .select((MatterEscalationRow::as_select(), matters::number, matters::location, matters::status))
        .order((matter_escalations::created_at.desc(), matter_escalations::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(sites) = sites {
        query = query.filter(matter_escalations::site_id.eq_any(sites.to_vec()));
    }
    if open_only {
        query = query.filter(matter_escalations::resolved_at.is_null());
    }
    match acknowledged {
        Some(true) => query = query.filter(matter_escalations::acknowledged_at.is_not_null()),
        Some(false) => query = query.filter(matter_escalations::acknowledged_at.is_null()),
        None => {}
    }
    if let Some(id) = id {
        query = query.filter(matter_escalations::id.eq(id.to_owned()));
    }
    query.load(conn)
}

pub fn find_escalation(conn: &mut DbConn, id: &str) -> QueryResult<Option<MatterEscalationRow>> {
    matter_escalations::table.find(id).select(MatterEscalationRow::as_select()).first(conn).optional()
}

/// Records who took the escalation, unless someone already did; true when this call did.
pub fn acknowledge_escalation(
    conn: &mut DbConn,
    id: &str,
    by: &str,
    note: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(
        matter_escalations::table
            .filter(matter_escalations::id.eq(id))
            .filter(matter_escalations::acknowledged_at.is_null()),
    )
    .set((
        matter_escalations::acknowledged_at.eq(at),
        matter_escalations::acknowledged_by.eq(by),
        matter_escalations::ack_note.eq(note),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// The departments whose matters `user_id` answers.
pub fn departments_of(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<String>> {
    user_departments::table
        .filter(user_departments::user_id.eq(user_id))
        .select(user_departments::department)
        .order(user_departments::department.asc())
        .load(conn)
}
