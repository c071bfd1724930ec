//! The monthly report's reads: each figure is grouped and summed by the database, through the
//! indexes of migration 15 (a site and the time a ticket was created, reached, completed or
//! cancelled), so no query returns a row per ticket (but the voided list, which is one).
//!
//! Medians are computed in SQL the same way on both engines: the durations of a group numbered
//! by a window function (`ROW_NUMBER` and `COUNT` over the group), and rows `(n + 1) / 2` and
//! `(n + 2) / 2` averaged (the same row when `n` is odd). Only minutes between two times are
//! written per engine: `julianday` on SQLite, `EXTRACT(EPOCH ...)` on PostgreSQL.
//!
//! The statements are written with `$1`, `$2`... and sent to SQLite as `?1`, `?2`...

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;

use super::schema::users;
use super::DbConn;
use crate::domain::report::{
    measure, ArrivalRow, CompletionRow, IntakeRow, MaterialRow, MatterCallbackRow, MatterRow, MedianRow, QuoteRow,
    Rows, VoidedRow,
};

/// A site's month: its tickets with a time in `[from, until)` count.
#[derive(Debug, Clone)]
pub struct Window {
    pub site_id: String,
    pub from: NaiveDateTime,
    pub until: NaiveDateTime,
}

#[derive(Debug, Clone)]
enum Param {
    Text(String),
    At(NaiveDateTime),
    Real(f64),
}

/// A statement being written, with its parameters.
struct Sql {
    postgres: bool,
    params: Vec<Param>,
}

impl Sql {
    fn new(conn: &DbConn) -> Self {
        Self { postgres: matches!(conn, DbConn::Postgres(_)), params: Vec::new() }
    }

    fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    /// `column` of the rows whose site is one of the windows' and whose `column` is within that
    /// site's month. `site` and `column` are qualified names.
    fn within(&mut self, windows: &[Window], site: &str, column: &str) -> String {
        let parts: Vec<String> = windows
            .iter()
            .map(|w| {
                let (s, f, u) = (
                    self.param(Param::Text(w.site_id.clone())),
                    self.param(Param::At(w.from)),
                    self.param(Param::At(w.until)),
                );
                format!("({site} = {s} AND {column} >= {f} AND {column} < {u})")
            })
            .collect();
        if parts.is_empty() {
            return "FALSE".into();
        }
        format!("({})", parts.join(" OR "))
    }

    /// `tickets {alias}`, which SQLite reads through the index of (site, `time`), e.g.
    /// `tickets_site_completed` for `completed_at`. Without statistics (SQLite's are only
    /// gathered by `ANALYZE`) its planner may choose an index that yields the tickets in the
    /// order of a `GROUP BY` instead, and read every ticket of the site, of every month, to
    /// keep a month's. PostgreSQL's planner has its statistics.
    fn tickets(&self, alias: &str, time: &str) -> String {
        if self.postgres {
            format!("tickets {alias}")
        } else {
            let index = time.strip_suffix("_at").unwrap_or(time);
            format!("tickets {alias} INDEXED BY tickets_site_{index}")
        }
    }

    /// Minutes from `from` to `to`, as a double.
    fn minutes(&self, from: &str, to: &str) -> String {
        if self.postgres {
            format!("CAST(EXTRACT(EPOCH FROM ({to} - {from})) / 60.0 AS DOUBLE PRECISION)")
        } else {
            format!("((julianday({to}) - julianday({from})) * 1440.0)")
        }
    }

    fn load<T>(self, conn: &mut DbConn, text: &str) -> QueryResult<Vec<T>>
    where
        T: QueryableByName<Pg> + QueryableByName<Sqlite> + 'static,
    {
        macro_rules! bound {
            ($query:expr) => {{
                let mut query = $query;
                for p in self.params {
                    query = match p {
                        Param::Text(s) => query.bind::<Text, _>(s),
                        Param::At(t) => query.bind::<Timestamp, _>(t),
                        Param::Real(x) => query.bind::<Double, _>(x),
                    };
                }
                query
            }};
        }
        match conn {
            DbConn::Postgres(c) => bound!(diesel::sql_query(text).into_boxed::<Pg>()).load(c),
            DbConn::Sqlite(c) => bound!(diesel::sql_query(text.replace('$', "?")).into_boxed::<Sqlite>()).load(c),
        }
    }
}

/// The statuses in which a ticket's completion stands (a public-area ticket counts once inspected).
const DONE: &str = "('completed', 'closed')";

/// A line's amount in cents, rounded half up: `domain::material::line_total_cents` in SQL.
const LINE_CENTS: &str = "((l.quantity_milli * l.unit_price_cents + 500) / 1000)";

#[derive(QueryableByName)]
struct Intake {
    #[diesel(sql_type = Text)]
    category: String,
    #[diesel(sql_type = Text)]
    area: String,
    #[diesel(sql_type = Bool)]
    paid: bool,
    #[diesel(sql_type = Text)]
    urgency: String,
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = Bool)]
    voided: bool,
    #[diesel(sql_type = BigInt)]
    tickets: i64,
}

/// Tickets created in the month, per category, area, paid, urgency, channel and voided.
pub fn intake(conn: &mut DbConn, windows: &[Window]) -> QueryResult<Vec<IntakeRow>> {
    let mut sql = Sql::new(conn);
    let within = sql.within(windows, "t.site_id", "t.created_at");
    let tickets = sql.tickets("t", "created_at");
    let text = format!(
        "SELECT t.category AS category, t.area AS area, t.paid AS paid, t.urgency AS urgency,
            t.channel AS channel, t.status = 'cancelled' AS voided, COUNT(*) AS tickets
        FROM {tickets} WHERE {within}
        GROUP BY t.category, t.area, t.paid, t.urgency, t.channel, t.status = 'cancelled'"
    );
    let rows: Vec<Intake> = sql.load(conn, &text)?;
    Ok(rows
        .into_iter()
        .map(|r| IntakeRow {
            category: r.category,
            area: r.area,
            paid: r.paid,
            urgency: r.urgency,
            channel: r.channel,
            voided: r.voided,
            tickets: r.tickets,
        })
        .collect())
}

#[derive(QueryableByName)]
struct Arrival {
    #[diesel(sql_type = Text)]
    category: String,
    #[diesel(sql_type = Nullable<Text>)]
    technician_id: Option<String>,
    #[diesel(sql_type = Text)]
    urgency: String,
    #[diesel(sql_type = Bool)]
    appointment: bool,
    #[diesel(sql_type = Bool)]
    on_time: bool,
    #[diesel(sql_type = BigInt)]
    tickets: i64,
}

/// Tickets reached in the month, per category, holder, urgency, appointment and verdict.
pub fn arrivals(conn: &mut DbConn, windows: &[Window]) -> QueryResult<Vec<ArrivalRow>> {
    let mut sql = Sql::new(conn);
    let within = sql.within(windows, "t.site_id", "t.arrived_at");
    let tickets = sql.tickets("t", "arrived_at");
    let text = format!(
        "SELECT t.category AS category, t.assignee_id AS technician_id, t.urgency AS urgency,
            t.appointment_at IS NOT NULL AS appointment, COALESCE(t.arrival_on_time, FALSE) AS on_time,
            COUNT(*) AS tickets
        FROM {tickets} WHERE {within}
        GROUP BY t.category, t.assignee_id, t.urgency, t.appointment_at IS NOT NULL,
            COALESCE(t.arrival_on_time, FALSE)"
    );
    let rows: Vec<Arrival> = sql.load(conn, &text)?;
    Ok(rows
        .into_iter()
        .map(|r| ArrivalRow {
            category: r.category,
            technician_id: r.technician_id,
            urgency: r.urgency,
            appointment: r.appointment,
            on_time: r.on_time,
            tickets: r.tickets,
        })
        .collect())
}

#[derive(QueryableByName)]
struct Completion {
    #[diesel(sql_type = Text)]
    category: String,
    #[diesel(sql_type = Nullable<Text>)]
    technician_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    accepted_covers: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    satisfaction: Option<i64>,
    #[diesel(sql_type = BigInt)]
    tickets: i64,
    #[diesel(sql_type = BigInt)]
    reworked: i64,
    #[diesel(sql_type = BigInt)]
    rated: i64,
    #[diesel(sql_type = BigInt)]
    rating_sum: i64,
    #[diesel(sql_type = BigInt)]
    collected_cents: i64,
    #[diesel(sql_type = BigInt)]
    accepted_quote_cents: i64,
    #[diesel(sql_type = BigInt)]
    company_material_cents: i64,
    #[diesel(sql_type = BigInt)]
    resident_material_cents: i64,
    #[diesel(sql_type = BigInt)]
    called: i64,
    #[diesel(sql_type = BigInt)]
    reached: i64,
}

/// Tickets completed in the month, per category, holder, accepted quote's cover and the
/// satisfaction of the callback that reached the resident; each ticket's rework, rating, fee,
/// quote, material lines and callbacks read through their indexes and summed.
pub fn completions(conn: &mut DbConn, windows: &[Window]) -> QueryResult<Vec<CompletionRow>> {
    let mut sql = Sql::new(conn);
    let within = sql.within(windows, "t.site_id", "t.completed_at");
    let tickets = sql.tickets("t", "completed_at");
    let lines = per_ticket_lines(&mut sql, windows);
    let callbacks = per_ticket_callbacks(&mut sql, windows);
    let sum = |column: &str| format!("CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS {column}");
    let sums = [
        "reworked",
        "rated",
        "rating_sum",
        "collected_cents",
        "accepted_quote_cents",
        "company_material_cents",
        "resident_material_cents",
        "called",
        "reached",
    ]
    .map(sum)
    .join(", ");
    // each ticket's lines and callbacks summed once per ticket and joined (a hash join on
    // PostgreSQL, where a subquery per ticket costs more than the month's reads themselves)
    let text = format!(
        "SELECT category, technician_id, accepted_covers, satisfaction, COUNT(*) AS tickets, {sums}
        FROM (
            SELECT t.category AS category, t.assignee_id AS technician_id, q.covers AS accepted_covers,
                cb.satisfaction AS satisfaction,
                CASE WHEN EXISTS (SELECT 1 FROM tickets r WHERE r.rework_of = t.id) THEN 1 ELSE 0 END
                    AS reworked,
                CASE WHEN t.resident_rating IS NULL THEN 0 ELSE 1 END AS rated,
                COALESCE(t.resident_rating, 0) AS rating_sum,
                COALESCE(t.fee_collected_cents, 0) AS collected_cents,
                COALESCE(q.amount_cents, 0) AS accepted_quote_cents,
                COALESCE(ml.company_cents, 0) AS company_material_cents,
                COALESCE(ml.resident_cents, 0) AS resident_material_cents,
                CASE WHEN cb.ticket_id IS NULL THEN 0 ELSE 1 END AS called,
                COALESCE(cb.reached, 0) AS reached
            FROM {tickets}
            LEFT JOIN quotes q ON q.ticket_id = t.id AND q.status = 'accepted'
            LEFT JOIN ({lines}) ml ON ml.ticket_id = t.id
            LEFT JOIN ({callbacks}) cb ON cb.ticket_id = t.id
            WHERE {within} AND t.status IN {DONE}
        ) d
        GROUP BY category, technician_id, accepted_covers, satisfaction"
    );
    let rows: Vec<Completion> = sql.load(conn, &text)?;
    Ok(rows
        .into_iter()
        .map(|r| CompletionRow {
            category: r.category,
            technician_id: r.technician_id,
            accepted_covers: r.accepted_covers,
            satisfaction: r.satisfaction,
            tickets: r.tickets,
            reworked: r.reworked,
            rated: r.rated,
            rating_sum: r.rating_sum,
            collected_cents: r.collected_cents,
            accepted_quote_cents: r.accepted_quote_cents,
            company_material_cents: r.company_material_cents,
            resident_material_cents: r.resident_material_cents,
            called: r.called,
            reached: r.reached,
        })
        .collect())
}

/// Per ticket completed in the windows' months: its live material lines' amounts, company- and
/// resident-supplied apart.
fn per_ticket_lines(sql: &mut Sql, windows: &[Window]) -> String {
    let within = sql.within(windows, "lt.site_id", "lt.completed_at");
    let tickets = sql.tickets("lt", "completed_at");
    format!(
        "SELECT l.ticket_id AS ticket_id,
            SUM(CASE WHEN l.supplied_by = 'company' THEN {LINE_CENTS} ELSE 0 END) AS company_cents,
            SUM(CASE WHEN l.supplied_by = 'resident' THEN {LINE_CENTS} ELSE 0 END) AS resident_cents
        FROM {tickets} JOIN material_lines l ON l.ticket_id = lt.id AND l.deleted_at IS NULL
        WHERE {within} AND lt.status IN {DONE}
        GROUP BY l.ticket_id"
    )
}

/// Per ticket completed in the windows' months that was called back: the first callback, whether
/// one reached the resident (1 or 0) and the satisfaction given then.
fn per_ticket_callbacks(sql: &mut Sql, windows: &[Window]) -> String {
    let within = sql.within(windows, "ct.site_id", "ct.completed_at");
    let tickets = sql.tickets("ct", "completed_at");
    format!(
        "SELECT c.ticket_id AS ticket_id, MIN(c.made_at) AS first_at,
            MAX(CASE WHEN c.reached THEN 1 ELSE 0 END) AS reached,
            MAX(CASE WHEN c.reached THEN c.satisfaction END) AS satisfaction
        FROM {tickets} JOIN callbacks c ON c.ticket_id = ct.id
        WHERE {within} AND ct.status IN {DONE}
        GROUP BY c.ticket_id"
    )
}

#[derive(QueryableByName)]
struct Median {
    #[diesel(sql_type = Text)]
    measure: String,
    #[diesel(sql_type = Text)]
    part: String,
    #[diesel(sql_type = Double)]
    minutes: f64,
}

/// The medians ([`crate::domain::report::measure`]), in one statement.
pub fn medians(conn: &mut DbConn, windows: &[Window]) -> QueryResult<Vec<MedianRow>> {
    let mut sql = Sql::new(conn);
    let arrived = sql.within(windows, "t.site_id", "t.arrived_at");
    let completed = sql.within(windows, "t.site_id", "t.completed_at");
    let completed_called = sql.within(windows, "t.site_id", "t.completed_at");
    let callbacks = per_ticket_callbacks(&mut sql, windows);
    let replied = sql.within(windows, "m.site_id", "m.replied_at");
    let to_arrive = sql.minutes("t.created_at", "t.arrived_at");
    let to_complete = sql.minutes("t.arrived_at", "t.completed_at");
    let to_callback = sql.minutes("t.completed_at", "cb.first_at");
    let to_matter_callback =
        sql.minutes("m.replied_at", "(SELECT MIN(c.made_at) FROM matter_callbacks c WHERE c.matter_id = m.id)");
    let (by_arrival, by_completion) = (sql.tickets("t", "arrived_at"), sql.tickets("t", "completed_at"));
    let (arrive, complete, callback, matter_callback) =
        (measure::ARRIVE, measure::COMPLETE, measure::CALLBACK, measure::MATTER_CALLBACK);
    let text = format!(
        "WITH d AS (
            SELECT '{arrive}' AS measure, t.category AS part, {to_arrive} AS m
            FROM {by_arrival} WHERE {arrived}
            UNION ALL
            SELECT '{complete}', t.category, {to_complete}
            FROM {by_completion} WHERE {completed} AND t.status IN {DONE} AND t.arrived_at IS NOT NULL
            UNION ALL
            SELECT '{callback}', '', {to_callback}
            FROM {by_completion} JOIN ({callbacks}) cb ON cb.ticket_id = t.id
            WHERE {completed_called} AND t.status IN {DONE}
            UNION ALL
            SELECT '{matter_callback}', '', {to_matter_callback}
            FROM matters m WHERE {replied}
                AND EXISTS (SELECT 1 FROM matter_callbacks c WHERE c.matter_id = m.id)
        ), r AS (
            SELECT measure, part, m,
                ROW_NUMBER() OVER (PARTITION BY measure, part ORDER BY m) AS rn,
                COUNT(*) OVER (PARTITION BY measure, part) AS n
            FROM d
        )
        SELECT measure, part, CAST(AVG(m) AS DOUBLE PRECISION) AS minutes
        FROM r WHERE rn = (n + 1) / 2 OR rn = (n + 2) / 2
        GROUP BY measure, part"
    );
    let rows: Vec<Median> = sql.load(conn, &text)?;
    Ok(rows.into_iter().map(|r| MedianRow { measure: r.measure, part: r.part, minutes: r.minutes }).collect())
}

#[derive(QueryableByName)]
struct Material {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Text>)]
    spec: Option<String>,
    #[diesel(sql_type = Text)]
    unit: String,
    #[diesel(sql_type = Text)]
    supplied_by: String,
    #[diesel(sql_type = BigInt)]
    quantity_milli: i64,
    #[diesel(sql_type = BigInt)]
    cost_cents: i64,
}

/// The material lines of the tickets completed in the month, per item and supplier.
pub fn materials(conn: &mut DbConn, windows: &[Window]) -> QueryResult<Vec<MaterialRow>> {
    let mut sql = Sql::new(conn);
    let within = sql.within(windows, "t.site_id", "t.completed_at");
    let tickets = sql.tickets("t", "completed_at");
    let text = format!(
        "SELECT l.name AS name, l.spec AS spec, l.unit AS unit, l.supplied_by AS supplied_by,
            CAST(SUM(l.quantity_milli) AS BIGINT) AS quantity_milli, CAST(SUM({LINE_CENTS}) AS BIGINT) AS cost_cents
        FROM {tickets} JOIN material_lines l ON l.ticket_id = t.id AND l.deleted_at IS NULL
        WHERE {within} AND t.status IN {DONE}
        GROUP BY l.name, l.spec, l.unit, l.supplied_by"
    );
    let rows: Vec<Material> = sql.load(conn, &text)?;
    Ok(rows
        .into_iter()
        .map(|r| MaterialRow {
            name: r.name,
            spec: r.spec,
            unit: r.unit,
            supplied_by: r.supplied_by,
            quantity_milli: r.quantity_milli,
            cost_cents: r.cost_cents,
        })
        .collect())
}

#[derive(QueryableByName)]
struct Voided {
    #[diesel(sql_type = Text)]
    number: String,
    #[diesel(sql_type = Timestamp)]
    created_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    cancelled_at: NaiveDateTime,
    #[diesel(sql_type = Nullable<Text>)]
    reason: Option<String>,
    #[diesel(sql_type = Text)]
    category: String,
    #[diesel(sql_type = Text)]
    location: String,
}

/// The tickets cancelled in the month.
pub fn voided(conn: &mut DbConn, windows: &[Window]) -> QueryResult<Vec<VoidedRow>> {
    let mut sql = Sql::new(conn);
    let within = sql.within(windows, "t.site_id", "t.cancelled_at");
    let tickets = sql.tickets("t", "cancelled_at");
    let text = format!(
        "SELECT t.number AS number, t.created_at AS created_at, t.cancelled_at AS cancelled_at,
            t.cancel_reason AS reason, t.category AS category, t.location AS location
        FROM {tickets} WHERE {within} AND t.status = 'cancelled'"
    );
    let rows: Vec<Voided> = sql.load(conn, &text)?;
    Ok(rows
        .into_iter()
        .map(|r| VoidedRow {
            number: r.number,
            created_at: r.created_at,
            cancelled_at: r.cancelled_at,
            reason: r.reason,
            category: r.category,
            location: r.location,
        })
        .collect())
}

#[derive(QueryableByName)]
struct Quotes {
    #[diesel(sql_type = BigInt)]
    quoted: i64,
    #[diesel(sql_type = BigInt)]
    quoted_cents: i64,
    #[diesel(sql_type = BigInt)]
    accepted: i64,
    #[diesel(sql_type = BigInt)]
    accepted_cents: i64,
    #[diesel(sql_type = BigInt)]
    declined: i64,
    #[diesel(sql_type = BigInt)]
    declined_cents: i64,
}

/// Quotes last proposed in the month, and those accepted or declined in it.
pub fn quotes(conn: &mut DbConn, windows: &[Window]) -> QueryResult<QuoteRow> {
    let mut sql = Sql::new(conn);
    let proposed = sql.within(windows, "t.site_id", "q.proposed_at");
    let decided = sql.within(windows, "t.site_id", "q.decided_at");
    let proposed_again = sql.within(windows, "t.site_id", "q.proposed_at");
    let decided_again = sql.within(windows, "t.site_id", "q.decided_at");
    let count = |when: &str, name: &str| {
        format!(
            "CAST(COALESCE(SUM(CASE WHEN {when} THEN 1 ELSE 0 END), 0) AS BIGINT) AS {name},
            CAST(COALESCE(SUM(CASE WHEN {when} THEN q.amount_cents ELSE 0 END), 0) AS BIGINT) AS {name}_cents"
        )
    };
    let text = format!(
        "SELECT {}, {}, {}
        FROM quotes q JOIN tickets t ON t.id = q.ticket_id
        WHERE {proposed_again} OR {decided_again}",
        count(&proposed, "quoted"),
        count(&format!("q.status = 'accepted' AND {decided}"), "accepted"),
        count(&format!("q.status = 'declined' AND {decided}"), "declined"),
    );
    let rows: Vec<Quotes> = sql.load(conn, &text)?;
    Ok(rows.into_iter().next().map_or_else(QuoteRow::default, |r| QuoteRow {
        quoted: r.quoted,
        quoted_cents: r.quoted_cents,
        accepted: r.accepted,
        accepted_cents: r.accepted_cents,
        declined: r.declined,
        declined_cents: r.declined_cents,
    }))
}

#[derive(QueryableByName)]
struct Matters {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    department: String,
    #[diesel(sql_type = BigInt)]
    matters: i64,
    #[diesel(sql_type = BigInt)]
    replied: i64,
    #[diesel(sql_type = BigInt)]
    replied_in_time: i64,
    #[diesel(sql_type = BigInt)]
    called: i64,
    #[diesel(sql_type = BigInt)]
    reached: i64,
}

/// Matters registered in the month, per kind and department; replied within `reply_minutes`.
pub fn matters(conn: &mut DbConn, windows: &[Window], reply_minutes: f64) -> QueryResult<Vec<MatterRow>> {
    let mut sql = Sql::new(conn);
    let within = sql.within(windows, "m.site_id", "m.created_at");
    let limit = sql.param(Param::Real(reply_minutes));
    let waited = sql.minutes("m.created_at", "m.replied_at");
    let text = format!(
        "SELECT m.kind AS kind, m.department AS department, COUNT(*) AS matters,
            CAST(SUM(CASE WHEN m.replied_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS replied,
            CAST(SUM(CASE WHEN m.replied_at IS NOT NULL AND {waited} <= {limit} THEN 1 ELSE 0 END) AS BIGINT)
                AS replied_in_time,
            CAST(SUM(CASE WHEN EXISTS (SELECT 1 FROM matter_callbacks c WHERE c.matter_id = m.id)
                THEN 1 ELSE 0 END) AS BIGINT) AS called,
            CAST(SUM(CASE WHEN EXISTS (SELECT 1 FROM matter_callbacks c WHERE c.matter_id = m.id AND c.reached)
                THEN 1 ELSE 0 END) AS BIGINT) AS reached
        FROM matters m WHERE {within}
        GROUP BY m.kind, m.department"
    );
    let rows: Vec<Matters> = sql.load(conn, &text)?;
    Ok(rows
        .into_iter()
        .map(|r| MatterRow {
            kind: r.kind,
            department: r.department,
            matters: r.matters,
            replied: r.replied,
            replied_in_time: r.replied_in_time,
            called: r.called,
            reached: r.reached,
        })
        .collect())
}

#[derive(QueryableByName)]
struct MatterCallbacks {
    #[diesel(sql_type = Nullable<BigInt>)]
    satisfaction: Option<i64>,
    #[diesel(sql_type = BigInt)]
    matters: i64,
    #[diesel(sql_type = BigInt)]
    called: i64,
    #[diesel(sql_type = BigInt)]
    reached: i64,
}

/// Matters replied to in the month, per the satisfaction of the callback that reached the reporter.
pub fn matter_callbacks(conn: &mut DbConn, windows: &[Window]) -> QueryResult<Vec<MatterCallbackRow>> {
    let mut sql = Sql::new(conn);
    let within = sql.within(windows, "m.site_id", "m.replied_at");
    let text = format!(
        "SELECT satisfaction, COUNT(*) AS matters, CAST(SUM(called) AS BIGINT) AS called,
            CAST(SUM(reached) AS BIGINT) AS reached
        FROM (
            SELECT (SELECT MAX(c.satisfaction) FROM matter_callbacks c WHERE c.matter_id = m.id AND c.reached)
                    AS satisfaction,
                CASE WHEN EXISTS (SELECT 1 FROM matter_callbacks c WHERE c.matter_id = m.id) THEN 1 ELSE 0 END
                    AS called,
                CASE WHEN EXISTS (SELECT 1 FROM matter_callbacks c WHERE c.matter_id = m.id AND c.reached)
                    THEN 1 ELSE 0 END AS reached
            FROM matters m WHERE {within}
        ) d
        GROUP BY satisfaction"
    );
    let rows: Vec<MatterCallbacks> = sql.load(conn, &text)?;
    Ok(rows
        .into_iter()
        .map(|r| MatterCallbackRow {
            satisfaction: r.satisfaction,
            matters: r.matters,
            called: r.called,
            reached: r.reached,
        })
        .collect())
}

/// Display names of the users with these ids.
pub fn names(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<(String, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    users::table.filter(users::id.eq_any(ids)).select((users::id, users::display_name)).load(conn)
}

/// Readies the connection's transaction for the report: on PostgreSQL, no JIT compilation for
/// its statements (their per-ticket subqueries make the planner's cost estimate large, and
/// compiling them took 2.4 s of a 2.5 s statement over 20,000 tickets, where the reads take
/// about 0.1 s). `SET LOCAL`: it ends with the transaction, so run the report in one
/// ([`super::snapshot`]).
pub fn begin(conn: &mut DbConn) -> QueryResult<()> {
    if let DbConn::Postgres(c) = conn {
        diesel::sql_query("SET LOCAL jit = off").execute(c)?;
    }
    Ok(())
}

/// Every figure of the windows' months but their names and medians (read apart: a total of
/// several sites adds their rows up, but reads its medians over them all).
pub fn rows(conn: &mut DbConn, windows: &[Window], reply_minutes: f64) -> QueryResult<Rows> {
    Ok(Rows {
        intake: intake(conn, windows)?,
        arrivals: arrivals(conn, windows)?,
        completions: completions(conn, windows)?,
        medians: Vec::new(),
        materials: materials(conn, windows)?,
        voided: voided(conn, windows)?,
        quotes: quotes(conn, windows)?,
        matters: matters(conn, windows, reply_minutes)?,
        matter_callbacks: matter_callbacks(conn, windows)?,
        names: Default::default(),
    })
}
