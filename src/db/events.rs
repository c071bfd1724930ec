//! The ticket history: append-only, numbered by a change sequence whose order is commit order.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::Value;

use super::schema::{change_counter, ticket_events, tickets};
use super::{new_id, DbConn};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ticket_events)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub ticket_id: String,
    pub site_id: String,
    pub event_type: String,
    pub actor_id: Option<String>,
    pub at: NaiveDateTime,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub data: String,
}

/// The version of the shape of events' data, written into each as `v`. Raise it when a command
/// changes what it records, and read older events by the `v` they carry (events without one
/// were written before it existed and have the shape of version 1).
pub const DATA_VERSION: i64 = 1;

/// An event to append; it gets its sequence number when written.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub ticket_id: String,
    pub site_id: String,
    pub event_type: &'static str,
    pub actor_id: Option<String>,
    pub at: NaiveDateTime,
    pub from_status: Option<&'static str>,
    pub to_status: Option<&'static str>,
    pub data: Value,
}

/// Appends `events` with consecutive sequence numbers. Call it last in the writing transaction:
/// the counter row stays locked until commit, so numbers are handed out in commit order.
pub fn append(conn: &mut DbConn, events: Vec<NewEvent>) -> QueryResult<Vec<i64>> {
    // One lock order for every writer: the tickets, then the counter. The event rows' foreign
    // keys need a share lock on their tickets; taking it only after the counter deadlocked on
    // PostgreSQL against a command that held its ticket and waited for the counter.
    if let DbConn::Postgres(c) = conn {
        let ids: Vec<&str> = events.iter().map(|e| e.ticket_id.as_str()).collect();
        if !ids.is_empty() {
            tickets::table.filter(tickets::id.eq_any(ids)).select(tickets::id).for_key_share().load::<String>(c)?;
        }
    }
    append_for_locked(conn, events)
}

fn versioned(mut data: Value) -> Value {
    if let Value::Object(members) = &mut data {
        members.insert("v".to_owned(), DATA_VERSION.into());
    }
    data
}

/// [`append`] for a caller that has already updated or locked (`FOR UPDATE`) every ticket of
/// `events` in this transaction, so the lock order holds without asking again.
pub fn append_for_locked(conn: &mut DbConn, events: Vec<NewEvent>) -> QueryResult<Vec<i64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let n = events.len() as i64;
    let last: i64 = on_engine!(conn, |c| diesel::update(change_counter::table.find("events"))
        .set(change_counter::value.eq(change_counter::value + n))
        .returning(change_counter::value)
        .get_result(c))?;
    let rows: Vec<EventRow> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| EventRow {
            seq: last - n + 1 + i as i64,
            id: new_id(),
            ticket_id: e.ticket_id,
            site_id: e.site_id,
            event_type: e.event_type.to_owned(),
            actor_id: e.actor_id,
            at: e.at,
            from_status: e.from_status.map(str::to_owned),
            to_status: e.to_status.map(str::to_owned),
            data: versioned(e.data).to_string(),
        })
        .collect();
    for chunk in rows.chunks(200) {
        on_engine!(&mut *conn, |c| diesel::insert_into(ticket_events::table).values(chunk).execute(c))?;
    }
    Ok(rows.iter().map(|r| r.seq).collect())
}

pub fn for_ticket(conn: &mut DbConn, ticket_id: &str) -> QueryResult<Vec<EventRow>> {
    ticket_events::table
        .filter(ticket_events::ticket_id.eq(ticket_id))
        .order(ticket_events::seq.asc())
        .select(EventRow::as_select())
        .load(conn)
}

/// What a subscriber needs to route a change: the event and its ticket's pool facts now.
#[derive(Debug, Clone, Queryable)]
pub struct FeedRow {
    pub seq: i64,
    pub ticket_id: String,
    pub site_id: String,
    pub event_type: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub data: String,
    pub category: String,
    pub number: String,
    pub urgency: String,
}

/// Events after `after`, oldest first.
pub fn feed_since(conn: &mut DbConn, after: i64, limit: i64) -> QueryResult<Vec<FeedRow>> {
    ticket_events::table
        .inner_join(tickets::table)
        .filter(ticket_events::seq.gt(after))
        .order(ticket_events::seq.asc())
        .limit(limit)
        .select((
            ticket_events::seq,
            ticket_events::ticket_id,
            ticket_events::site_id,
            ticket_events::event_type,
            ticket_events::from_status,
            ticket_events::to_status,
            ticket_events::data,
            tickets::category,
            tickets::number,
            tickets::urgency,
        ))
        .load(conn)
}

pub fn last_seq(conn: &mut DbConn) -> QueryResult<i64> {
    change_counter::table.find("events").select(change_counter::value).first(conn)
}

/// Tickets of `sites` (all when `None`) changed after `after`, each with its latest sequence
/// number, in that order.
pub fn changed_tickets(
    conn: &mut DbConn,
    after: i64,
    sites: Option<&[String]>,
    limit: i64,
) -> QueryResult<Vec<(String, Option<i64>)>> {
    let latest = diesel::dsl::max(ticket_events::seq);
    let mut query = ticket_events::table
        .filter(ticket_events::seq.gt(after))
        .group_by(ticket_events::ticket_id)
        .select((ticket_events::ticket_id, latest))
        .order(latest.asc())
        .limit(limit)
        .into_boxed();
    if let Some(sites) = sites {
        query = query.filter(ticket_events::site_id.eq_any(sites.to_vec()));
    }
    query.load(conn)
}

/// The events of `ids`, ticket by ticket, each ticket's in order.
pub fn for_tickets(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<EventRow>> {
    let mut query = ticket_events::table
        .filter(ticket_events::ticket_id.eq_any(ids.to_vec()))
        .order((ticket_events::ticket_id.asc(), ticket_events::seq.asc()))
        .select(EventRow::as_select())
        .into_boxed();
    if let Some((lo, hi)) = crate::db::id_range(ids) {
        query = query.filter(ticket_events::ticket_id.between(lo, hi));
    }
    query.load(conn)
}
