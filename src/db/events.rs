//! The ticket history: append-only. Each event records the transaction that wrote it, so a
//! reader can name what it has seen without any writer taking a common number (see
//! [`Horizon`] and `docs/sync.md`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use serde_json::Value;

use super::schema::{ticket_events, tickets};
use super::{new_id, DbConn};

#[derive(Debug, Clone, Queryable, Selectable)]
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

/// An event row as written: the database numbers it (`seq`) and records its transaction (`tx`).
#[derive(Insertable)]
// None is NULL (no column has a default), so SQLite writes many rows in one statement
#[diesel(table_name = ticket_events, treat_none_as_default_value = false)]
struct EventInsert {
    id: String,
    ticket_id: String,
    site_id: String,
    event_type: String,
    actor_id: Option<String>,
    at: NaiveDateTime,
    from_status: Option<String>,
    to_status: Option<String>,
    data: String,
}

/// The version of the shape of events' data, written into each as `v`. Raise it when a command
/// changes what it records, and read older events by the `v` they carry (events without one
/// were written before it existed and have the shape of version 1).
pub const DATA_VERSION: i64 = 1;

/// An event to append.
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

fn versioned(mut data: Value) -> Value {
    if let Value::Object(members) = &mut data {
        members.insert("v".to_owned(), DATA_VERSION.into());
    }
    data
}

/// Appends `events` to their tickets' histories, in this order. The caller has locked or updated
/// each ticket in this transaction (the lock order, `db` module doc), so a ticket's events are
/// numbered in the order its writers committed. Nothing here is shared between writers of other
/// tickets beyond the `seq` sequence, which nobody holds while waiting or committing.
pub fn append(conn: &mut DbConn, events: Vec<NewEvent>) -> QueryResult<()> {
    let rows: Vec<EventInsert> = events
        .into_iter()
        .map(|e| EventInsert {
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
    Ok(())
}

/// Which writing transactions a reader's snapshot held: all below `xmin`, and those below `xmax`
/// but not in `running`. PostgreSQL's snapshot (`pg_current_snapshot()`) over the events' `tx`;
/// on SQLite, whose one writer numbers events in commit order, `xmin = xmax` = the next number.
///
/// A change a snapshot does not hold is one it could not see: it committed later, or was still
/// running. So "every change since `h`" is exactly the events whose `tx` `h` does not hold, and a
/// cursor that carries `h` can never skip a change that commits late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Horizon {
    pub xmin: i64,
    pub xmax: i64,
    pub running: Vec<i64>,
}

/// The most running transactions a horizon read from a client may list (PostgreSQL lists at most
/// one per connection): more is refused, and never becomes a query with that many parameters.
pub const MAX_RUNNING: usize = 10_000;

impl Horizon {
    /// Whether a reader at this horizon has seen the changes of transaction `tx`.
    pub fn holds(&self, tx: i64) -> bool {
        tx < self.xmin || (tx < self.xmax && !self.running.contains(&tx))
    }

    /// `xmin:xmax:tx,tx`, PostgreSQL's own text form of a snapshot.
    pub fn to_text(&self) -> String {
        let running: Vec<String> = self.running.iter().map(i64::to_string).collect();
        format!("{}:{}:{}", self.xmin, self.xmax, running.join(","))
    }

    /// Reads [`Horizon::to_text`]'s form; `None` for anything that is not a well-formed one.
    pub fn parse(text: &str) -> Option<Horizon> {
        let mut parts = text.split(':');
        let xmin: i64 = parts.next()?.parse().ok()?;
        let xmax: i64 = parts.next()?.parse().ok()?;
        let list = parts.next()?;
        if parts.next().is_some() || xmin < 0 || xmax < xmin {
            return None;
        }
        // a real snapshot lists at most the connections of the server; more is not one of ours
        if list.split(',').count() > MAX_RUNNING {
            return None;
        }
        let running: Vec<i64> = if list.is_empty() {
            Vec::new()
        } else {
            list.split(',').map(|t| t.parse().ok().filter(|tx| (xmin..xmax).contains(tx))).collect::<Option<_>>()?
        };
        Some(Horizon { xmin, xmax, running })
    }
}

/// The horizon of the current snapshot: call it inside [`super::snapshot`], so it matches what the
/// other reads of that snapshot see.
pub fn horizon(conn: &mut DbConn) -> QueryResult<Horizon> {
    match conn {
        DbConn::Postgres(c) => {
            let text: String =
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("pg_current_snapshot()::text"))
                    .get_result(c)?;
            Horizon::parse(&text).ok_or_else(|| {
                diesel::result::Error::DeserializationError(format!("unreadable snapshot {text:?}").into())
            })
        }
        DbConn::Sqlite(c) => {
            let last: Option<i64> = ticket_events::table.select(diesel::dsl::max(ticket_events::seq)).first(c)?;
            let next = last.unwrap_or(0) + 1;
            Ok(Horizon { xmin: next, xmax: next, running: Vec::new() })
        }
    }
}

/// The events `after` does not hold and `upto` (when given; else the reader's own snapshot)
/// does, as a condition on `ticket_events` in any query that reads it.
fn between<QS>(
    after: &Horizon,
    upto: Option<&Horizon>,
) -> Box<dyn BoxableExpression<QS, super::MultiBackend, SqlType = Bool>>
where
    ticket_events::tx: SelectableExpression<QS>,
    QS: 'static,
{
    use ticket_events::tx;
    let mut condition: Box<dyn BoxableExpression<QS, super::MultiBackend, SqlType = Bool>> = if after.running.is_empty()
    {
        Box::new(tx.ge(after.xmax))
    } else {
        Box::new(tx.ge(after.xmin).and(tx.ge(after.xmax).or(tx.eq_any(after.running.clone()))))
    };
    if let Some(upto) = upto {
        condition = if upto.running.is_empty() {
            Box::new(condition.and(tx.lt(upto.xmax)))
        } else {
            Box::new(condition.and(tx.lt(upto.xmin).or(tx.lt(upto.xmax).and(tx.ne_all(upto.running.clone())))))
        };
    }
    condition
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
    pub tx: i64,
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

/// Every event that `after` does not hold, oldest number first, with the horizon of the snapshot
/// they were read in (the next call's `after`), read in pages of `page` within that one snapshot.
/// When there are more than `max`, the first `max` and `true`.
pub fn feed_since(
    conn: &mut DbConn,
    after: &Horizon,
    page: i64,
    max: usize,
) -> QueryResult<(Vec<FeedRow>, Horizon, bool)> {
    super::snapshot(conn, |conn| {
        let now = horizon(conn)?;
        let mut rows: Vec<FeedRow> = Vec::new();
        loop {
            let from = rows.last().map_or(i64::MIN, |r| r.seq);
            let batch: Vec<FeedRow> = ticket_events::table
                .inner_join(tickets::table)
                .filter(between(after, None))
                .filter(ticket_events::seq.gt(from))
                .order(ticket_events::seq.asc())
                .limit(page)
                .select((
                    ticket_events::seq,
                    ticket_events::tx,
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
                .load(conn)?;
            let done = (batch.len() as i64) < page;
            rows.extend(batch);
            if rows.len() > max {
                rows.truncate(max);
                return Ok((rows, now, true));
            }
            if done {
                return Ok((rows, now, false));
            }
        }
    })
}

/// Tickets of `sites` (all when `None`) with an event that `after` does not hold and `upto` does
/// (`upto` `None`: the reader's snapshot), in id order after `after_id`, at most `limit`.
pub fn changed_tickets(
    conn: &mut DbConn,
    after: &Horizon,
    upto: Option<&Horizon>,
    sites: Option<&[String]>,
    after_id: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<String>> {
    let mut query = ticket_events::table.filter(between(after, upto)).into_boxed();
    if let Some(sites) = sites {
        query = query.filter(ticket_events::site_id.eq_any(sites.to_vec()));
    }
    if let Some(after_id) = after_id {
        query = query.filter(ticket_events::ticket_id.gt(after_id.to_owned()));
    }
    query.select(ticket_events::ticket_id).distinct().order(ticket_events::ticket_id.asc()).limit(limit).load(conn)
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
