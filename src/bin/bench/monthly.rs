//! (h) The monthly report of a large site (issue 16): `--report-tickets` tickets (20,000) in one
//! month of the bench's site, with their events, material lines, quotes, callbacks and a few
//! hundred matters, written directly as the search pass writes its tickets. Then
//! `GET /reports/monthly` as JSON and as a workbook over HTTP, one request at a time, and the
//! ceiling: the report's statements alone on the database (no HTTP, no session, no rendering),
//! and its heaviest statement alone (the completed tickets' grouped sums).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Datelike, Duration as Span, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use futures_util::FutureExt;
use repairdesk::db::{
    self, events::NewEvent, materials::LineRow, matters::MatterRow, quotes::CallbackRow, quotes::QuoteRow,
    reports::Window, schema, tickets::TicketRow, DbConn, Pool,
};
use repairdesk::domain::category::Category;
use repairdesk::domain::report::Month;
use repairdesk::domain::ticket::{Area, Channel, Covers, NewTicket, QuoteStatus, Status, Urgency};
use serde_json::json;

use crate::measure::{closed_loop, report_line, summarise, Recorder, Request, Summary};
use crate::scenarios::Results;
use crate::setup::Fixture;
use crate::Args;

/// The site's zone (the bench's site is in Shanghai).
const OFFSET_HOURS: i64 = 8;

/// The month reported: the one before last, so nothing the other passes made falls in it.
fn month() -> Month {
    let back = db::now() - Span::days(45);
    Month::parse(&format!("{:04}-{:02}", back.year(), back.month())).expect("a month")
}

/// The month `by` months after `month` (before it when negative).
fn shifted(month: Month, by: i32) -> Month {
    let index = month.year * 12 + month.month as i32 - 1 + by;
    Month { year: index.div_euclid(12), month: index.rem_euclid(12) as u32 + 1 }
}

/// Inserts `rows` into `table`, 400 to a statement, on either engine.
macro_rules! insert_all {
    ($c:expr, $table:expr, $rows:expr) => {
        for chunk in $rows.chunks(400) {
            match &mut *$c {
                DbConn::Postgres(c) => diesel::insert_into($table).values(chunk).execute(c)?,
                DbConn::Sqlite(c) => diesel::insert_into($table).values(chunk).execute(c)?,
            };
        }
    };
}

/// Everything of the month, written in transactions of 2,000 tickets, 400 rows to a statement;
/// `tag` keeps its numbers apart from other months'.
fn fill(
    pool: &Pool,
    site: &str,
    desk: &str,
    techs: &[String],
    n: usize,
    month: Month,
    tag: &str,
) -> anyhow::Result<()> {
    let first = NaiveDate::from_ymd_opt(month.year, month.month, 1).expect("a month's first day");
    let start = first.and_hms_opt(0, 0, 0).expect("midnight") - Span::hours(OFFSET_HOURS);
    // spread over the month's first 27 days, so everything of a ticket stays in the month
    let step = Span::days(27).num_seconds() / n.max(1) as i64;
    let mut conn = pool.get()?;
    let mut ids: Vec<String> = Vec::with_capacity(n);
    for from in (0..n).step_by(2000) {
        let mut tickets = Vec::new();
        let (mut events, mut lines, mut callbacks, mut quotes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in from..(from + 2000).min(n) {
            let created = start + Span::seconds(step * i as i64);
            let t = ticket(site, desk, techs, i, created, &ids, tag);
            let at = |minutes: i64| created + Span::minutes(minutes);
            let event = |kind: &'static str, minutes: i64, to: Status| NewEvent {
                ticket_id: t.id.clone(),
                site_id: site.to_owned(),
                event_type: kind,
                actor_id: Some(desk.to_owned()),
                at: at(minutes),
                from_status: None,
                to_status: Some(to.as_str()),
                data: json!({}),
            };
            events.push(event("created", 0, Status::Open));
            if t.status == Status::Cancelled {
                events.push(event("cancelled", 30, Status::Cancelled));
            } else {
                events.push(event("claimed", 2, Status::Assigned));
                events.push(event("arrived", 18, Status::OnSite));
                events.push(event("completed", 60, Status::Completed));
                if i % 5 != 0 {
                    lines.push(line(&t.id, desk, i, at(30)));
                }
                if i % 7 == 0 {
                    lines.push(LineRow {
                        supplied_by: "resident".into(),
                        id: db::new_id(),
                        ..line(&t.id, desk, i + 3, at(31))
                    });
                }
                if t.paid {
                    quotes.push(QuoteRow {
                        ticket_id: t.id.clone(),
                        amount_cents: 5000 + (i as i64 % 10) * 1000,
                        note: None,
                        status: QuoteStatus::Accepted,
                        proposed_by: desk.to_owned(),
                        proposed_at: at(20),
                        decided_at: Some(at(25)),
                        decided_by: Some(desk.to_owned()),
                        decided_via: Some("phone".into()),
                        decision_note: None,
                        covers: Covers::All,
                        accepted_total_cents: None,
                    });
                }
                if i % 10 != 0 {
                    let reached = i % 4 != 0;
                    callbacks.push(CallbackRow {
                        id: db::new_id(),
                        ticket_id: t.id.clone(),
                        made_by: desk.to_owned(),
                        made_at: at(180),
                        reached,
                        satisfaction: reached.then_some(1 + i as i64 % 5),
                        comment: None,
                    });
                    events.push(event("callback", 180, Status::Closed));
                }
            }
            ids.push(t.id.clone());
            tickets.push(t);
        }
        db::write_transaction(&mut conn, |c| {
            insert_all!(c, schema::tickets::table, tickets);
            db::events::append(c, std::mem::take(&mut events))?;
            db::materials::insert_lines(c, &lines)?;
            insert_all!(c, schema::quotes::table, quotes);
            insert_all!(c, schema::callbacks::table, callbacks);
            Ok::<_, repairdesk::error::ApiError>(())
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let matters: Vec<MatterRow> =
        (0..n / 50).map(|i| matter(site, desk, i, start + Span::hours(i as i64), tag)).collect();
    db::write_transaction(&mut conn, |c| {
        for m in &matters {
            db::matters::insert(c, m)?;
        }
        Ok::<_, repairdesk::error::ApiError>(())
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let DbConn::Postgres(c) = &mut *conn {
        diesel::sql_query("ANALYZE").execute(c)?;
    }
    Ok(())
}

/// The `i`th ticket of the month: trades, areas, channels, urgencies and outcomes in turn; one in
/// 40 cancelled, one in 20 paid, one in 30 the rework of an earlier one; arrivals at 16 minutes
/// after the claim, so most are on time and emergencies late.
fn ticket(
    site: &str,
    desk: &str,
    techs: &[String],
    i: usize,
    created: NaiveDateTime,
    earlier: &[String],
    tag: &str,
) -> TicketRow {
    let urgency = if i % 9 == 0 { Urgency::Emergency } else { Urgency::Normal };
    let new = NewTicket {
        site_id: site.to_owned(),
        area: if i % 4 == 0 { Area::Public } else { Area::InHome },
        location: format!("{}栋{}单元{}", i % 30 + 1, i % 6 + 1, i % 400),
        category: Category::ALL[i % Category::ALL.len()],
        urgency,
        paid: i % 20 == 3,
        description: "报修".to_owned(),
        reporter_name: "业主".to_owned(),
        reporter_phone: Some(format!("+86137{:08}", i)),
        appointment_at: (i % 11 == 0).then(|| created + Span::hours(3)),
        resident_supplies_parts: false,
        channel: Channel::ALL[i % Channel::ALL.len()],
        requested_technician_id: None,
    };
    let mut t = TicketRow::from_intake(new, format!("BN-M{tag}-{i:06}"), desk.to_owned(), created).with_search_text();
    if i % 40 == 7 {
        t.status = Status::Cancelled;
        t.cancelled_at = Some(created + Span::minutes(30));
        t.cancel_reason = Some("重复报修".into());
        return t;
    }
    let at = |minutes: i64| Some(created + Span::minutes(minutes));
    t.status = if i % 10 != 0 && i % 4 != 0 { Status::Closed } else { Status::Completed };
    t.assignee_id = Some(techs[i % techs.len()].clone());
    t.claimed_at = at(2);
    t.arrived_at = at(18);
    t.arrival_on_time = Some(urgency == Urgency::Normal || t.appointment_at.is_some());
    t.completed_at = at(60);
    t.closed_at = if t.status == Status::Closed { at(180) } else { None };
    t.resident_rating = (i % 3 == 0).then_some(1 + i as i64 % 5);
    t.fee_collected_cents = t.paid.then_some(5000);
    t.rework_of = (i % 30 == 29).then(|| earlier.get(i.saturating_sub(29)).cloned()).flatten();
    t
}

fn line(ticket_id: &str, by: &str, i: usize, at: NaiveDateTime) -> LineRow {
    const ITEMS: [(&str, &str, &str, i64); 6] = [
        ("PPR 管", "DN20", "m", 1200),
        ("角阀", "DN15", "个", 2500),
        ("水龙头", "", "个", 3500),
        ("空气开关", "C16", "个", 4200),
        ("LED 灯泡", "9W", "个", 1500),
        ("密封胶", "", "支", 800),
    ];
    let (name, spec, unit, price) = ITEMS[i % ITEMS.len()];
    LineRow {
        id: db::new_id(),
        ticket_id: ticket_id.to_owned(),
        catalogue_item_id: None,
        name: name.to_owned(),
        spec: (!spec.is_empty()).then(|| spec.to_owned()),
        model: None,
        quantity: "1.5".into(),
        quantity_milli: 1500,
        unit: unit.to_owned(),
        unit_price_cents: price,
        supplied_by: "company".into(),
        created_by: by.to_owned(),
        created_at: at,
        updated_at: at,
        deleted_at: None,
    }
}

fn matter(site: &str, desk: &str, i: usize, at: NaiveDateTime, tag: &str) -> MatterRow {
    let replied = i % 3 != 0;
    MatterRow {
        id: db::new_id(),
        site_id: site.to_owned(),
        number: format!("BN-BS-M{tag}-{i:05}"),
        kind: ["complaint", "inquiry", "suggestion", "praise"][i % 4].to_owned(),
        department: ["engineering", "customer_service", "security", "cleaning"][i % 4].to_owned(),
        status: if replied { "replied" } else { "open" }.to_owned(),
        description: "报事".to_owned(),
        reporter_name: "业主".to_owned(),
        reporter_phone: None,
        location: None,
        channel: "phone".to_owned(),
        created_by: desk.to_owned(),
        created_at: at,
        reply: replied.then(|| "已处理".to_owned()),
        replied_by: replied.then(|| desk.to_owned()),
        replied_at: replied.then(|| at + Span::hours(i as i64 % 40)),
        closed_at: None,
    }
}

pub async fn report(args: &Args, fx: &Arc<Fixture>, out: &mut Results) -> anyhow::Result<()> {
    let n = args.report_tickets;
    let month = month();
    let (site, desk) = (fx.site().to_owned(), fx.desk.user_id.clone());
    let techs: Vec<String> = fx.techs.iter().take(40).map(|t| t.caller.user_id.clone()).collect();
    // the month reported, and as many before and after it: the site's history the report's
    // reads must pass over
    let around = args.report_months_around as i32;
    let t0 = Instant::now();
    for by in -around..=around {
        let (pool, site, desk, techs) = (fx.pool.clone(), site.clone(), desk.clone(), techs.clone());
        let tag = if by == 0 { String::new() } else { format!("{by:+}") };
        tokio::task::spawn_blocking(move || fill(&pool, &site, &desk, &techs, n, shifted(month, by), &tag)).await??;
    }
    eprintln!(
        "  report: {n} tickets a month in each of {} months around {month} written in {:.1} s",
        2 * around + 1,
        t0.elapsed().as_secs_f64()
    );
    out.extra.insert("report_tickets".into(), json!(n));
    out.extra.insert("report_months_around".into(), json!(around));
    out.extra.insert("report_month".into(), json!(month.to_string()));
    let d = Duration::from_secs(args.duration);

    for (scenario, format) in [("report_json", "json"), ("report_xlsx", "xlsx")] {
        let f = fx.clone();
        let path = format!("/api/v1/reports/monthly?site_id={site}&month={month}&format={format}");
        let req: Request = Arc::new(move |_| {
            let (f, path) = (f.clone(), path.clone());
            async move {
                let (status, body) = f.desk_get(&path).await?;
                if status != 200 || body.len() < 100 {
                    return Err(format!("report: {status}"));
                }
                Ok(())
            }
            .boxed()
        });
        fx.settle().await?;
        // one at a time: the latency of a desk opening the month, not a throughput
        let summary = closed_loop(scenario, 1, d, 50, req).await;
        report_line(&summary);
        out.rows.push(summary);
    }

    // the ceiling: the report's statements alone, then its heaviest statement alone
    let (pool, tz) = (fx.pool.clone(), chrono_tz::Asia::Shanghai);
    let (from, until) = month.bounds(&tz);
    let window = Window { site_id: site.clone(), from, until };
    let raw = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Summary>> {
        let reply_minutes = 24.0 * 60.0;
        let all = time_db("db_report_statements", &pool, d, |c| {
            let w = std::slice::from_ref(&window);
            db::reports::rows(c, w, reply_minutes)?;
            db::reports::medians(c, w)?;
            Ok(())
        })?;
        let heaviest = time_db("db_report_completions", &pool, d, |c| {
            db::reports::completions(c, std::slice::from_ref(&window)).map(|_| ())
        })?;
        Ok(vec![all, heaviest])
    })
    .await??;
    for s in raw {
        report_line(&s);
        out.rows.push(s);
    }
    Ok(())
}

/// Runs `work` on one connection, one run after the other, for `duration` (at most 50 runs),
/// each in a snapshot transaction readied as the report's ([`db::reports::begin`]).
fn time_db(
    name: &str,
    pool: &Pool,
    duration: Duration,
    work: impl Fn(&mut DbConn) -> QueryResult<()>,
) -> anyhow::Result<Summary> {
    let mut conn = pool.get()?;
    let mut rec = Recorder::default();
    let start = Instant::now();
    for _ in 0..50 {
        if start.elapsed() >= duration {
            break;
        }
        let t0 = Instant::now();
        let r = db::snapshot(&mut conn, |c| {
            db::reports::begin(c)?;
            work(c)
        })
        .map_err(|e: diesel::result::Error| e.to_string());
        rec.add(t0.elapsed(), r);
    }
    Ok(summarise(name, "one at a time, statements alone", None, rec, start.elapsed()))
}
