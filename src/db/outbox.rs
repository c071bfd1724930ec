//! The SMS outbox. A message is written with the change that causes it and claimed by one
//! worker at a time through a lease.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::sms_outbox;
use super::DbConn;

pub const PENDING: &str = "pending";
pub const SENDING: &str = "sending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";
/// Not sent: a newer message of the same ticket and template replaced it (a new code).
pub const SUPERSEDED: &str = "superseded";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sms_outbox)]
pub struct OutboxRow {
    pub id: String,
    pub ticket_id: Option<String>,
    pub to_phone: String,
    pub template: String,
    pub params: String,
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: NaiveDateTime,
    pub lease_token: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub provider_status: Option<String>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
    pub failed_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConn, row: &OutboxRow) -> QueryResult<()> {
    diesel::insert_into(sms_outbox::table).values(row).execute(conn).map(|_| ())
}

/// What counts towards the caps: messages handed to a gateway, or on their way to one. A message
/// superseded before it went out, or given up, never reached the resident.
pub const COUNTED: [&str; 3] = [PENDING, SENDING, SENT];

/// Messages since `since` that count towards the caps ([`COUNTED`]): to one number, or to anyone.
pub fn count_since(conn: &mut DbConn, to_phone: Option<&str>, since: NaiveDateTime) -> QueryResult<i64> {
    let mut query = sms_outbox::table
        .filter(sms_outbox::created_at.gt(since))
        .filter(sms_outbox::status.eq_any(COUNTED))
        .into_boxed();
    if let Some(phone) = to_phone {
        query = query.filter(sms_outbox::to_phone.eq(phone.to_owned()));
    }
    query.count().get_result(conn)
}

/// The times a ticket's messages that count towards the caps were queued since `since`, oldest
/// first, leaving out those of `replacing` still waiting: a new message of that template
/// supersedes them.
pub fn ticket_counted_since(
    conn: &mut DbConn,
    ticket_id: &str,
    replacing: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<NaiveDateTime>> {
    sms_outbox::table
        .filter(sms_outbox::ticket_id.eq(ticket_id))
        .filter(sms_outbox::created_at.gt(since))
        .filter(
            sms_outbox::status
                .eq_any([SENDING, SENT])
                .or(sms_outbox::status.eq(PENDING).and(sms_outbox::template.ne(replacing))),
        )
        .order(sms_outbox::created_at.asc())
        .select(sms_outbox::created_at)
        .load(conn)
}

/// The times a ticket's messages of `template` were queued since `since`, newest first.
pub fn ticket_sends_since(
    conn: &mut DbConn,
    ticket_id: &str,
    template: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<NaiveDateTime>> {
    sms_outbox::table
        .filter(sms_outbox::ticket_id.eq(ticket_id))
        .filter(sms_outbox::template.eq(template))
        .filter(sms_outbox::created_at.gt(since))
        .order(sms_outbox::created_at.desc())
        .select(sms_outbox::created_at)
        .load(conn)
}

pub fn for_tickets(conn: &mut DbConn, ticket_ids: &[String]) -> QueryResult<Vec<OutboxRow>> {
    let mut query = sms_outbox::table
        .filter(sms_outbox::ticket_id.eq_any(ticket_ids.to_vec()))
        .order((sms_outbox::ticket_id.asc(), sms_outbox::created_at.asc()))
        .select(OutboxRow::as_select())
        .into_boxed();
    if let Some((lo, hi)) = crate::db::id_range(ticket_ids) {
        query = query.filter(sms_outbox::ticket_id.between(lo, hi));
    }
    query.load(conn)
}

/// Marks the undelivered messages of a ticket's `template` that no worker is sending now as
/// superseded, their copies scrubbed: the code they carry was replaced, so they are never sent.
pub fn supersede(conn: &mut DbConn, ticket_id: &str, template: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        sms_outbox::table.filter(sms_outbox::ticket_id.eq(ticket_id)).filter(sms_outbox::template.eq(template)).filter(
            sms_outbox::status.eq(PENDING).or(sms_outbox::status.eq(SENDING).and(sms_outbox::lease_until.lt(now))),
        ),
    )
    .set(&superseded(template))
    .execute(conn)
}

/// What a message of `template` becomes when a newer code replaced it: not sent, lease released,
/// copy scrubbed.
pub fn superseded(template: &str) -> Outcome {
    Outcome {
        status: Some(SUPERSEDED.into()),
        lease_token: Some(None),
        lease_until: Some(None),
        params: Some("{}".to_owned()),
        body: Some(format!("[{template} superseded]")),
        ..Default::default()
    }
}

/// Whether a message of the same ticket and template was queued after `row`, replacing its code.
pub fn has_newer(conn: &mut DbConn, row: &OutboxRow) -> QueryResult<bool> {
    let Some(ticket_id) = row.ticket_id.as_deref() else { return Ok(false) };
    let newer: i64 = sms_outbox::table
        .filter(sms_outbox::ticket_id.eq(ticket_id))
        .filter(sms_outbox::template.eq(&row.template))
        .filter(sms_outbox::created_at.gt(row.created_at))
        .count()
        .get_result(conn)?;
    Ok(newer > 0)
}

/// Ids of messages due now: pending and due, or sending with a lease that ran out (its worker died).
pub fn due(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<String>> {
    sms_outbox::table
        .filter(
            sms_outbox::status
                .eq(PENDING)
                .and(sms_outbox::next_attempt_at.le(now))
                .or(sms_outbox::status.eq(SENDING).and(sms_outbox::lease_until.lt(now))),
        )
        .order(sms_outbox::next_attempt_at.asc())
        .limit(limit)
        .select(sms_outbox::id)
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
) -> QueryResult<Option<OutboxRow>> {
    let changed = diesel::update(
        sms_outbox::table.filter(sms_outbox::id.eq(id)).filter(
            sms_outbox::status
                .eq(PENDING)
                .and(sms_outbox::next_attempt_at.le(now))
                .or(sms_outbox::status.eq(SENDING).and(sms_outbox::lease_until.lt(now))),
        ),
    )
    .set((
        sms_outbox::status.eq(SENDING),
        sms_outbox::lease_token.eq(token),
        sms_outbox::lease_until.eq(until),
        sms_outbox::attempts.eq(sms_outbox::attempts + 1),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Ok(None);
    }
    sms_outbox::table.find(id).select(OutboxRow::as_select()).first(conn).optional()
}

/// The outcome of one attempt, written only while the lease is still ours.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = sms_outbox)]
pub struct Outcome {
    pub status: Option<String>,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_token: Option<Option<String>>,
    pub lease_until: Option<Option<NaiveDateTime>>,
    pub provider: Option<Option<String>>,
    pub provider_message_id: Option<Option<String>>,
    pub provider_status: Option<Option<String>>,
    pub last_error: Option<Option<String>>,
    pub sent_at: Option<Option<NaiveDateTime>>,
    pub failed_at: Option<Option<NaiveDateTime>>,
    /// Scrubbed once delivered or given up: the codes in them are secrets.
    pub params: Option<String>,
    pub body: Option<String>,
}

pub fn settle(conn: &mut DbConn, id: &str, token: &str, outcome: &Outcome) -> QueryResult<bool> {
    let changed =
        diesel::update(sms_outbox::table.filter(sms_outbox::id.eq(id)).filter(sms_outbox::lease_token.eq(token)))
            .set(outcome)
            .execute(conn)?;
    Ok(changed == 1)
}

/// Messages still waiting (pending or in flight).
pub fn waiting(conn: &mut DbConn) -> QueryResult<i64> {
    sms_outbox::table.filter(sms_outbox::status.eq_any([PENDING, SENDING])).count().get_result(conn)
}
