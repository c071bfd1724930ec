//! The push outbox: one message per device, written with the change of a ticket that causes it
//! and claimed by one worker at a time through a lease, like the SMS outbox ([`super::outbox`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::push_outbox;
use super::DbConn;

pub const PENDING: &str = "pending";
pub const SENDING: &str = "sending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";
/// Not sent: the ticket left the pool (claimed, assigned, cancelled) or came back into it later
/// (a newer message tells of it) before this one went out.
pub const SUPERSEDED: &str = "superseded";
/// Not sent: the device was removed, or the provider said its token is no longer valid.
pub const UNREGISTERED: &str = "unregistered";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = push_outbox)]
pub struct PushRow {
    pub id: String,
    pub ticket_id: String,
    pub user_id: String,
    pub device_id: String,
    pub kind: String,
    pub priority: String,
    pub collapse_key: String,
    /// The texts' placeholders, as a JSON object of strings; the texts are made when sent.
    pub params: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: NaiveDateTime,
    pub lease_token: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub provider: String,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
    pub failed_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConn, rows: &[PushRow]) -> QueryResult<()> {
    // one statement per row: diesel's multi-engine backend has no batch insert
    for row in rows {
        diesel::insert_into(push_outbox::table).values(row).execute(conn)?;
    }
    Ok(())
}

pub fn for_tickets(conn: &mut DbConn, ticket_ids: &[String]) -> QueryResult<Vec<PushRow>> {
    let mut query = push_outbox::table
        .filter(push_outbox::ticket_id.eq_any(ticket_ids.to_vec()))
        .order((push_outbox::ticket_id.asc(), push_outbox::created_at.asc(), push_outbox::id.asc()))
        .select(PushRow::as_select())
        .into_boxed();
    if let Some((lo, hi)) = crate::db::id_range(ticket_ids) {
        query = query.filter(push_outbox::ticket_id.between(lo, hi));
    }
    query.load(conn)
}

/// Ids of messages due now: pending and due, or sending with a lease that ran out (its worker died).
pub fn due(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<String>> {
    push_outbox::table
        .filter(
            push_outbox::status
                .eq(PENDING)
                .and(push_outbox::next_attempt_at.le(now))
                .or(push_outbox::status.eq(SENDING).and(push_outbox::lease_until.lt(now))),
        )
        .order((push_outbox::next_attempt_at.asc(), push_outbox::id.asc()))
        .limit(limit)
        .select(push_outbox::id)
        .load(conn)
}

/// Leases one due message to `token` until `until`; the conditions are checked again in the
/// UPDATE itself, so of two workers only one gets it.
pub fn lease(
    conn: &mut DbConn,
    id: &str,
    token: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<Option<PushRow>> {
    let changed = diesel::update(
        push_outbox::table.filter(push_outbox::id.eq(id)).filter(
            push_outbox::status
                .eq(PENDING)
                .and(push_outbox::next_attempt_at.le(now))
                .or(push_outbox::status.eq(SENDING).and(push_outbox::lease_until.lt(now))),
        ),
    )
    .set((
        push_outbox::status.eq(SENDING),
        push_outbox::lease_token.eq(token),
        push_outbox::lease_until.eq(until),
        push_outbox::attempts.eq(push_outbox::attempts + 1),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Ok(None);
    }
    push_outbox::table.find(id).select(PushRow::as_select()).first(conn).optional()
}

/// The outcome of one attempt, written only while the lease is still ours.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = push_outbox)]
pub struct Outcome {
    pub status: Option<String>,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_token: Option<Option<String>>,
    pub lease_until: Option<Option<NaiveDateTime>>,
    pub last_error: Option<Option<String>>,
    pub sent_at: Option<Option<NaiveDateTime>>,
    pub failed_at: Option<Option<NaiveDateTime>>,
}

impl Outcome {
    /// Done with: `status`, the lease released.
    pub fn finished(status: &str, error: Option<String>) -> Self {
        Self {
            status: Some(status.to_owned()),
            lease_token: Some(None),
            lease_until: Some(None),
            last_error: Some(error),
            ..Default::default()
        }
    }
}

pub fn settle(conn: &mut DbConn, id: &str, token: &str, outcome: &Outcome) -> QueryResult<bool> {
    let changed =
        diesel::update(push_outbox::table.filter(push_outbox::id.eq(id)).filter(push_outbox::lease_token.eq(token)))
            .set(outcome)
            .execute(conn)?;
    Ok(changed == 1)
}
