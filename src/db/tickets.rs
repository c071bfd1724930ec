//! Tickets. Every state change is one conditional UPDATE checked by rows affected.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{ticket_counters, tickets, user_sites, user_trades, users};
use super::DbConn;
use crate::domain::access::Scope;
use crate::domain::place::{place_key, search_text};
use crate::domain::ticket::{ClockFacts, NewTicket, Status, Urgency};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = tickets)]
pub struct TicketRow {
    pub id: String,
    pub site_id: String,
    pub number: String,
    pub area: String,
    pub location: String,
    pub category: String,
    pub urgency: String,
    pub paid: bool,
    pub description: String,
    pub reporter_name: String,
    pub reporter_phone: Option<String>,
    pub appointment_at: Option<NaiveDateTime>,
    pub resident_supplies_parts: bool,
    pub channel: String,
    pub requested_technician_id: Option<String>,
    pub status: Status,
    pub assignee_id: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub pooled_at: Option<NaiveDateTime>,
    pub claimed_at: Option<NaiveDateTime>,
    pub arrived_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
    pub closed_at: Option<NaiveDateTime>,
    pub cancelled_at: Option<NaiveDateTime>,
    pub cancel_reason: Option<String>,
    pub last_activity_at: NaiveDateTime,
    pub version: i64,
    pub rework_of: Option<String>,
    pub arrival_device_time: Option<NaiveDateTime>,
    pub arrival_on_time: Option<bool>,
    pub arrival_verified_via: Option<String>,
    pub arrival_lat: Option<f64>,
    pub arrival_lng: Option<f64>,
    pub phone_verified_at: Option<NaiveDateTime>,
    pub phone_verified_by: Option<String>,
    pub hold_reason: Option<String>,
    pub hold_note: Option<String>,
    pub resume_at: Option<NaiveDateTime>,
    pub result: Option<String>,
    pub resident_rating: Option<i64>,
    pub fee_collected_cents: Option<i64>,
    /// When the desk last restarted the arrival clock (a new appointment, urgency raised).
    pub arrival_clock_at: Option<NaiveDateTime>,
    /// The place as one key however it was typed (`domain::place`): rework is found by it.
    pub location_key: Option<String>,
    /// What a search matches (`domain::place::search_text`).
    pub search_text: String,
}

impl TicketRow {
    /// What the clock reads of this ticket (`domain::ticket::Clock`).
    pub fn clock_facts(&self) -> ClockFacts {
        ClockFacts {
            status: self.status,
            urgency: Urgency::parse(&self.urgency).unwrap_or(Urgency::Normal),
            pooled_at: self.pooled_at,
            claimed_at: self.claimed_at,
            arrival_clock_at: self.arrival_clock_at,
            appointment_at: self.appointment_at,
            resume_at: self.resume_at,
            last_activity_at: self.last_activity_at,
        }
    }

    /// The row with its place key and search text made from its fields.
    pub fn with_search_text(mut self) -> Self {
        self.location_key = Some(place_key(&self.location));
        self.search_text = search_text(
            &self.number,
            &self.location,
            &self.reporter_name,
            &self.description,
            self.reporter_phone.as_deref(),
        );
        self
    }

    /// A ticket as intake registers it: in the pool, or assigned at once to the requested
    /// technician; nothing of its later life happened yet.
    pub fn from_intake(new: NewTicket, number: String, created_by: String, now: NaiveDateTime) -> Self {
        let assigned = new.requested_technician_id.is_some();
        Self {
            id: super::new_id(),
            site_id: new.site_id,
            number,
            area: new.area.as_str().to_owned(),
            location: new.location,
            category: new.category.as_str().to_owned(),
            urgency: new.urgency.as_str().to_owned(),
            paid: new.paid,
            description: new.description,
            reporter_name: new.reporter_name,
            reporter_phone: new.reporter_phone,
            appointment_at: new.appointment_at,
            resident_supplies_parts: new.resident_supplies_parts,
            channel: new.channel.as_str().to_owned(),
            assignee_id: new.requested_technician_id.clone(),
            requested_technician_id: new.requested_technician_id,
            status: if assigned { Status::Assigned } else { Status::Open },
            created_by,
            created_at: now,
            pooled_at: (!assigned).then_some(now),
            claimed_at: assigned.then_some(now),
            arrived_at: None,
            completed_at: None,
            closed_at: None,
            cancelled_at: None,
            cancel_reason: None,
            last_activity_at: now,
            version: 1,
            rework_of: None,
            arrival_device_time: None,
            arrival_on_time: None,
            arrival_verified_via: None,
            arrival_lat: None,
            arrival_lng: None,
            phone_verified_at: None,
            phone_verified_by: None,
            hold_reason: None,
            hold_note: None,
            resume_at: None,
            result: None,
            resident_rating: None,
            fee_collected_cents: None,
            arrival_clock_at: None,
            location_key: None,
            search_text: String::new(),
        }
        .with_search_text()
    }
}

/// The columns a state change may set; `None` leaves a column alone.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = tickets)]
pub struct TicketChanges {
    pub status: Option<Status>,
    pub assignee_id: Option<Option<String>>,
    pub pooled_at: Option<Option<NaiveDateTime>>,
    pub claimed_at: Option<Option<NaiveDateTime>>,
    pub cancelled_at: Option<Option<NaiveDateTime>>,
    pub cancel_reason: Option<Option<String>>,
    pub last_activity_at: Option<NaiveDateTime>,
    pub arrived_at: Option<Option<NaiveDateTime>>,
    pub arrival_device_time: Option<Option<NaiveDateTime>>,
    pub arrival_on_time: Option<Option<bool>>,
    pub arrival_verified_via: Option<Option<String>>,
    pub arrival_lat: Option<Option<f64>>,
    pub arrival_lng: Option<Option<f64>>,
    pub phone_verified_at: Option<Option<NaiveDateTime>>,
    pub phone_verified_by: Option<Option<String>>,
    pub hold_reason: Option<Option<String>>,
    pub hold_note: Option<Option<String>>,
    pub resume_at: Option<Option<NaiveDateTime>>,
    pub result: Option<Option<String>>,
    pub resident_rating: Option<Option<i64>>,
    pub fee_collected_cents: Option<Option<i64>>,
    pub signature_png: Option<Option<Vec<u8>>>,
    pub completed_at: Option<Option<NaiveDateTime>>,
    pub closed_at: Option<Option<NaiveDateTime>>,
    pub rework_of: Option<Option<String>>,
    pub location: Option<String>,
    pub reporter_name: Option<String>,
    pub reporter_phone: Option<Option<String>>,
    pub category: Option<String>,
    pub urgency: Option<String>,
    pub paid: Option<bool>,
    pub appointment_at: Option<Option<NaiveDateTime>>,
    pub description: Option<String>,
    pub resident_supplies_parts: Option<bool>,
    pub arrival_clock_at: Option<Option<NaiveDateTime>>,
    pub location_key: Option<Option<String>>,
    pub search_text: Option<String>,
}

/// The next number of `site_id` on `day`. The counter row stays locked until the creating
/// transaction ends, so concurrent creates queue for numbers and a rollback returns its number.
pub fn next_number(conn: &mut DbConn, site_id: &str, day: &str) -> QueryResult<i64> {
    on_engine!(conn, |c| diesel::insert_into(ticket_counters::table)
        .values((
            ticket_counters::site_id.eq(site_id),
            ticket_counters::day.eq(day),
            ticket_counters::last_value.eq(1i64),
        ))
        .on_conflict((ticket_counters::site_id, ticket_counters::day))
        .do_update()
        .set(ticket_counters::last_value.eq(ticket_counters::last_value + 1i64))
        .returning(ticket_counters::last_value)
        .get_result(c))
}

/// Inserts a ticket, remembering the key it was created with (if any).
pub fn insert(conn: &mut DbConn, row: &TicketRow, create_key: Option<&str>) -> QueryResult<()> {
    diesel::insert_into(tickets::table).values((row, tickets::create_key.eq(create_key))).execute(conn).map(|_| ())
}

/// The ticket `created_by` already created with `create_key`.
pub fn find_created_with(conn: &mut DbConn, created_by: &str, create_key: &str) -> QueryResult<Option<TicketRow>> {
    tickets::table
        .filter(tickets::created_by.eq(created_by))
        .filter(tickets::create_key.eq(create_key))
        .select(TicketRow::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<TicketRow>> {
    tickets::table.find(id).select(TicketRow::as_select()).first(conn).optional()
}

/// Applies `changes` if the ticket is still at `version`, counting them as `steps` changes (one
/// per event they come with): the ticket as changed, or `None` when someone changed it first.
pub fn update_at_version(
    conn: &mut DbConn,
    id: &str,
    version: i64,
    changes: &TicketChanges,
    steps: i64,
) -> QueryResult<Option<TicketRow>> {
    on_engine!(conn, |c| diesel::update(tickets::table.filter(tickets::id.eq(id)).filter(tickets::version.eq(version)))
        .set((changes, tickets::version.eq(version + steps)))
        .returning(TicketRow::as_returning())
        .get_result(c)
        .optional())
}

/// The conditional update that decides a claim, the race of the grab pool: only an `open` ticket
/// can be claimed, so of any number of concurrent claims exactly one updates a row. The ticket as
/// claimed, with which of its own rows exist, or `None` when it was no longer open, or not in
/// the caller's sites and trades. On PostgreSQL the same statement locks the technician's row.
pub fn claim(
    conn: &mut DbConn,
    id: &str,
    technician_id: &str,
    mine: Reachable<'_>,
    at: NaiveDateTime,
) -> QueryResult<Option<(TicketRow, Present)>> {
    let claimed = match conn {
        DbConn::Postgres(c) => return claim_on_postgres(c, id, technician_id, mine, at),
        DbConn::Sqlite(c) => diesel::update(
            tickets::table
                .filter(tickets::id.eq(id))
                .filter(tickets::status.eq(Status::Open))
                .filter(tickets::site_id.eq_any(mine.sites))
                .filter(tickets::category.eq_any(mine.trades)),
        )
        .set((
            tickets::status.eq(Status::Assigned),
            tickets::assignee_id.eq(technician_id),
            tickets::claimed_at.eq(at),
            tickets::pooled_at.eq(None::<NaiveDateTime>),
            tickets::last_activity_at.eq(at),
            tickets::version.eq(tickets::version + 1),
        ))
        .returning(TicketRow::as_returning())
        .get_result(c)
        .optional()?,
    };
    // SQLite: in process, so a read of its own costs no round trip
    match claimed {
        Some(row) => Ok(Some((row, present(conn, id)?))),
        None => Ok(None),
    }
}

/// The sites and trades a claim may take a ticket from.
#[derive(Debug, Clone, Copy)]
pub struct Reachable<'a> {
    pub sites: &'a [String],
    pub trades: &'a [String],
}

/// Which kinds of a ticket's own rows exist, so a view reads only those. Read with the write
/// that changes the ticket, under its lock (the rows of a ticket are written only under it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Present {
    #[diesel(sql_type = diesel::sql_types::Bool, column_name = has_escalations)]
    pub escalations: bool,
    /// Open escalations a change of state resolves (all but failed SMS).
    #[diesel(sql_type = diesel::sql_types::Bool, column_name = has_open_escalations)]
    pub open_escalations: bool,
    #[diesel(sql_type = diesel::sql_types::Bool, column_name = has_lines)]
    pub lines: bool,
    #[diesel(sql_type = diesel::sql_types::Bool, column_name = has_quote)]
    pub quote: bool,
    #[diesel(sql_type = diesel::sql_types::Bool, column_name = has_sms)]
    pub sms: bool,
    #[diesel(sql_type = diesel::sql_types::Bool, column_name = has_callbacks)]
    pub callbacks: bool,
    #[diesel(sql_type = diesel::sql_types::Bool, column_name = has_notes)]
    pub notes: bool,
    #[diesel(sql_type = diesel::sql_types::Bool, column_name = has_push)]
    pub push: bool,
}

impl Present {
    /// Nothing known: read every kind.
    pub const ALL: Present = Present {
        escalations: true,
        open_escalations: true,
        lines: true,
        quote: true,
        sms: true,
        callbacks: true,
        notes: true,
        push: true,
    };
}

/// The select-list columns that read a [`Present`] for the ticket whose id is `ticket_id` (an
/// SQL expression).
fn present_columns(ticket_id: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM escalations e WHERE e.ticket_id = {ticket_id}) AS has_escalations,
        EXISTS (SELECT 1 FROM escalations e WHERE e.ticket_id = {ticket_id} AND e.resolved_at IS NULL
            AND e.kind <> 'sms_failed') AS has_open_escalations,
        EXISTS (SELECT 1 FROM material_lines l WHERE l.ticket_id = {ticket_id} AND l.deleted_at IS NULL) AS has_lines,
        EXISTS (SELECT 1 FROM quotes q WHERE q.ticket_id = {ticket_id}) AS has_quote,
        EXISTS (SELECT 1 FROM sms_outbox m WHERE m.ticket_id = {ticket_id}) AS has_sms,
        EXISTS (SELECT 1 FROM callbacks b WHERE b.ticket_id = {ticket_id}) AS has_callbacks,
        EXISTS (SELECT 1 FROM ticket_notes n WHERE n.ticket_id = {ticket_id}) AS has_notes,
        EXISTS (SELECT 1 FROM push_outbox p WHERE p.ticket_id = {ticket_id}) AS has_push"
    )
}

/// Which of the ticket's own rows exist, in one read.
pub fn present(conn: &mut DbConn, id: &str) -> QueryResult<Present> {
    use super::prepared::{Param, Statement};
    struct Presence;
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!("SELECT {}", present_columns("$1")));
    let statement = || Statement::<Presence>::new(&TEXT, vec![Param::Text(id)]);
    on_engine!(conn, |c| statement().get_result(c))
}

/// The claim as one statement on PostgreSQL: the conditional update of the ticket, then a lock
/// on the technician's row (second in the lock order, so the active tickets counted next are
/// all committed), then which of the ticket's own rows exist.
fn claim_on_postgres(
    c: &mut diesel::PgConnection,
    id: &str,
    technician_id: &str,
    mine: Reachable<'_>,
    at: NaiveDateTime,
) -> QueryResult<Option<(TicketRow, Present)>> {
    use super::prepared::{Param, Statement};
    #[derive(QueryableByName)]
    struct Claimed {
        #[diesel(embed)]
        ticket: TicketRow,
        #[diesel(embed)]
        present: Present,
    }
    struct Claim;
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH c AS (
                UPDATE tickets SET status = $1, assignee_id = $2, claimed_at = $3, pooled_at = NULL,
                    last_activity_at = $3, version = version + 1
                WHERE id = $4 AND status = $5 AND site_id = ANY($6) AND category = ANY($7)
                RETURNING *
            ), me AS (
                SELECT id FROM users WHERE id = $2 AND EXISTS (SELECT 1 FROM c) FOR UPDATE
            )
            SELECT c.*, {present},
                -- selecting from `me` is what runs it, and so takes the lock
                EXISTS (SELECT 1 FROM me) AS locked
            FROM c",
            present = present_columns("c.id"),
        )
    });
    let claimed: Option<Claimed> = Statement::<Claim>::new(
        &TEXT,
        vec![
            Param::Text(Status::Assigned.as_str()),
            Param::Text(technician_id),
            Param::Timestamp(&at),
            Param::Text(id),
            Param::Text(Status::Open.as_str()),
            Param::TextArray(mine.sites),
            Param::TextArray(mine.trades),
        ],
    )
    .get_result(c)
    .optional()?;
    Ok(claimed.map(|c| (c.ticket, c.present)))
}

/// The ids of the active tickets `technician_id` holds, in a stable order.
pub fn active_of(conn: &mut DbConn, technician_id: &str) -> QueryResult<Vec<String>> {
    tickets::table
        .filter(tickets::assignee_id.eq(technician_id))
        .filter(tickets::status.eq_any(Status::ACTIVE))
        .order(tickets::id.asc())
        .select(tickets::id)
        .load(conn)
}

pub fn active_count(conn: &mut DbConn, technician_id: &str) -> QueryResult<i64> {
    tickets::table
        .filter(tickets::assignee_id.eq(technician_id))
        .filter(tickets::status.eq_any(Status::ACTIVE))
        .count()
        .get_result(conn)
}

/// Open tickets of `sites` in `trades`: emergencies first, then oldest.
pub fn pool(conn: &mut DbConn, sites: &[String], trades: &[String]) -> QueryResult<Vec<TicketRow>> {
    tickets::table
        .filter(tickets::status.eq(Status::Open))
        .filter(tickets::site_id.eq_any(sites.to_vec()))
        .filter(tickets::category.eq_any(trades.to_vec()))
        // "emergency" sorts before "normal"
        .order((tickets::urgency.asc(), tickets::created_at.asc(), tickets::id.asc()))
        .limit(500)
        .select(TicketRow::as_select())
        .load(conn)
}

#[derive(Debug, Default, Clone)]
pub struct TicketFilter {
    pub statuses: Vec<Status>,
    /// Limit to these sites (`None`: all).
    pub sites: Option<Vec<String>>,
    pub assignee_id: Option<String>,
    pub created_after: Option<NaiveDateTime>,
    pub created_before: Option<NaiveDateTime>,
    /// Continue after this (created_at, id), newest first.
    pub after: Option<(NaiveDateTime, String)>,
    pub limit: i64,
    /// Text to find, as typed and as a place key (`domain::place::search_terms`).
    pub search: Option<(String, String)>,
    pub category: Option<String>,
    pub area: Option<String>,
    pub urgency: Option<String>,
    pub paid: Option<bool>,
    /// With (or without) an open escalation the desk must act on.
    pub escalated: Option<bool>,
    pub completed_after: Option<NaiveDateTime>,
    pub completed_before: Option<NaiveDateTime>,
    /// Leave this ticket out (the exact number match, shown first).
    pub except_id: Option<String>,
    /// Only this ticket (whether it passes the other filters).
    pub only_id: Option<String>,
}

pub fn list(conn: &mut DbConn, f: &TicketFilter) -> QueryResult<Vec<TicketRow>> {
    let sqlite = matches!(conn, DbConn::Sqlite(_));
    let mut query = tickets::table
        .select(TicketRow::as_select())
        .order((tickets::created_at.desc(), tickets::id.desc()))
        .limit(f.limit)
        .into_boxed();
    if !f.statuses.is_empty() {
        query = query.filter(tickets::status.eq_any(f.statuses.clone()));
    }
    if let Some(sites) = &f.sites {
        if sqlite && f.search.is_some() {
            // `site_id || ''` keeps SQLite's planner off the site's index: it then starts from the
            // search index's few rows (or, for a short text, from the newest tickets, stopping at
            // the page), instead of reading every ticket of the site (docs/performance.md)
            query = query.filter(tickets::site_id.concat("").eq_any(sites.clone()));
        } else {
            query = query.filter(tickets::site_id.eq_any(sites.clone()));
        }
    }
    if let Some(assignee) = &f.assignee_id {
        query = query.filter(tickets::assignee_id.eq(assignee.clone()));
    }
    if let Some(after) = f.created_after {
        query = query.filter(tickets::created_at.ge(after));
    }
    if let Some(before) = f.created_before {
        query = query.filter(tickets::created_at.lt(before));
    }
    if let Some((at, id)) = &f.after {
        query =
            query.filter(tickets::created_at.lt(*at).or(tickets::created_at.eq(*at).and(tickets::id.lt(id.clone()))));
    }
    if let Some(c) = &f.category {
        query = query.filter(tickets::category.eq(c.clone()));
    }
    if let Some(a) = &f.area {
        query = query.filter(tickets::area.eq(a.clone()));
    }
    if let Some(u) = &f.urgency {
        query = query.filter(tickets::urgency.eq(u.clone()));
    }
    if let Some(paid) = f.paid {
        query = query.filter(tickets::paid.eq(paid));
    }
    if let Some(after) = f.completed_after {
        query = query.filter(tickets::completed_at.ge(after));
    }
    if let Some(before) = f.completed_before {
        query = query.filter(tickets::completed_at.lt(before));
    }
    if let Some(id) = &f.except_id {
        query = query.filter(tickets::id.ne(id.clone()));
    }
    if let Some(id) = &f.only_id {
        query = query.filter(tickets::id.eq(id.clone()));
    }
    if let Some(escalated) = f.escalated {
        use super::schema::escalations;
        let open = diesel::dsl::exists(
            escalations::table
                .filter(escalations::ticket_id.eq(tickets::id))
                .filter(escalations::resolved_at.is_null())
                .filter(escalations::kind.ne("sms_failed")),
        );
        query = if escalated { query.filter(open) } else { query.filter(diesel::dsl::not(open)) };
    }
    if let Some((plain, key)) = &f.search {
        let mut terms = vec![plain.clone()];
        if key != plain {
            terms.push(key.clone());
        }
        // a trigram index serves three characters or more; a shorter text is read row by row
        let indexed = terms.iter().all(|t| t.chars().count() >= 3);
        // On SQLite, a text found in many tickets (a common fault) is read row by row too: newest
        // first, stopping at the page, it meets its matches soon, where the search index would
        // fetch every match and sort them all (docs/performance.md)
        if sqlite && indexed && !common_on_sqlite(conn, &terms)? {
            use diesel::dsl::sql;
            use diesel::sql_types::{Bool, Text};
            let first = "tickets.rowid IN (SELECT rowid FROM ticket_search WHERE search_text MATCH ";
            let mut phrases = terms.iter().map(|t| fts_phrase(t));
            let one = phrases.next().unwrap_or_default();
            query = match phrases.next() {
                None => query.filter(sql::<Bool>(first).bind::<Text, _>(one).sql(")")),
                Some(two) => query.filter(
                    sql::<Bool>(first)
                        .bind::<Text, _>(one)
                        .sql(" UNION SELECT rowid FROM ticket_search WHERE search_text MATCH ")
                        .bind::<Text, _>(two)
                        .sql(")"),
                ),
            };
        } else {
            let mut patterns = terms.iter().map(|t| format!("%{t}%"));
            let mut found: Box<dyn BoxableExpression<tickets::table, _, SqlType = diesel::sql_types::Bool>> =
                Box::new(tickets::search_text.like(patterns.next().unwrap_or_default()));
            for p in patterns {
                found = Box::new(found.or(tickets::search_text.like(p)));
            }
            query = query.filter(found);
        }
    }
    query.load(conn)
}

/// How many matches of a search on SQLite make reading the tickets newest first cheaper than
/// fetching every match from the search index and sorting them. A page of 50 read newest first
/// takes about `50 * tickets / matches` rows; the search index takes `matches` rows and a sort:
/// they meet near the square root of `50 * tickets`, 2,200 at 100,000 tickets in a site.
pub const COMMON_MATCHES: i64 = 2_000;

/// `text` as an FTS5 phrase: with the trigram tokenizer, the rows whose search text holds it as a
/// substring, found from the index alone (a `LIKE` on the FTS5 table reads each candidate's text
/// from the tickets to check it).
fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Whether the search index holds at least [`COMMON_MATCHES`] rows with any of `terms` (SQLite's
/// FTS5 table), counted no further than that.
fn common_on_sqlite(conn: &mut DbConn, terms: &[String]) -> QueryResult<bool> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Text};
    for t in terms {
        let found: i64 = diesel::select(
            sql::<BigInt>("(SELECT count(*) FROM (SELECT 1 FROM ticket_search WHERE search_text MATCH ")
                .bind::<Text, _>(fts_phrase(t))
                .sql(" LIMIT ")
                .bind::<BigInt, _>(COMMON_MATCHES)
                .sql("))"),
        )
        .get_result(conn)?;
        if found >= COMMON_MATCHES {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Open tickets that entered the pool at or before `before`.
pub fn unclaimed_since(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<Vec<TicketRow>> {
    tickets::table
        .filter(tickets::status.eq(Status::Open))
        .filter(tickets::pooled_at.le(before))
        .limit(1000)
        .select(TicketRow::as_select())
        .load(conn)
}

/// Assigned tickets nobody has arrived at, claimed at or before `claimed_before` or with an
/// appointment at or before `now`; the caller applies the exact deadline.
pub fn not_arrived(
    conn: &mut DbConn,
    claimed_before: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<Vec<TicketRow>> {
    tickets::table
        .filter(tickets::status.eq(Status::Assigned))
        .filter(tickets::claimed_at.le(claimed_before).or(tickets::appointment_at.le(now)))
        .limit(1000)
        .select(TicketRow::as_select())
        .load(conn)
}

/// Held tickets with no activity since `before`.
pub fn quiet_since(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<Vec<TicketRow>> {
    tickets::table
        .filter(tickets::status.eq_any(Status::ACTIVE))
        .filter(tickets::last_activity_at.le(before))
        .limit(1000)
        .select(TicketRow::as_select())
        .load(conn)
}

/// Whether `user_id` is an active technician of `site_id`.
pub fn is_site_technician(conn: &mut DbConn, user_id: &str, site_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table
            .inner_join(user_sites::table)
            .filter(users::id.eq(user_id))
            .filter(users::role.eq("technician"))
            .filter(users::active.eq(true))
            .filter(user_sites::site_id.eq(site_id)),
    ))
    .get_result(conn)
}

pub fn trades_of(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<String>> {
    user_trades::table.filter(user_trades::user_id.eq(user_id)).select(user_trades::trade).load(conn)
}

/// The latest in-home ticket at the same place for the same trade completed since `since`: the
/// one a new completion is rework (返修) of.
pub fn rework_candidate(conn: &mut DbConn, t: &TicketRow, since: NaiveDateTime) -> QueryResult<Option<String>> {
    tickets::table
        .filter(tickets::site_id.eq(&t.site_id))
        .filter(tickets::category.eq(&t.category))
        .filter(tickets::location_key.eq(place_key(&t.location)))
        .filter(tickets::area.eq("in_home"))
        .filter(tickets::id.ne(&t.id))
        .filter(tickets::completed_at.ge(since))
        .order(tickets::completed_at.desc())
        .select(tickets::id)
        .first(conn)
        .optional()
}

/// Completed tickets of `sites` with no callback that reached the resident, oldest first.
pub fn callbacks_due(conn: &mut DbConn, sites: Option<&[String]>, limit: i64) -> QueryResult<Vec<TicketRow>> {
    let mut query = tickets::table
        .filter(tickets::status.eq(Status::Completed))
        .order((tickets::completed_at.asc(), tickets::id.asc()))
        .limit(limit)
        .select(TicketRow::as_select())
        .into_boxed();
    if let Some(sites) = sites {
        query = query.filter(tickets::site_id.eq_any(sites.to_vec()));
    }
    query.load(conn)
}

pub fn signature(conn: &mut DbConn, id: &str) -> QueryResult<Option<Vec<u8>>> {
    tickets::table
        .find(id)
        .select(tickets::signature_png)
        .first::<Option<Vec<u8>>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Tickets of `scope` (what its user may see) in id order, after `after_id`: a page of the whole view.
/// Each site is read apart, in the order of its `(site_id, id)` index, so a page reads about
/// `limit` rows a site however many tickets there are.
pub fn page(conn: &mut DbConn, scope: Scope<'_>, after_id: Option<&str>, limit: i64) -> QueryResult<Vec<TicketRow>> {
    let query = |site: Option<&str>| {
        let mut query =
            tickets::table.order(tickets::id.asc()).limit(limit).select(TicketRow::as_select()).into_boxed();
        if let Some(site) = site {
            query = query.filter(tickets::site_id.eq(site.to_owned()));
        }
        if let Scope::Technician { user_id, trades, .. } = scope {
            query = query.filter(
                tickets::assignee_id
                    .eq(user_id.to_owned())
                    .or(tickets::status.eq(Status::Open).and(tickets::category.eq_any(trades.to_vec()))),
            );
        }
        if let Some(after_id) = after_id {
            query = query.filter(tickets::id.gt(after_id.to_owned()));
        }
        query
    };
    let sites = match scope {
        Scope::All => return query(None).load(conn),
        Scope::Sites(sites) | Scope::Technician { sites, .. } => sites,
    };
    let mut rows = Vec::new();
    for site in sites {
        rows.extend(query(Some(site)).load(conn)?);
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(rows)
}

/// The ticket numbered `number` (numbers are unique: the site's code is part of them).
pub fn find_by_number(conn: &mut DbConn, number: &str) -> QueryResult<Option<TicketRow>> {
    tickets::table.filter(tickets::number.eq(number)).select(TicketRow::as_select()).first(conn).optional()
}

pub fn find_many(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<TicketRow>> {
    tickets::table.filter(tickets::id.eq_any(ids.to_vec())).select(TicketRow::as_select()).load(conn)
}

/// Reads a ticket to change it: on PostgreSQL the row stays locked until the transaction ends,
/// so commands on one ticket take turns and each sees the last one's result (SQLite's write
/// transactions take turns already). The first lock of the lock order (`db` module doc): take it
/// before any other row of the transaction.
pub fn find_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<TicketRow>> {
    match conn {
        DbConn::Postgres(c) => tickets::table.find(id).for_update().select(TicketRow::as_select()).first(c).optional(),
        DbConn::Sqlite(c) => tickets::table.find(id).select(TicketRow::as_select()).first(c).optional(),
    }
}

/// Locks the tickets `ids` (`FOR UPDATE`, on PostgreSQL) in id order, the first step of the lock
/// order (`db` module doc), for a transaction that will change them or append their events. Ids
/// that name no ticket are passed over.
pub fn lock(conn: &mut DbConn, ids: &[&str]) -> QueryResult<()> {
    if let DbConn::Postgres(c) = conn {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            tickets::table
                .filter(tickets::id.eq_any(ids))
                .order(tickets::id.asc())
                .select(tickets::id)
                .for_update()
                .load::<String>(c)?;
        }
    }
    Ok(())
}
